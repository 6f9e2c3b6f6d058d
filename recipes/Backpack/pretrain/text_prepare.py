"""Data preparation for English Backpack pretraining.

Collects English running text into SpeechBrain CSV manifests ``train.csv``,
``dev.csv`` and ``test.csv`` (columns ``ID, text, origin``) in
``save_folder``:

* ``train_files`` (plain text, one paragraph a line, e.g. WikiText-2's
  ``valid.txt``) and the English side of an optional ``parallel_file``
  (ManyThings/Tatoeba, TSV or Moses, see
  :mod:`speechbrain_sense.sensia.parallel_data`) are the training text;
  a ``dev_ratio`` share of it, drawn with ``seed``, is held out as dev.
* ``test_files`` are the test text (e.g. WikiText-2's ``test.txt``).
* The other side of ``parallel_file`` is *not* LM data: it goes, with the
  English training text, into ``tokenizer_text.txt``, from which the recipe
  trains a joint SentencePiece. The English model thus has pieces for the
  target language before it ever sees a sentence of it (see the README).
* Every sentence listed in ``exclude_files`` (e.g. the LASER Tatoeba test
  sets, both sides) is dropped everywhere, so that later retrieval tests do
  not measure memorisation.

With ``wikitext=True``, WikiText section headings (``= = Title = =``) are
dropped and its tokenisation (``@-@``, spaces before punctuation) is undone
so that it looks like the plain sentences of the other sources. Empty
lines, duplicates and excluded sentences are counted per reason, logged and
written to ``prepare_report.json``. Preparation is skipped when the
manifests exist and were written with the same options.

Malformed parallel input raises an error naming the file and line.

Authors
 * speechbrain-sense developers 2026
"""

import json
import os
import random
import re
from collections import Counter
from pathlib import Path

from speechbrain.utils.logger import get_logger

from speechbrain_sense.data.preparation import (
    already_prepared,
    mark_prepared,
    write_manifest,
)
from speechbrain_sense.sensia.parallel_data import (
    normalize_sentence,
    read_parallel,
)

logger = get_logger(__name__)

SPLITS = ("train", "dev", "test")
MANIFEST_COLUMNS = ("ID", "text", "origin")
TOKENIZER_TEXT = "tokenizer_text.txt"
REPORT_FILE = "prepare_report.json"
OUTPUTS = [f"{split}.csv" for split in SPLITS] + [TOKENIZER_TEXT, REPORT_FILE]

_HEADING = re.compile(r"^\s*=( =)* .* =( =)*\s*$")


