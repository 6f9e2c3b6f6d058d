"""Data preparation for SENSIA: parallel sentences in three formats.

Reads a training bitext (``train_format``: "manythings" for the
ManyThings.org Tatoeba exports, "tsv" for ``src<TAB>tgt`` lines, "moses"
for two line-aligned files) and an optional test bitext (e.g. the LASER
Tatoeba test set, Moses layout), and writes SpeechBrain CSV manifests with
the columns ``ID, src, tgt, origin`` into ``save_folder``:

* ``test.csv``: the test bitext, or, without one, ``test_size`` pairs held
  out of the training bitext;
* ``dev.csv``: ``dev_size`` held-out pairs, all sources distinct and all
  targets distinct, so that bitext retrieval on them is well defined (the
  recipe also probes R@1 on its first ``probe_size`` pairs during training);
* ``train.csv``: the rest, subsampled to ``train_fraction`` and capped at
  ``max_train_pairs`` (the held-out sets depend on neither, so
  low-resource runs are comparable);
* ``lexicon.tsv``: word translations induced from all the non-test pairs
  (:func:`speechbrain_sense.sensia.analysis.dice_lexicon`), the aligned
  word pairs of the analysis; also independent of ``train_fraction``.

Training pairs with an empty side, longer than ``max_words`` words on a
side, or duplicated are dropped (test pairs are only checked for empty
sides and duplicates: a benchmark is used whole), and so is every training
pair that shares a source
or a target sentence with the dev or test pairs (Tatoeba repeats sentences
with several translations; such pairs would leak the held-out answers).
Counts per reason are logged and written to ``prepare_report.json``.
Preparation is skipped when the manifests exist and were written with the
same options; changed options redo it.

Malformed input raises
:class:`speechbrain_sense.sensia.parallel_data.ParallelFormatError` naming
the file and line.

Authors
 * speechbrain-sense developers 2026
"""

import json
import os
import random
from collections import Counter
from pathlib import Path

from speechbrain.utils.logger import get_logger

from speechbrain_sense.data.preparation import (
    already_prepared,
    mark_prepared,
    write_manifest,
)
from speechbrain_sense.sensia.analysis import dice_lexicon
from speechbrain_sense.sensia.parallel_data import (
    normalize_sentence,
    read_parallel,
)

logger = get_logger(__name__)

SPLITS = ("train", "dev", "test")
MANIFEST_COLUMNS = ("ID", "src", "tgt", "origin")
LEXICON_FILE = "lexicon.tsv"
REPORT_FILE = "prepare_report.json"
# Part of the recorded options: bump it when the output of the same
# options changes, so that existing manifests are prepared again.
PREPARE_VERSION = 2
OUTPUTS = [f"{split}.csv" for split in SPLITS] + [LEXICON_FILE, REPORT_FILE]


