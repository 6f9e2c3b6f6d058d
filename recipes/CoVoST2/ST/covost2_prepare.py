"""Data preparation for CoVoST 2 X->En speech translation.

CoVoST 2 ships translation TSVs, ``covost_v2.<src>_en.tsv`` (columns
``path, sentence, translation, client_id, split``), over the clips of a
Common Voice release. As the official ``get_covost_splits.py`` does, each
TSV is joined on ``path`` with ``<data_folder>/<src>/validated.tsv``
(transcript and speaker from Common Voice), ``train`` and ``train_covost``
rows form the training split, and ``dev``/``test`` rows the others. Every
requested source language goes into one set of SpeechBrain manifests,
``train.csv``, ``dev.csv`` and ``test.csv`` in ``save_folder``::

    ID, duration, wav, sentence, translation, lang, client_id

with ``wav`` = ``$data_root/<src>/clips/<clip>`` (the recipe substitutes
``data_folder``) and ``lang`` the source language.

Languages are Common Voice locales, as CoVoST 2 names its files:
``zh-CN`` and ``sv-SE`` (``<data_folder>/zh-CN/``,
``covost_v2.zh-CN_en.tsv``), the others two-letter codes;
``COVOST2_X_EN_SOURCES`` lists the 21 X->En sources and
``COVOST2_X_EN_RESOURCE_GROUPS`` their high/mid/low-resource groups. Every
language folder, ``validated.tsv`` and CoVoST TSV is checked before any
work: a missing one is an error naming each missing path (with the
CoVoST 2 code when a near miss such as ``zh`` was given), and a language
left with no training, dev or test utterance is an error too, so no
requested language is dropped silently.

Kept and dropped counts (with reasons) per language and split are logged
and written to ``prepare_report.json``. Rows are dropped only for a
documented reason: the clip is not in the release's ``validated.tsv``
(CoVoST 2 was built on Common Voice 4, other releases lack some clips),
an empty translation, or a duration outside ``[min_duration,
max_duration]``. A malformed TSV row, an unknown split label or a missing
clip file is an error naming the file and line (``skip_bad_rows`` counts
and skips them instead).

The target vocabulary, a SentencePiece model trained on the training
translations (ids ``pad=0, bos=1, eos=2, unk=3``, the convention of
``speechbrain_sense.tasks.seq2seq.TransformerTextDecoder``), is written to
``<save_folder>/tokenizer/`` when ``vocab_size`` is given.

Preparation is skipped when the outputs exist and were written with the
same options.

Authors
 * speechbrain-sense developers 2026
"""

import csv
import json
import os
from collections import Counter
from pathlib import Path

from speechbrain.utils.logger import get_logger

from speechbrain_sense.audio import AudioReadError, audio_duration
from speechbrain_sense.data.preparation import (
    already_prepared,
    mark_prepared,
    write_manifest,
)

logger = get_logger(__name__)

SPLITS = ("train", "dev", "test")
# CoVoST 2 split labels -> manifest split ("train_covost": CoVoST 1's
# extra training rows, training data in v2 too).
SPLIT_LABELS = {
    "train": "train",
    "train_covost": "train",
    "dev": "dev",
    "test": "test",
}
COVOST_COLUMNS = ("path", "translation", "split")
CV_COLUMNS = ("path", "sentence", "client_id")
MANIFEST_COLUMNS = (
    "ID",
    "duration",
    "wav",
    "sentence",
    "translation",
    "lang",
    "client_id",
)
REPORT_FILE = "prepare_report.json"

# CoVoST 2's X->En resource groups, as its paper groups the X->En results
# (by hours of training speech: high fr/de/es/ca, 100 h and more; mid
# 10-49 h; low under 10 h). Codes are Common Voice locales.
COVOST2_X_EN_RESOURCE_GROUPS = {
    "high": tuple("fr de es ca".split()),
    "mid": tuple("fa it ru pt zh-CN".split()),
    "low": tuple("tr ar et mn nl sv-SE lv sl ta ja id cy".split()),
}
# The 21 X->En source languages, in the order CoVoST 2 lists them.
COVOST2_X_EN_SOURCES = tuple(
    "fr de es ca it ru zh-CN pt fa et mn nl tr ar sv-SE lv sl ta ja id cy".split()
)


