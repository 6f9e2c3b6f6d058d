"""A small synthetic CoVoST 2 X->En corpus in the real layout.

CoVoST 2 is not distributed with audio: it is a set of translation TSVs,
``covost_v2.<src>_en.tsv``, over the clips of a Common Voice release. Its
columns are ``path`` (the Common Voice clip), ``sentence`` (the
transcript), ``translation`` (English), ``client_id`` and ``split``
(``train``, ``dev``, ``test``; some train rows are ``train_covost``, which
the official ``get_covost_splits.py`` counts as training data). The
official tools join it with the release's ``<src>/validated.tsv`` on
``path``. This module writes exactly that::

    OUT/<src>/clips/*.mp3, OUT/<src>/{validated,train,dev,test}.tsv, ...
                                  (a Common Voice layout, see synthetic_cv)
    OUT/covost_v2.<src>_en.tsv    path, sentence, translation, client_id,
                                  split

The source speech comes from :func:`make_synthetic_cv`; the English
translations from the parallel sentence lists (line *i* of every built-in
list translates line *i* of ``en.txt``) or from the phrase grammar
(en/fr/de/es, 2016 compositional sentences, so a tiny model can learn to
translate held-out combinations). A clip's CoVoST split is its Common
Voice split, so splits are sentence-disjoint; every third training row is
labelled ``train_covost``.

Command line::

    python -m speechbrain_sense.synthetic.covost --out DIR \\
        --languages fr,de --per-language 20 [--sentences grammar] [--seed 0]

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import csv
from pathlib import Path

from speechbrain.utils.logger import get_logger

from speechbrain_sense.synthetic.common_voice import (
    SPLITS,
    builtin_languages,
    make_synthetic_cv,
    normalize_sentence,
)
from speechbrain_sense.synthetic.phrase_grammar import (
    grammar_languages,
    grammar_sentences,
)

logger = get_logger(__name__)

COVOST_COLUMNS = ("path", "sentence", "translation", "client_id", "split")


def covost_tsv_name(source_language, target_language="en"):
    """File name of a CoVoST 2 translation TSV.

    Arguments
    ---------
    source_language : str
        Common Voice locale of the speech.
    target_language : str
        Language of the translations.

    Returns
    -------
    str

    Example
    -------
    >>> covost_tsv_name("fa")
    'covost_v2.fa_en.tsv'
    """
    return f"covost_v2.{source_language}_{target_language}.tsv"


def parallel_sentences(language, sentences="builtin", seed=0):
    """(source sentence, English translation) pairs of a language.

    Arguments
    ---------
    language : str
        Source language.
    sentences : str
        ``"builtin"`` (the parallel lists in ``synthetic/sentences``, 13
        languages) or ``"grammar"`` (the phrase grammar: en/fr/de/es).
    seed : int
        Seed of the grammar's sentence order.

    Returns
    -------
    list of (str, str)
        Pairs with distinct source sentences, in list order.

    Example
    -------
    >>> pairs = parallel_sentences("fr", "grammar")
    >>> len(pairs), all(fr and en for fr, en in pairs)
    (2016, True)
    >>> len(parallel_sentences("fa")) >= 60
    True
    """
    if language == "en":
        raise ValueError("CoVoST X->En needs a source language other than en")
    if sentences == "grammar":
        if language not in grammar_languages():
            raise ValueError(
                f"no phrase grammar for {language!r} (available: "
                f"{grammar_languages()}); use sentences='builtin'"
            )
        sources = grammar_sentences(language, seed)
        targets = grammar_sentences("en", seed)
    elif sentences == "builtin":
        if language not in builtin_languages():
            raise ValueError(
                f"no built-in sentence list for {language!r} (available: "
                f"{builtin_languages()})"
            )
        folder = Path(__file__).resolve().parent / "sentences"
        # Read the raw lines (not load_builtin_sentences, which drops
        # duplicates and so could shift the parallel line numbers).
        sources = _lines(folder / f"{language}.txt")
        targets = _lines(folder / "en.txt")
        if len(sources) != len(targets):
            raise ValueError(
                f"{folder / (language + '.txt')} has {len(sources)} lines "
                f"but en.txt has {len(targets)}: the lists must be parallel"
            )
    else:
        raise ValueError(
            f"sentences must be 'builtin' or 'grammar', got {sentences!r}"
        )
    pairs = {}
    for source, target in zip(sources, targets):
        source, target = normalize_sentence(source), normalize_sentence(target)
        if source and target:
            pairs.setdefault(source, target)
    return list(pairs.items())


def _lines(path):
    """Read a UTF-8 text file as its lines, line for line.

    Splits at line feeds only (no universal newlines; a BOM is dropped),
    so that the lines of two parallel files stay aligned even when a
    sentence holds another line-break character.

    Arguments
    ---------
    path : str or Path
        The text file, one sentence per line.

    Returns
    -------
    list of str
        The lines, without their newlines or a final empty line.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        lines = handle.read().split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _read_tsv(path):
    """Read a Common Voice style TSV file (no quoting) into its rows.

    Arguments
    ---------
    path : str or Path
        The tab-separated file, with a header row.

    Returns
    -------
    list of dict
        One ``{column: value}`` dict per data row.
    """
    with open(path, encoding="utf-8", newline="") as handle:
        return list(
            csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        )


