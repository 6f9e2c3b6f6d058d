"""Data preparation for speech summarization on SLUE-TED.

Reads a SLUE-TED release (SLUE Phase-2, ``asapp/slue-phase-2`` config
``ted``)::

    <data_folder>/slue-ted_fine-tune.tsv   id, transcript, speaker, split,
    <data_folder>/slue-ted_dev.tsv         title, abstract
    <data_folder>/slue-ted_test.tsv
    <data_folder>/<split>/<id>.flac

(the unzipped ``slue-ted_<split>.zip`` archives; the layout ESPnet's
``slue-ted`` recipe builds, ``<data_folder>/slue-ted_<split>/
slue-ted_<split>.tsv`` with ``slue-ted_<split>/<split>/<id>.flac``, is
found too; fields may be quoted, as pandas writes them) and writes
``train.csv``, ``dev.csv`` and ``test.csv`` into ``save_folder`` with the
columns

    ID, duration, wav, summary, title, speaker

where ``wav`` is relative to ``$data_root`` (``data_folder``) and
``summary`` is the target: the abstract, or ``"<title>. <abstract>"``
with ``summary_target: title_abstract`` (SLUE's baselines predict title
and abstract together). A test TSV without a title and an abstract (the
blind release) gives a test manifest with empty summaries; the recipe then
writes hypotheses only.

Talks outside ``[min_duration, max_duration]`` seconds and rows with an
empty summary are dropped, counted per reason in the log and in
``prepare_report.json``. A malformed row or a missing audio file is an
error naming the file and line (``skip_bad_rows`` counts and skips them
instead). Preparation is skipped when the manifests exist and were written
with the same options.

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

# SLUE-TED split names -> manifest names
SPLITS = {"fine-tune": "train", "dev": "dev", "test": "test"}
SUMMARY_COLUMNS = ("title", "abstract")
MANIFEST_COLUMNS = ("ID", "duration", "wav", "summary", "title", "speaker")
SUMMARY_TARGETS = ("abstract", "title_abstract")
REPORT_FILE = "prepare_report.json"


class SlueTedFormatError(ValueError):
    """A TSV row or audio file of the release is unusable (file:line)."""


def summary_text(title, abstract, target="abstract"):
    """The summarization target of one talk.

    Arguments
    ---------
    title : str
        Talk title.
    abstract : str
        Talk abstract.
    target : str
        ``abstract`` or ``title_abstract``.

    Returns
    -------
    str
        Whitespace-normalised; empty when the needed fields are.

    Example
    -------
    >>> summary_text("Do schools kill creativity?", " He argues  that ...",
    ...              "title_abstract")
    'Do schools kill creativity? He argues that ...'
    >>> summary_text("The baker", "The baker sings.", "title_abstract")
    'The baker. The baker sings.'
    """
    if target not in SUMMARY_TARGETS:
        raise ValueError(f"summary_target must be one of {SUMMARY_TARGETS}")
    abstract = " ".join(abstract.split())
    if target == "abstract" or not abstract:
        return abstract
    title = " ".join(title.split())
    if title and title[-1] not in ".?!":
        title += "."
    return f"{title} {abstract}".strip()


def find_split(data_folder, split):
    """The TSV of a split and the folder of its audio.

    Arguments
    ---------
    data_folder : str or Path
        The SLUE-TED root.
    split : str
        ``fine-tune``, ``dev`` or ``test``.

    Returns
    -------
    tsv : Path
    audio_dir : Path
    """
    root = Path(data_folder)
    candidates = [
        (root / f"slue-ted_{split}.tsv", root / split),
        (
            root / f"slue-ted_{split}" / f"slue-ted_{split}.tsv",
            root / f"slue-ted_{split}" / split,
        ),
    ]
    for tsv, audio_dir in candidates:
        if tsv.is_file():
            return tsv, audio_dir
    raise FileNotFoundError(
        f"no slue-ted_{split}.tsv in {root} (nor in "
        f"{root / f'slue-ted_{split}'}); is data_folder the unzipped "
        "SLUE-TED release?"
    )


def prepare_slue_ted(
    data_folder,
    save_folder,
    summary_target="abstract",
    min_duration=1.0,
    max_duration=3600.0,
    skip_bad_rows=False,
):
    """Writes the summarization manifests of SLUE-TED.

    Arguments
    ---------
    data_folder : str
        SLUE-TED root (see the module docstring).
    save_folder : str
        Where ``train.csv``, ``dev.csv``, ``test.csv`` and the report go.
    summary_target : str
        ``abstract`` or ``title_abstract``.
    min_duration : float
        Shortest talk kept, in seconds.
    max_duration : float
        Longest talk kept, in seconds.
    skip_bad_rows : bool
        Count and skip malformed rows and missing audio instead of raising.

    Returns
    -------
    dict
        The report: per split, kept/dropped counts, reasons, hours, and
        whether the split is blind (no references).
    """
    if summary_target not in SUMMARY_TARGETS:
        raise ValueError(
            f"summary_target must be one of {SUMMARY_TARGETS}, got "
            f"{summary_target!r}"
        )
    save_folder = Path(save_folder)
    options = {
        "data_folder": os.path.abspath(data_folder),
        "summary_target": summary_target,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "skip_bad_rows": skip_bad_rows,
    }
    if already_prepared(
        save_folder,
        options,
        [f"{name}.csv" for name in SPLITS.values()] + [REPORT_FILE],
    ):
        logger.info(f"SLUE-TED manifests in {save_folder} are up to date")
        return json.loads((save_folder / REPORT_FILE).read_text())

    save_folder.mkdir(parents=True, exist_ok=True)
    report = {}
    for split, name in SPLITS.items():
        rows, stats = _prepare_split(
            Path(data_folder),
            split,
            summary_target,
            min_duration,
            max_duration,
            skip_bad_rows,
        )
        if not rows:
            raise ValueError(
                f"SLUE-TED {split}: no talk kept ({stats['dropped_by_reason']})"
            )
        write_manifest(save_folder / f"{name}.csv", rows, MANIFEST_COLUMNS)
        report[name] = stats
        logger.info(
            f"SLUE-TED {split} -> {name}.csv: kept {stats['kept']} talks "
            f"({stats['kept_hours']:.2f} h), dropped {stats['dropped']} "
            f"{stats['dropped_by_reason'] or ''}"
            + (" [blind: no references]" if stats["blind"] else "")
        )
    if report["train"]["blind"] or report["dev"]["blind"]:
        raise ValueError(
            "the fine-tune and dev TSVs need title and abstract columns"
        )
    (save_folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
    # Written last: its presence means everything above completed.
    mark_prepared(save_folder, options)
    return report


def _prepare_split(root, split, target, min_dur, max_dur, skip_bad_rows):
    """Reads one TSV; returns the manifest rows and the counts."""
    tsv, audio_dir = find_split(root, split)
    dropped = Counter()
    kept = []

    def reject(reason, message):
        """Raises on a bad row, or logs and counts it with ``skip_bad_rows``."""
        if not skip_bad_rows:
            raise SlueTedFormatError(message)
        logger.warning(f"skipped: {message}")
        dropped[reason] += 1

    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or "id" not in header:
            raise SlueTedFormatError(
                f"{tsv}:1: header {header} lacks the SLUE-TED column 'id'"
            )
        blind = not set(SUMMARY_COLUMNS) <= set(header)
        if blind and split != "test":
            raise SlueTedFormatError(
                f"{tsv}:1: header {header} lacks {list(SUMMARY_COLUMNS)}"
            )
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                reject(
                    "malformed_row",
                    f"{tsv}:{line}: {len(row)} fields, header has "
                    f"{len(header)}",
                )
                continue
            record = dict(zip(header, row))
            talk_id = record["id"].strip()
            title = record.get("title", "")
            summary = (
                "" if blind else summary_text(title, record["abstract"], target)
            )
            if not blind and not summary:
                dropped["empty_summary"] += 1
                continue
            audio = audio_dir / f"{talk_id}.flac"
            try:
                if not audio.is_file():
                    raise AudioReadError(f"audio file {audio} not found")
                duration = audio_duration(audio)
            except AudioReadError as error:
                reject("missing_audio", f"{tsv}:{line}: {error}")
                continue
            if duration < min_dur:
                dropped["too_short"] += 1
                continue
            if duration > max_dur:
                dropped["too_long"] += 1
                continue
            kept.append(
                {
                    "ID": talk_id,
                    "duration": f"{duration:.3f}",
                    "wav": "$data_root/" + audio.relative_to(root).as_posix(),
                    "summary": summary,
                    "title": " ".join(title.split()),
                    "speaker": record.get("speaker", "").strip(),
                }
            )
    stats = {
        "kept": len(kept),
        "kept_hours": sum(float(r["duration"]) for r in kept) / 3600,
        "dropped": sum(dropped.values()),
        "dropped_by_reason": dict(dropped),
        "blind": blind,
    }
    return kept, stats