class CoVoSTFormatError(ValueError):
    """A TSV row or clip is unusable (the message names file:line)."""


def tokenizer_path(save_folder, vocab_size, model_type="unigram"):
    """Where :func:`prepare_covost2` writes the SentencePiece model.

    Arguments
    ---------
    save_folder : str or Path
        The preparation's output folder.
    vocab_size : int
        Vocabulary size.
    model_type : str
        SentencePiece model type.

    Returns
    -------
    Path

    Example
    -------
    >>> tokenizer_path("save", 500).as_posix()
    'save/tokenizer/en_500_unigram.model'
    """
    return (
        Path(save_folder) / "tokenizer" / f"en_{vocab_size}_{model_type}.model"
    )


def covost2_locale(lang):
    """The CoVoST 2 source code a near-miss language name stands for.

    Arguments
    ---------
    lang : str
        A language as given (``zh``, ``sv``, ``zh_CN``, ``zh-cn``...).

    Returns
    -------
    str or None
        The CoVoST 2 X->En source code it differs from only in region or
        spelling (``zh-CN``, ``sv-SE``), None when there is none or
        ``lang`` is already one.

    Example
    -------
    >>> covost2_locale("zh"), covost2_locale("sv_SE"), covost2_locale("fa")
    ('zh-CN', 'sv-SE', None)
    """
    if lang in COVOST2_X_EN_SOURCES:
        return None
    base = lang.replace("_", "-").split("-")[0].lower()
    for code in COVOST2_X_EN_SOURCES:
        if code.split("-")[0].lower() == base:
            return code
    return None


def check_language_files(data_folder, covost_folder, languages):
    """Raises unless every language's folder and TSVs exist.

    Checked before any work, so that a language missing from a 21-pair
    preparation stops it at once rather than after the others.

    Arguments
    ---------
    data_folder : str or Path
        Root of the Common Voice release.
    covost_folder : str or Path
        Folder of the ``covost_v2.<src>_en.tsv`` files.
    languages : list of str
        The source languages.

    Raises
    ------
    FileNotFoundError
        Naming every missing path (``<data_folder>/<src>``, its
        ``validated.tsv``, ``covost_v2.<src>_en.tsv``), with the CoVoST 2
        code of a near-miss language name.
    """
    data_folder, covost_folder = Path(data_folder), Path(covost_folder)
    missing = []
    for lang in languages:
        lang_dir = data_folder / lang
        paths = [
            lang_dir if not lang_dir.is_dir() else lang_dir / "validated.tsv",
            covost_folder / f"covost_v2.{lang}_en.tsv",
        ]
        gone = [str(path) for path in paths if not path.exists()]
        if gone:
            hint = covost2_locale(lang)
            hint = f" (CoVoST 2 names this source {hint!r})" if hint else ""
            missing.append(f"{lang}{hint}: " + ", ".join(gone))
    if missing:
        raise FileNotFoundError(
            "missing CoVoST 2 / Common Voice files for "
            f"{len(missing)} of {len(languages)} languages (data_folder "
            "must be the root of a Common Voice release with "
            "<src>/validated.tsv, covost_folder hold covost_v2.<src>_en.tsv):"
            "\n  " + "\n  ".join(missing)
        )


