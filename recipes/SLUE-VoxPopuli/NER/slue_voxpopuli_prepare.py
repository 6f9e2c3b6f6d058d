"""SLUE-VoxPopuli manifests with tagged transcripts for end-to-end NER.

Reads a SLUE-VoxPopuli release (``slue-voxpopuli_{fine-tune,dev}.tsv``,
audio in ``{fine-tune,dev,test}/<id>.ogg``; ``.flac`` and ``.wav`` are
accepted too) and writes ``<save_folder>/{train,dev,test}.csv`` with the
columns ``ID, duration, wav, start, stop, channel, speaker, text, tagged``
(``wav`` relative to ``$data_root``; ``start``/``stop``/``channel`` empty:
whole file). ``text`` is ``normalized_text`` without the punctuation SLUE
removes (``. , ; ? !``); ``tagged`` is the same words with the
``normalized_combined_ner`` entities inline::

    thank you <PERSON> john smith > for your report

NER columns are Python lists of ``[label, first_char, num_chars]`` over
``normalized_text`` (``None`` or ``[]``: no entity). Entities must cover
whole words (a trailing punctuation mark may be left out). Without a
``normalized_combined_ner`` column (first releases), ``normalized_ner``'s
OntoNotes labels are mapped to SLUE's seven combined labels, dropping the
five SLUE discards (FAC, EVENT, WORK_OF_ART, PRODUCT, LANGUAGE), as
``slue_toolkit`` does.

SLUE's test labels are blind (``slue-voxpopuli_test_blind.tsv`` has no NER
column): by default the dev set is also the test set, as in SLUE's own
baselines; with ``test_split="test"`` a labelled
``slue-voxpopuli_test.tsv`` is read instead.

Authors
 * speechbrain-sense developers 2026
"""

import ast
import csv
import json
import os
import re
from collections import Counter
from pathlib import Path

from speechbrain.utils.logger import get_logger

from speechbrain_sense.audio import AudioReadError, audio_duration
from speechbrain_sense.data.preparation import (
    already_prepared,
    mark_prepared,
    write_manifest,
)
from speechbrain_sense.metrics.slu import format_tagged

logger = get_logger(__name__)

COMBINED_LABELS = ("LAW", "NORP", "ORG", "PERSON", "PLACE", "QUANT", "WHEN")
# slue_toolkit's raw_to_combined_tag_map; None: discarded.
ONTONOTES_TO_COMBINED = {
    "DATE": "WHEN",
    "TIME": "WHEN",
    "CARDINAL": "QUANT",
    "ORDINAL": "QUANT",
    "QUANTITY": "QUANT",
    "MONEY": "QUANT",
    "PERCENT": "QUANT",
    "GPE": "PLACE",
    "LOC": "PLACE",
    "NORP": "NORP",
    "ORG": "ORG",
    "LAW": "LAW",
    "PERSON": "PERSON",
    "FAC": None,
    "EVENT": None,
    "WORK_OF_ART": None,
    "PRODUCT": None,
    "LANGUAGE": None,
}
SPLIT_FILES = {
    "fine-tune": "slue-voxpopuli_fine-tune.tsv",
    "dev": "slue-voxpopuli_dev.tsv",
    "test": "slue-voxpopuli_test.tsv",
}
AUDIO_SUFFIXES = (".ogg", ".flac", ".wav")
MANIFEST_COLUMNS = (
    "ID",
    "duration",
    "wav",
    "start",
    "stop",
    "channel",
    "speaker",
    "text",
    "tagged",
)
PUNCTUATION = re.compile(r"[.,;?!]")
REPORT_FILE = "prepare_report.json"


class SlueFormatError(ValueError):
    """A SLUE TSV row that cannot be read (the message names file:line)."""