def make_synthetic_covost(
    out_dir,
    languages,
    per_language,
    seed=0,
    sentences="builtin",
    split=(0.8, 0.1, 0.1),
):
    """Writes a synthetic CoVoST 2 X->En corpus (see the module docstring).

    Arguments
    ---------
    out_dir : str or Path
        Root folder (the Common Voice release and the CoVoST TSVs).
    languages : str or list of str
        Source languages, e.g. ``["fa", "et"]`` or ``"fr,de"``.
    per_language : int
        Clips per language, over all splits.
    seed : int
        Seed of every random choice.
    sentences : str
        ``"builtin"`` or ``"grammar"``, see :func:`parallel_sentences`.
    split : tuple of float
        Fractions of train / dev / test clips.

    Returns
    -------
    dict
        ``summary[lang][split]`` as :func:`make_synthetic_cv` returns it.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = make_synthetic_covost(tmp, ["fa"], per_language=3)
    ...     rows = _read_tsv(Path(tmp) / "covost_v2.fa_en.tsv")
    >>> [row["split"] for row in rows]
    ['train_covost', 'dev', 'test']
    >>> rows[0]["translation"] in dict(parallel_sentences("fa")).values()
    True
    """
    if isinstance(languages, str):
        languages = languages.split(",")
    languages = list(dict.fromkeys(lang.strip() for lang in languages))
    pairs = {
        lang: dict(parallel_sentences(lang, sentences, seed))
        for lang in languages
    }
    summary = make_synthetic_cv(
        out_dir,
        languages,
        per_language,
        seed=seed,
        sentences={lang: list(pairs[lang]) for lang in languages},
        split=split,
    )
    for lang in languages:
        lang_dir = Path(out_dir) / lang
        split_of = {}
        for name in SPLITS:
            for row in _read_tsv(lang_dir / f"{name}.tsv"):
                split_of[row["path"]] = name
        rows = []
        train_rows = 0
        for row in _read_tsv(lang_dir / "validated.tsv"):
            name = split_of[row["path"]]
            if name == "train":
                # CoVoST 1's extra training data, kept in v2's train split.
                name = "train_covost" if train_rows % 3 == 0 else "train"
                train_rows += 1
            rows.append(
                (
                    row["path"],
                    row["sentence"],
                    pairs[lang][row["sentence"]],
                    row["client_id"],
                    name,
                )
            )
        path = Path(out_dir) / covost_tsv_name(lang)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            for fields in [COVOST_COLUMNS, *rows]:
                handle.write("\t".join(fields) + "\n")
        logger.info(f"Synthetic CoVoST 2: {len(rows)} rows in {path}")
    return summary


def main(argv=None):
    """Command-line entry point; see ``--help``.

    Arguments
    ---------
    argv : list of str, optional
        The command-line arguments; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--languages", required=True, help="source languages, e.g. fa,et"
    )
    parser.add_argument("--per-language", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sentences", choices=("builtin", "grammar"), default="builtin"
    )
    args = parser.parse_args(argv)
    make_synthetic_covost(
        args.out,
        args.languages,
        args.per_language,
        seed=args.seed,
        sentences=args.sentences,
    )


if __name__ == "__main__":
    main()