def prepare_text_corpus(
    data_folder,
    save_folder,
    train_files,
    test_files,
    parallel_file=None,
    parallel_format="manythings",
    exclude_files=(),
    dev_ratio=0.02,
    wikitext=True,
    seed=1234,
):
    """Writes the pretraining manifests and the tokenizer training text.

    Arguments
    ---------
    data_folder : str
        Root that the file names below are relative to.
    save_folder : str
        Where manifests, ``tokenizer_text.txt`` and the report go.
    train_files : list of str
        Plain-text training files, one paragraph or sentence a line.
    test_files : list of str
        Plain-text test files.
    parallel_file : str or list of str, optional
        A bitext whose English (source) side is added to the training text
        and whose target side is only tokenizer text; a list of two files
        for the Moses format.
    parallel_format : str
        "manythings", "tsv" or "moses".
    exclude_files : list of str
        Plain-text files whose lines must never be used.
    dev_ratio : float
        Share of the training lines held out for dev.
    wikitext : bool
        Drop WikiText headings and undo its tokenisation.
    seed : int
        Seed of the dev draw.

    Returns
    -------
    dict
        The report: kept lines per split and dropped lines per reason.
    """
    if not train_files:
        raise ValueError("no train_files given")
    if not 0 < dev_ratio < 1:
        raise ValueError(f"dev_ratio={dev_ratio} must be in (0, 1)")
    save_folder = Path(save_folder)
    options = {
        "data_folder": os.path.abspath(data_folder),
        "train_files": list(train_files),
        "test_files": list(test_files),
        "parallel_file": parallel_file,
        "parallel_format": parallel_format,
        "exclude_files": list(exclude_files),
        "dev_ratio": dev_ratio,
        "wikitext": wikitext,
        "seed": seed,
    }
    if already_prepared(save_folder, options, OUTPUTS):
        logger.info(f"pretraining manifests in {save_folder} are up to date")
        return json.loads((save_folder / REPORT_FILE).read_text())
    save_folder.mkdir(parents=True, exist_ok=True)
    root = Path(data_folder)

    excluded = set()
    for name in exclude_files:
        for line in _read_lines(root / name):
            excluded.add(normalize_sentence(line))
    dropped = Counter()

    def keep(text, origin, seen, wiki):
        """Manifest row if the line may be used, else None (counted)."""
        if wiki:
            if _HEADING.match(text):
                dropped["heading"] += 1
                return None
            text = detokenize_wikitext(text)
        text = normalize_sentence(text)
        if not text:
            dropped["empty"] += 1
            return None
        if text in excluded:
            dropped["excluded"] += 1
            return None
        if text in seen:
            dropped["duplicate"] += 1
            return None
        seen.add(text)
        return {"text": text, "origin": origin}

    train, seen_train = [], set()
    for name in train_files:
        for number, line in enumerate(_read_lines(root / name), start=1):
            row = keep(line, f"{name}:{number}", seen_train, wikitext)
            if row:
                train.append(row)
    tokenizer_only = []
    if parallel_file:
        pairs = _read_bitext(root, parallel_file, parallel_format)
        for pair in pairs:
            # Bitexts hold plain sentences: no WikiText clean-up.
            row = keep(pair.src, pair.origin, seen_train, False)
            if row:
                train.append(row)
            target = normalize_sentence(pair.tgt)
            if target and target not in excluded:
                tokenizer_only.append(target)
        logger.info(
            f"{len(pairs)} bitext pairs: English side to the LM data, "
            f"{len(tokenizer_only)} target sentences to the tokenizer only"
        )
    # A test line may repeat a training line; both are kept.
    test, seen_test = [], set()
    for name in test_files:
        for number, line in enumerate(_read_lines(root / name), start=1):
            row = keep(line, f"{name}:{number}", seen_test, wikitext)
            if row:
                test.append(row)

    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n_dev = max(1, int(round(dev_ratio * len(train))))
    dev_ids = set(order[:n_dev])
    rows = {
        "train": [r for i, r in enumerate(train) if i not in dev_ids],
        "dev": [r for i, r in enumerate(train) if i in dev_ids],
        "test": test,
    }
    for split in SPLITS:
        if not rows[split]:
            raise ValueError(f"no {split} text left after filtering")
        for i, row in enumerate(rows[split]):
            row["ID"] = f"{split}-{i:07d}"
        write_manifest(
            save_folder / f"{split}.csv", rows[split], MANIFEST_COLUMNS
        )
    tokenizer_text = [r["text"] for r in rows["train"]] + tokenizer_only
    _write_text(save_folder / TOKENIZER_TEXT, tokenizer_text)

    report = {
        split: {
            "lines": len(rows[split]),
            "words": sum(len(r["text"].split()) for r in rows[split]),
        }
        for split in SPLITS
    }
    report["tokenizer_only_lines"] = len(tokenizer_only)
    report["dropped_by_reason"] = dict(dropped)
    for split in SPLITS:
        logger.info(
            f"{split}: kept {report[split]['lines']} lines "
            f"({report[split]['words']} words)"
        )
    logger.info(f"dropped: {dict(dropped)}")
    (save_folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
    # Written last: its presence means everything above completed.
    mark_prepared(save_folder, options)
    return report


def detokenize_wikitext(line):
    """Undo WikiText's tokenisation, so it reads like plain sentences.

    Example
    -------
    >>> detokenize_wikitext("a 1 @,@ 000 @-@ year ( long ) war , it 's over .")
    "a 1,000-year (long) war, it's over."
    """
    line = line.replace(" @-@ ", "-").replace(" @,@ ", ",")
    line = line.replace(" @.@ ", ".")
    line = re.sub(r" ([.,;:!?)\]}]|'s|n't|'re|'ve|'ll|'d|'m)\b", r"\1", line)
    line = re.sub(r" ([.,;:!?)\]}])", r"\1", line)
    line = re.sub(r"([(\[{]) ", r"\1", line)
    return line


def _read_bitext(root, parallel_file, parallel_format):
    """Reads the parallel corpus's sentence pairs, checking the file list."""
    if parallel_format == "moses":
        if isinstance(parallel_file, str) or len(parallel_file) != 2:
            raise ValueError(
                "the moses format needs parallel_file: [src_file, tgt_file]"
            )
        return read_parallel(
            "moses",
            src_path=root / parallel_file[0],
            tgt_path=root / parallel_file[1],
        )
    return read_parallel(parallel_format, path=root / parallel_file)


def _read_lines(path):
    """Lines of a UTF-8 text file; a clear error if it is missing."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"text file {path} not found")
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def _write_text(path, lines):
    """Writes one sentence per line atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)