def prepare_covost2(
    data_folder,
    save_folder,
    languages,
    covost_folder=None,
    min_duration=0.5,
    max_duration=20.0,
    vocab_size=None,
    tokenizer_model_type="unigram",
    tokenizer_file=None,
    skip_bad_rows=False,
):
    """Writes the X->En manifests (and target vocabulary) for ``languages``.

    Arguments
    ---------
    data_folder : str
        Root of the Common Voice release (``<src>/validated.tsv``,
        ``<src>/clips``).
    save_folder : str
        Where the manifests, the report and the tokenizer go.
    languages : list of str
        CoVoST 2 source languages (Common Voice locales), e.g.
        ``["fa", "et"]``, or all of ``COVOST2_X_EN_SOURCES`` (``zh-CN``
        and ``sv-SE`` with their region).
    covost_folder : str, optional
        Folder of the ``covost_v2.<src>_en.tsv`` files (``data_folder``
        by default).
    min_duration : float
        Shortest clip kept, in seconds.
    max_duration : float
        Longest clip kept, in seconds.
    vocab_size : int, optional
        Train a SentencePiece target vocabulary of this size (``None``: a
        pretrained decoder brings its own tokenizer).
    tokenizer_model_type : str
        ``unigram`` or ``bpe``.
    tokenizer_file : str, optional
        Where the SentencePiece model goes (default
        :func:`tokenizer_path`).
    skip_bad_rows : bool
        Count and skip malformed rows and missing clips instead of
        stopping with an error naming the file and line.

    Returns
    -------
    dict
        The report: per language and split, kept and dropped counts with
        reasons, and kept hours.
    """
    languages = list(languages)
    if not languages:
        raise ValueError("no source language given to prepare_covost2")
    if len(set(languages)) != len(languages):
        raise ValueError(f"duplicate languages in {languages}")
    if "en" in languages:
        raise ValueError("X->En translation: 'en' cannot be a source language")
    covost_folder = covost_folder or data_folder
    save_folder = Path(save_folder)
    if vocab_size is not None and tokenizer_file is None:
        tokenizer_file = tokenizer_path(
            save_folder, vocab_size, tokenizer_model_type
        )
    options = {
        "data_folder": os.path.abspath(data_folder),
        "covost_folder": os.path.abspath(covost_folder),
        "languages": languages,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "vocab_size": vocab_size,
        "tokenizer_model_type": tokenizer_model_type,
        "tokenizer_file": (
            os.path.abspath(tokenizer_file) if vocab_size is not None else None
        ),
        "skip_bad_rows": skip_bad_rows,
    }
    outputs = [f"{split}.csv" for split in SPLITS] + [REPORT_FILE]
    if options["tokenizer_file"] is not None:
        outputs.append(options["tokenizer_file"])  # absolute: kept as is
    if already_prepared(save_folder, options, outputs):
        logger.info(f"CoVoST 2 manifests in {save_folder} are up to date")
        return json.loads((save_folder / REPORT_FILE).read_text())

    check_language_files(data_folder, covost_folder, languages)
    others = [lang for lang in languages if lang not in COVOST2_X_EN_SOURCES]
    if others:
        logger.warning(
            f"{others}: not CoVoST 2 X->En sources {list(COVOST2_X_EN_SOURCES)}"
        )
    save_folder.mkdir(parents=True, exist_ok=True)
    report = {}
    rows = {split: [] for split in SPLITS}
    for lang in languages:
        kept, report[lang] = _prepare_language(
            Path(data_folder),
            Path(covost_folder),
            lang,
            min_duration,
            max_duration,
            skip_bad_rows,
        )
        for split in SPLITS:
            rows[split].extend(kept[split])
        logger.info(
            f"{lang}->en: "
            + "; ".join(
                f"{split} kept {report[lang][split]['kept']} "
                f"({report[lang][split]['kept_hours']:.2f} h), dropped "
                f"{report[lang][split]['dropped']} "
                f"{report[lang][split]['dropped_by_reason']}"
                for split in SPLITS
            )
        )
        for split in SPLITS:
            # A language without test (or dev) utterances would vanish
            # from the per-pair BLEU report: an error, not a silent drop.
            if report[lang][split]["kept"] == 0:
                raise ValueError(
                    f"{lang}: no {split} utterance kept (report: "
                    f"{report[lang][split]}); check data_folder, "
                    "covost_folder and the duration filters"
                )

    for split in SPLITS:
        write_manifest(
            save_folder / f"{split}.csv", rows[split], MANIFEST_COLUMNS
        )
    if vocab_size is not None:
        train_sentencepiece(
            [row["translation"] for row in rows["train"]],
            tokenizer_file,
            vocab_size,
            tokenizer_model_type,
        )
    (save_folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
    # Written last: its presence means everything above completed.
    mark_prepared(save_folder, options)
    return report


def _open_tsv(path, columns, escapechar=None):
    """Rows of an unquoted TSV as ``(line, fields)``, and the header map."""
    if not path.is_file():
        raise FileNotFoundError(f"missing TSV {path}")
    handle = open(path, encoding="utf-8", newline="")
    # CoVoST's TSVs are written unquoted with "\" escapes (pandas
    # QUOTE_NONE, escapechar="\\"); Common Voice's are unquoted.
    reader = csv.reader(
        handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar=escapechar
    )
    header = next(reader, None)
    if header is None or not set(columns) <= set(header):
        handle.close()
        raise CoVoSTFormatError(
            f"{path}:1: header {header} lacks the columns {list(columns)}"
        )
    return handle, reader, header


def _read_validated(lang_dir, skip_bad_rows, dropped):
    """``{clip: (sentence, client_id)}`` of ``validated.tsv``."""
    path = lang_dir / "validated.tsv"
    handle, reader, header = _open_tsv(path, CV_COLUMNS)
    column = {name: header.index(name) for name in CV_COLUMNS}
    clips = {}
    with handle:
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                message = (
                    f"{path}:{line}: {len(row)} fields, header has "
                    f"{len(header)}"
                )
                if not skip_bad_rows:
                    raise CoVoSTFormatError(message)
                logger.warning(f"skipped: {message}")
                dropped["malformed_validated_row"] += 1
                continue
            clips[row[column["path"]]] = (
                " ".join(row[column["sentence"]].split()),
                row[column["client_id"]],
            )
    return clips


def _read_clip_durations(lang_dir):
    """Clip durations in seconds from ``clip_durations.tsv`` if present."""
    path = lang_dir / "clip_durations.tsv"
    if not path.is_file():
        return {}
    durations = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader, None)
        for line, row in enumerate(reader, start=2):
            try:
                durations[row[0]] = float(row[1]) / 1000.0
            except (IndexError, ValueError) as error:
                raise CoVoSTFormatError(
                    f"{path}:{line}: expected 'clip<TAB>duration[ms]', "
                    f"got {row!r}"
                ) from error
    return durations