def prepare_parallel(
    data_folder,
    save_folder,
    train_file,
    train_format="manythings",
    test_file=None,
    test_format="moses",
    dev_size=1000,
    test_size=1000,
    train_fraction=1.0,
    max_train_pairs=None,
    max_words=50,
    lexicon_min_count=5,
    lexicon_max_pairs=2000,
    seed=1234,
):
    """Writes the SENSIA manifests and the analysis lexicon.

    Arguments
    ---------
    data_folder : str
        Root that the file names below are relative to.
    save_folder : str
        Where the manifests, the lexicon and the report go.
    train_file : str or list of str
        Training bitext; ``[src_file, tgt_file]`` for "moses".
    train_format : str
        "manythings", "tsv" or "moses".
    test_file : str or list of str, optional
        Test bitext; None holds ``test_size`` pairs out of the training one.
    test_format : str
        Format of ``test_file``.
    dev_size : int
        Held-out dev pairs.
    test_size : int
        Held-out test pairs when there is no ``test_file``.
    train_fraction : float
        Share of the remaining training pairs kept, in (0, 1].
    max_train_pairs : int, optional
        At most this many training pairs (after ``train_fraction``): the
        paper's 100k-pair ablation, and the 2x / 4x data of the scratch
        baselines. The pairs are a prefix of one seeded shuffle, so a
        smaller budget's pairs are among a larger one's. Asking for more
        than the bitext has is an error, not a silently smaller run.
    max_words : int
        Longest training sentence kept (whitespace words, either side).
    lexicon_min_count : int
        Rarest word (in sentence pairs) considered for the lexicon.
    lexicon_max_pairs : int
        Largest lexicon kept.
    seed : int
        Seed of the held-out draws and of the subsampling.

    Returns
    -------
    dict
        The report: kept pairs per split, dropped pairs per reason.
    """
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction={train_fraction} not in (0, 1]")
    if max_train_pairs is not None and int(max_train_pairs) < 1:
        raise ValueError(f"max_train_pairs={max_train_pairs} is not >= 1")
    save_folder = Path(save_folder)
    options = {
        "version": PREPARE_VERSION,
        "data_folder": os.path.abspath(data_folder),
        "train_file": train_file,
        "train_format": train_format,
        "test_file": test_file,
        "test_format": test_format,
        "dev_size": dev_size,
        "test_size": test_size,
        "train_fraction": train_fraction,
        "max_train_pairs": max_train_pairs,
        "max_words": max_words,
        "lexicon_min_count": lexicon_min_count,
        "lexicon_max_pairs": lexicon_max_pairs,
        "seed": seed,
    }
    if already_prepared(save_folder, options, OUTPUTS):
        logger.info(f"SENSIA manifests in {save_folder} are up to date")
        return json.loads((save_folder / REPORT_FILE).read_text())
    save_folder.mkdir(parents=True, exist_ok=True)
    root = Path(data_folder)
    dropped = Counter()

    test = []
    if test_file:
        test = _clean(_read(root, test_file, test_format), None, dropped)
        test = _distinct_sides(test, len(test), dropped, "test")
    pairs = _clean(_read(root, train_file, train_format), max_words, dropped)
    held_src = {p["src"] for p in test}
    held_tgt = {p["tgt"] for p in test}
    pairs = _drop_overlaps(pairs, held_src, held_tgt, dropped, "overlaps_test")

    rng = random.Random(seed)
    rng.shuffle(pairs)
    dev = _distinct_sides(pairs, dev_size, dropped, None)
    taken = {id(p) for p in dev}
    if not test_file:
        rest = [p for p in pairs if id(p) not in taken]
        test = _distinct_sides(rest, test_size, dropped, None)
        taken |= {id(p) for p in test}
    rest = [p for p in pairs if id(p) not in taken]
    held_src = {p["src"] for p in dev + test}
    held_tgt = {p["tgt"] for p in dev + test}
    rest = _drop_overlaps(rest, held_src, held_tgt, dropped, "overlaps_heldout")

    # The lexicon sees every non-test pair, whatever train_fraction is.
    lexicon = dice_lexicon(
        [(p["src"], p["tgt"]) for p in rest + dev],
        min_count=lexicon_min_count,
        max_pairs=lexicon_max_pairs,
    )
    n_train = max(1, int(round(train_fraction * len(rest)))) if rest else 0
    dropped["train_fraction"] += len(rest) - n_train
    if max_train_pairs is not None:
        if int(max_train_pairs) > n_train:
            raise ValueError(
                f"max_train_pairs={max_train_pairs} but {train_file} leaves "
                f"{n_train} training pairs (after the held-out sets, the "
                f"filters and train_fraction; dropped: {dict(dropped)})"
            )
        dropped["max_train_pairs"] += n_train - int(max_train_pairs)
        n_train = int(max_train_pairs)
    train = rest[:n_train]  # already shuffled

    rows = {"train": train, "dev": dev, "test": test}
    for split in SPLITS:
        if not rows[split]:
            raise ValueError(f"no {split} pair left after filtering")
        for i, row in enumerate(rows[split]):
            row["ID"] = f"{split}-{i:07d}"
        write_manifest(
            save_folder / f"{split}.csv", rows[split], MANIFEST_COLUMNS
        )
    _write_lexicon(save_folder / LEXICON_FILE, lexicon)

    report = {split: {"pairs": len(rows[split])} for split in SPLITS}
    report["lexicon_pairs"] = len(lexicon)
    report["dropped_by_reason"] = dict(dropped)
    logger.info(
        f"kept train {len(train)}, dev {len(dev)}, test {len(test)} pairs; "
        f"lexicon {len(lexicon)} word pairs; dropped {dict(dropped)}"
    )
    (save_folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
    # Written last: its presence means everything above completed.
    mark_prepared(save_folder, options)
    return report


def _read(root, files, fmt):
    """Reads one corpus's sentence pairs in ``fmt``, checking the file list."""
    if fmt == "moses":
        if isinstance(files, str) or len(files) != 2:
            raise ValueError("the moses format needs [src_file, tgt_file]")
        return read_parallel(
            "moses", src_path=root / files[0], tgt_path=root / files[1]
        )
    if not isinstance(files, str):
        raise ValueError(f"the {fmt} format needs one file, got {files}")
    return read_parallel(fmt, path=root / files)


def _clean(pairs, max_words, dropped):
    """Normalised, non-empty, not too long, de-duplicated pairs (dicts)."""
    kept, seen = [], set()
    for pair in pairs:
        src, tgt = normalize_sentence(pair.src), normalize_sentence(pair.tgt)
        if not src or not tgt:
            dropped["empty_side"] += 1
        elif max_words and max(len(src.split()), len(tgt.split())) > max_words:
            dropped["too_long"] += 1
        elif (src, tgt) in seen:
            dropped["duplicate"] += 1
        else:
            seen.add((src, tgt))
            kept.append({"src": src, "tgt": tgt, "origin": pair.origin})
    return kept


def _distinct_sides(pairs, size, dropped, reason):
    """Up to ``size`` pairs, no source or target sentence twice."""
    chosen, src, tgt = [], set(), set()
    for pair in pairs:
        if len(chosen) == size:
            break
        if pair["src"] in src or pair["tgt"] in tgt:
            if reason:
                dropped[f"repeated_side_{reason}"] += 1
            continue
        src.add(pair["src"])
        tgt.add(pair["tgt"])
        chosen.append(pair)
    return chosen


def _drop_overlaps(pairs, src, tgt, dropped, reason):
    """Keeps pairs sharing no side with ``src``/``tgt``, counting the rest."""
    kept = [p for p in pairs if p["src"] not in src and p["tgt"] not in tgt]
    dropped[reason] += len(pairs) - len(kept)
    return kept


def _write_lexicon(path, lexicon):
    """Writes ``english<TAB>target<TAB>dice`` lines atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "".join(f"{e}\t{f}\t{dice:.4f}\n" for e, f, dice in lexicon),
        encoding="utf-8",
    )
    os.replace(tmp, path)


def read_lexicon(path):
    """``(source word, target word, dice)`` triples of ``lexicon.tsv``."""
    lexicon = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            e, f_word, dice = line.rstrip("\n").split("\t")
            lexicon.append((e, f_word, float(dice)))
    return lexicon