def prepare_slue_voxpopuli(
    data_folder,
    save_folder,
    test_split="dev",
    max_duration=30.0,
    skip_bad_rows=False,
):
    """Writes ``train.csv``, ``dev.csv`` and ``test.csv`` (idempotent).

    Arguments
    ---------
    data_folder : str or Path
        Root of the SLUE-VoxPopuli release.
    save_folder : str or Path
        Where the manifests and the report go.
    test_split : str
        ``"dev"`` (test = dev, SLUE's test labels are blind) or ``"test"``
        (a labelled ``slue-voxpopuli_test.tsv``).
    max_duration : float
        Longer utterances are dropped (counted in the report).
    skip_bad_rows : bool
        Skip (and count) malformed rows and missing audio instead of
        raising.

    Returns
    -------
    dict
        The report: per split, kept and dropped counts by reason, kept
        hours and entity counts per label.
    """
    if test_split not in ("dev", "test"):
        raise ValueError(
            f"test_split must be 'dev' or 'test', not {test_split}"
        )
    save_folder = Path(save_folder)
    options = {
        "data_folder": os.path.abspath(data_folder),
        "test_split": test_split,
        "max_duration": max_duration,
        "skip_bad_rows": skip_bad_rows,
    }
    if already_prepared(
        save_folder, options, ["train.csv", "dev.csv", "test.csv", REPORT_FILE]
    ):
        logger.info(f"SLUE-VoxPopuli manifests in {save_folder} are up to date")
        return json.loads((save_folder / REPORT_FILE).read_text())
    save_folder.mkdir(parents=True, exist_ok=True)
    sources = {"train": "fine-tune", "dev": "dev", "test": test_split}
    report = {}
    for split, source in sources.items():
        rows, stats = _prepare_split(
            Path(data_folder), source, max_duration, skip_bad_rows
        )
        if not rows:
            raise ValueError(
                f"no utterance kept from {SPLIT_FILES[source]} "
                f"(dropped: {stats['dropped_by_reason']})"
            )
        write_manifest(save_folder / f"{split}.csv", rows, MANIFEST_COLUMNS)
        report[split] = stats
        logger.info(
            f"{split} ({SPLIT_FILES[source]}): kept {stats['kept']} "
            f"({stats['kept_hours']:.2f} h), dropped {stats['dropped']} "
            f"{stats['dropped_by_reason']}, entities {stats['entities']}"
        )
    (save_folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
    # Written last: its presence means everything above completed.
    mark_prepared(save_folder, options)
    return report


def parse_spans(value, where):
    """Parses a SLUE NER cell into ``[(label, first_char, num_chars)]``.

    Arguments
    ---------
    value : str
        ``None``, ``[]`` or ``[['PLACE', 14, 5], ...]``.
    where : str
        ``file:line`` for error messages.

    Returns
    -------
    list of tuple

    Example
    -------
    >>> parse_spans("[['PLACE', 14, 5], ['WHEN', 28, 9]]", "x:2")
    [('PLACE', 14, 5), ('WHEN', 28, 9)]
    >>> parse_spans("None", "x:2")
    []
    """
    value = value.strip()
    if value in ("", "None", "[]"):
        return []
    try:
        spans = ast.literal_eval(value)
        out = []
        for label, start, length in spans:
            if not isinstance(label, str) or int(start) != start:
                raise ValueError
            if start < 0 or length <= 0:
                raise ValueError
            out.append((label, int(start), int(length)))
    except (ValueError, SyntaxError, TypeError) as error:
        raise SlueFormatError(
            f"{where}: NER spans {value!r} are not a list of "
            "[label, first_char, num_chars]"
        ) from error
    return out


def tag_transcript(text, spans, where):
    """Plain words and the tagged transcript of a normalized text.

    Arguments
    ---------
    text : str
        ``normalized_text``.
    spans : list of tuple
        ``(label, first_char, num_chars)`` over ``text``.
    where : str
        ``file:line`` for error messages.

    Returns
    -------
    plain : str
        The words, SLUE's punctuation removed.
    tagged : str
        The same words with the entities inline.

    Example
    -------
    >>> tag_transcript("we met anna novak in paris.",
    ...     [("PERSON", 7, 10), ("PLACE", 21, 5)], "x:2")
    ('we met anna novak in paris', 'we met <PERSON> anna novak > in <PLACE> paris >')
    """
    words, starts = [], []
    for match in re.finditer(r"\S+", text):
        words.append(match.group())
        starts.append(match.start())
    word_spans = []
    for label, first, length in sorted(spans, key=lambda span: span[1]):
        last = first + length
        covered = [
            i
            for i, (word, start) in enumerate(zip(words, starts))
            if start < last and start + len(word) > first
        ]
        if covered:
            end_word = covered[-1]
            bare_end = starts[end_word] + len(
                PUNCTUATION.sub("", words[end_word]) or words[end_word]
            )
        if (
            not covered
            or starts[covered[0]] != first
            or not bare_end <= last <= starts[end_word] + len(words[end_word])
        ):
            raise SlueFormatError(
                f"{where}: entity {label} at characters {first}:{last} "
                f"({text[first:last]!r}) does not cover whole words of "
                f"{text!r}"
            )
        if word_spans and covered[0] < word_spans[-1][2]:
            raise SlueFormatError(f"{where}: overlapping entities {spans}")
        word_spans.append((label, covered[0], covered[-1] + 1))
    # Remove punctuation, then words left empty (keeping spans aligned).
    cleaned = [PUNCTUATION.sub("", word) for word in words]
    keep = [i for i, word in enumerate(cleaned) if word]
    index = {old: new for new, old in enumerate(keep)}
    new_spans = []
    for label, start, end in word_spans:
        inside = [index[i] for i in range(start, end) if i in index]
        if not inside:
            raise SlueFormatError(
                f"{where}: entity {label} holds only punctuation"
            )
        new_spans.append((label, inside[0], inside[-1] + 1))
    plain_words = [cleaned[i] for i in keep]
    return " ".join(plain_words), format_tagged(plain_words, new_spans)


def _find_audio(data_folder, source, utt_id):
    """The utterance's audio file under any supported suffix, or None."""
    for suffix in AUDIO_SUFFIXES:
        path = data_folder / source / f"{utt_id}{suffix}"
        if path.is_file():
            return path
    return None


def _prepare_split(data_folder, source, max_duration, skip_bad_rows):
    """Reads one split's TSV into manifest rows and drop counts."""
    tsv = data_folder / SPLIT_FILES[source]
    if not tsv.is_file():
        hint = (
            " (SLUE's test labels are blind: use test_split='dev')"
            if source == "test"
            else ""
        )
        raise FileNotFoundError(f"missing SLUE-VoxPopuli file {tsv}{hint}")
    dropped, entities = Counter(), Counter()
    rows = []

    def reject(reason, message):
        """Raises on a bad row, or logs and counts it with ``skip_bad_rows``."""
        if not skip_bad_rows:
            raise SlueFormatError(message)
        logger.warning(f"skipped: {message}")
        dropped[reason] += 1

    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None) or []
        if "normalized_combined_ner" in header:
            ner_column, label_map = "normalized_combined_ner", None
        elif "normalized_ner" in header:
            ner_column, label_map = "normalized_ner", ONTONOTES_TO_COMBINED
        else:
            raise SlueFormatError(
                f"{tsv}:1: no normalized_combined_ner or normalized_ner "
                f"column in {header}"
            )
        for needed in ("id", "normalized_text"):
            if needed not in header:
                raise SlueFormatError(f"{tsv}:1: no {needed!r} column")
        column = {name: i for i, name in enumerate(header)}
        for line, fields in enumerate(reader, start=2):
            where = f"{tsv}:{line}"
            if not fields:
                continue
            if len(fields) != len(header):
                reject(
                    "malformed_row",
                    f"{where}: {len(fields)} fields, header has {len(header)}",
                )
                continue
            utt_id = fields[column["id"]]
            text = " ".join(fields[column["normalized_text"]].split())
            try:
                spans = []
                for label, first, length in parse_spans(
                    fields[column[ner_column]], where
                ):
                    if label_map is not None:
                        if label not in label_map:
                            raise SlueFormatError(
                                f"{where}: unknown OntoNotes label {label!r}"
                            )
                        label = label_map[label]
                        if label is None:
                            continue
                    if label not in COMBINED_LABELS:
                        raise SlueFormatError(
                            f"{where}: unknown SLUE label {label!r} (expected "
                            f"one of {COMBINED_LABELS})"
                        )
                    spans.append((label, first, length))
                plain, tagged = tag_transcript(text, spans, where)
            except SlueFormatError as error:
                reject("malformed_row", str(error))
                continue
            if not plain:
                dropped["empty_text"] += 1
                continue
            audio = _find_audio(data_folder, source, utt_id)
            try:
                if audio is None:
                    raise AudioReadError(
                        f"no audio {source}/{utt_id}"
                        f"{{{','.join(AUDIO_SUFFIXES)}}}"
                    )
                duration = audio_duration(audio)
            except AudioReadError as error:
                reject("missing_audio", f"{where}: {error}")
                continue
            if duration > max_duration:
                dropped["too_long"] += 1
                continue
            entities.update(label for label, _, _ in spans)
            speaker = (
                fields[column["speaker_id"]] if "speaker_id" in column else ""
            )
            rows.append(
                {
                    "ID": utt_id,
                    "duration": f"{duration:.3f}",
                    "wav": "$data_root/"
                    + audio.relative_to(data_folder).as_posix(),
                    "start": "",
                    "stop": "",
                    "channel": "",
                    "speaker": speaker,
                    "text": plain,
                    "tagged": tagged,
                }
            )
    stats = {
        "kept": len(rows),
        "kept_hours": sum(float(r["duration"]) for r in rows) / 3600,
        "dropped": sum(dropped.values()),
        "dropped_by_reason": dict(dropped),
        "entities": dict(sorted(entities.items())),
    }
    return rows, stats