def _prepare_language(
    data_folder, covost_folder, lang, min_dur, max_dur, skip_bad_rows
):
    """Joins one CoVoST TSV with the release; returns rows and counts."""
    lang_dir = data_folder / lang
    if not lang_dir.is_dir():
        raise FileNotFoundError(
            f"language folder {lang_dir} not found; is data_folder the root "
            "of a Common Voice release?"
        )
    dropped = {split: Counter() for split in SPLITS}
    validated_dropped = Counter()
    validated = _read_validated(lang_dir, skip_bad_rows, validated_dropped)
    durations = _read_clip_durations(lang_dir)
    kept = {split: [] for split in SPLITS}
    path = covost_folder / f"covost_v2.{lang}_en.tsv"
    handle, reader, header = _open_tsv(path, COVOST_COLUMNS, escapechar="\\")
    column = {name: header.index(name) for name in COVOST_COLUMNS}
    seen = {}

    def reject(split, reason, message):
        """Raises on a bad row, or logs and counts it with ``skip_bad_rows``."""
        if not skip_bad_rows:
            raise CoVoSTFormatError(message)
        logger.warning(f"skipped: {message}")
        dropped[split][reason] += 1

    with handle:
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                reject(
                    "train",
                    "malformed_row",
                    f"{path}:{line}: {len(row)} fields, header has "
                    f"{len(header)}",
                )
                continue
            label = row[column["split"]]
            split = SPLIT_LABELS.get(label)
            if split is None:
                reject(
                    "train",
                    "unknown_split",
                    f"{path}:{line}: split {label!r} is none of "
                    f"{sorted(SPLIT_LABELS)}",
                )
                continue
            clip = row[column["path"]]
            if clip in seen:
                reject(
                    split,
                    "duplicate_clip",
                    f"{path}:{line}: clip {clip} already listed on line "
                    f"{seen[clip]}",
                )
                continue
            seen[clip] = line
            translation = " ".join(row[column["translation"]].split())
            if clip not in validated:
                dropped[split]["not_in_validated_tsv"] += 1
                continue
            if not translation:
                dropped[split]["empty_translation"] += 1
                continue
            clip_path = lang_dir / "clips" / clip
            if not clip_path.is_file():
                reject(
                    split,
                    "missing_clip",
                    f"{path}:{line}: clip {clip_path} not found",
                )
                continue
            duration = durations.get(clip)
            if duration is None:
                try:
                    duration = audio_duration(clip_path)
                except AudioReadError as error:
                    reject(split, "unreadable_clip", f"{path}:{line}: {error}")
                    continue
            if duration < min_dur:
                dropped[split]["too_short"] += 1
                continue
            if duration > max_dur:
                dropped[split]["too_long"] += 1
                continue
            sentence, client_id = validated[clip]
            kept[split].append(
                {
                    "ID": f"{lang}-{Path(clip).stem}",
                    "duration": f"{duration:.3f}",
                    "wav": f"$data_root/{lang}/clips/{clip}",
                    "sentence": sentence,
                    "translation": translation,
                    "lang": lang,
                    "client_id": client_id,
                }
            )
    report = {
        split: {
            "kept": len(kept[split]),
            "kept_hours": sum(float(r["duration"]) for r in kept[split]) / 3600,
            "dropped": sum(dropped[split].values()),
            "dropped_by_reason": dict(dropped[split]),
        }
        for split in SPLITS
    }
    report["validated_tsv"] = {
        "clips": len(validated),
        "dropped_by_reason": dict(validated_dropped),
    }
    return kept, report


def train_sentencepiece(texts, model_path, vocab_size, model_type="unigram"):
    """Trains the target SentencePiece model on ``texts``.

    Ids: ``pad=0, bos=1, eos=2, unk=3``. The vocabulary size is exact
    (SentencePiece's hard limit), so a decoder built for ``vocab_size``
    outputs matches it; a corpus too small for it is SentencePiece's error.

    Arguments
    ---------
    texts : list of str
        Training sentences.
    model_path : str or Path
        ``<prefix>.model`` to write (with ``<prefix>.vocab``).
    vocab_size : int
        Number of pieces, special ids included.
    model_type : str
        ``unigram`` or ``bpe``.

    Returns
    -------
    Path
        ``model_path``.

    Example
    -------
    >>> import tempfile
    >>> import sentencepiece as spm
    >>> from speechbrain_sense.synthetic.common_voice import load_builtin_sentences
    >>> path = train_sentencepiece(
    ...     load_builtin_sentences("en"), Path(tempfile.mkdtemp()) / "t.model", 80
    ... )
    >>> sp = spm.SentencePieceProcessor(model_file=str(path))
    >>> sp.get_piece_size(), sp.pad_id(), sp.bos_id(), sp.eos_id()
    (80, 0, 1, 2)
    """
    import sentencepiece as spm

    model_path = Path(model_path)
    if model_path.suffix != ".model":
        raise ValueError(f"{model_path} must end with .model")
    model_path.parent.mkdir(parents=True, exist_ok=True)
    texts = [text for text in texts if text]
    if not texts:
        raise ValueError("no training text for the SentencePiece model")
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_prefix=str(model_path.with_suffix("")),
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=1.0,
            pad_id=0,
            bos_id=1,
            eos_id=2,
            unk_id=3,
            minloglevel=2,
        )
    except RuntimeError as error:
        raise ValueError(
            f"SentencePiece could not train a {vocab_size}-piece vocabulary "
            f"on {len(texts)} training translations (lower vocab_size): "
            f"{error}"
        ) from error
    logger.info(
        f"SentencePiece {model_type} target vocabulary ({vocab_size}) "
        f"trained on {len(texts)} translations: {model_path}"
    )
    return model_path
