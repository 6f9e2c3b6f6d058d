"""Data preparation for multilingual SENSE training on Common Voice.

Reads ``<data_folder>/<lang>/{train,dev,test}.tsv`` of a Common Voice
release (any version with the standard TSV columns) for every requested
language and writes SpeechBrain CSV manifests ``train.csv``, ``dev.csv`` and
``test.csv`` into ``save_folder`` with the columns

    ID, duration, wav, sentence, lang, client_id

where ``wav`` is ``$data_root/<lang>/clips/<file>`` (the recipe replaces
``$data_root`` with ``data_folder``, so manifests survive moving the data).
Audio stays in its original 48 kHz MP3: the recipe decodes and resamples to
16 kHz in the DataLoader workers (``speechbrain_sense.audio.load_audio``).

Nothing is filtered by word count (that would silently remove languages
written without spaces); only clips outside ``[min_duration,
max_duration]`` seconds, empty sentences and, when allowed, unreadable clips
or malformed rows are dropped. Per-language kept/dropped counts with reasons
are logged and written to ``prepare_report.json``; a language left without
any training utterance is an error unless ``allow_empty_languages``. The
SAMU-XLSR language ratios of the kept training data go to
``language_ratios.json``.

Partial releases: ``languages="auto"`` takes every locale folder of
``data_folder`` (a folder holding ``train.tsv``), so a download of a few
locales needs no language list. A language without ``dev.tsv`` or
``test.tsv`` contributes nothing to that split (a warning, and
``"missing": true`` in its report entry); ``train.tsv`` is required.

Durations come from ``clip_durations.tsv`` when the release ships it, else
from each clip's header. Preparation is skipped when the manifests exist
and were written with the same options; any change of languages (for
``"auto"``: of the locale folders found) or options redoes it.

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
from speechbrain_sense.preparation import (
    already_prepared,
    mark_prepared,
    write_manifest,
)
from speechbrain_sense.sampling import save_language_ratios

logger = get_logger(__name__)

SPLITS = ("train", "dev", "test")
CV_COLUMNS = ("client_id", "path", "sentence")
MANIFEST_COLUMNS = ("ID", "duration", "wav", "sentence", "lang", "client_id")
REPORT_FILE = "prepare_report.json"
RATIOS_FILE = "language_ratios.json"
# ``languages`` value that selects every locale folder of ``data_folder``.
AUTO_LANGUAGES = "auto"
# Splits a partial release may lack (the language then has no such rows).
OPTIONAL_SPLITS = ("dev", "test")
OUTPUTS = [f"{split}.csv" for split in SPLITS] + [REPORT_FILE, RATIOS_FILE]


class CommonVoiceFormatError(ValueError):
    """A TSV row or clip of the release is unusable (message: file:line)."""


def prepare_common_voice(
    data_folder,
    save_folder,
    languages,
    min_duration=0.5,
    max_duration=20.0,
    language_alpha=0.05,
    allow_empty_languages=False,
    skip_bad_rows=False,
):
    """Writes the SENSE manifests for the given Common Voice languages.

    Arguments
    ---------
    data_folder : str
        Root of the Common Voice release (one folder per language).
    save_folder : str
        Where the manifests, the report and the language ratios go.
    languages : list of str or "auto"
        Common Voice locale codes (folder names), e.g. ``["en", "fr"]``,
        each of which must exist; or ``"auto"``: every locale folder of
        ``data_folder`` (see :func:`find_locales`).
    min_duration : float
        Shortest clip kept, in seconds.
    max_duration : float
        Longest clip kept, in seconds.
    language_alpha : float
        SAMU-XLSR re-balancing exponent for ``language_ratios.json``.
    allow_empty_languages : bool
        Accept a language whose training split keeps no utterance
        (otherwise an error).
    skip_bad_rows : bool
        Count and skip malformed TSV rows and unreadable or missing clips
        instead of stopping with an error that names the file and line.

    Returns
    -------
    dict
        The report: per language (in the order prepared, i.e. the resolved
        language list) and split, kept and dropped counts with reasons,
        and kept hours; a split whose TSV is absent has ``"missing":
        True`` and zero counts.
    """
    if isinstance(languages, str):
        if languages != AUTO_LANGUAGES:
            raise ValueError(
                f"languages must be a list of locale codes or "
                f"{AUTO_LANGUAGES!r}, not {languages!r}"
            )
        languages = find_locales(data_folder)
        if not languages:
            raise FileNotFoundError(
                f"languages={AUTO_LANGUAGES!r} found no locale folder (a "
                f"folder holding train.tsv) in data_folder {data_folder}; "
                "is it the root of a Common Voice release?"
            )
        logger.info(
            f"languages={AUTO_LANGUAGES!r}: {len(languages)} locales in "
            f"{data_folder}: {', '.join(languages)}"
        )
    languages = list(languages)
    if not languages:
        raise ValueError("no language given to prepare_common_voice")
    if len(set(languages)) != len(languages):
        raise ValueError(f"duplicate languages in {languages}")
    save_folder = Path(save_folder)
    # The resolved list, never "auto": adding or removing a locale folder
    # then changes the options and redoes the preparation.
    options = {
        "data_folder": os.path.abspath(data_folder),
        "languages": languages,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "language_alpha": language_alpha,
        "allow_empty_languages": allow_empty_languages,
        "skip_bad_rows": skip_bad_rows,
    }
    if already_prepared(save_folder, options, OUTPUTS):
        logger.info(f"Common Voice manifests in {save_folder} are up to date")
        return json.loads((save_folder / REPORT_FILE).read_text())

    save_folder.mkdir(parents=True, exist_ok=True)
    report = {}
    rows = {split: [] for split in SPLITS}
    for lang in languages:
        lang_dir = Path(data_folder) / lang
        if not lang_dir.is_dir():
            raise FileNotFoundError(
                f"language folder {lang_dir} not found; is data_folder the "
                "root of a Common Voice release?"
            )
        durations = _read_clip_durations(lang_dir)
        report[lang] = {}
        for split in SPLITS:
            kept, stats = _prepare_split(
                lang_dir,
                lang,
                split,
                durations,
                min_duration,
                max_duration,
                skip_bad_rows,
            )
            rows[split].extend(kept)
            report[lang][split] = stats
        train = report[lang]["train"]
        evaluation = "; ".join(
            f"{split} missing"
            if report[lang][split].get("missing")
            else f"{split} kept {report[lang][split]['kept']}"
            for split in OPTIONAL_SPLITS
        )
        logger.info(
            f"{lang}: train kept {train['kept']} "
            f"({train['kept_hours']:.2f} h), dropped {train['dropped']}; "
            f"{evaluation}"
        )

    empty = [lang for lang in languages if report[lang]["train"]["kept"] == 0]
    if empty and not allow_empty_languages:
        raise ValueError(
            f"no training utterance kept for {empty} (see the dropped counts "
            f"in the log); fix the data or filters, or set "
            "allow_empty_languages to train without them"
        )
    if len(empty) == len(languages):
        raise ValueError(
            f"no training utterance kept in any of {languages}; check "
            "data_folder and the duration filters"
        )
    for lang in empty:
        logger.warning(f"{lang}: no training utterance kept, language unused")

    for split in SPLITS:
        if not rows[split]:
            # Still written (header only): readers expect all three files.
            logger.warning(
                f"{split}.csv holds no utterance of any language (train.py "
                "needs dev and test utterances)"
            )
        write_manifest(
            save_folder / f"{split}.csv", rows[split], MANIFEST_COLUMNS
        )
    train_counts = Counter(row["lang"] for row in rows["train"])
    save_language_ratios(
        save_folder / RATIOS_FILE, dict(train_counts), language_alpha
    )
    (save_folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
    # Written last: its presence means everything above completed.
    mark_prepared(save_folder, options)
    return report


def find_locales(data_folder):
    """The locale folders of a Common Voice release, sorted.

    A folder counts as a locale when it holds ``train.tsv``; other
    folders (logged) and files are ignored.

    Arguments
    ---------
    data_folder : str or Path
        Root of the release.

    Returns
    -------
    list of str
        Folder names, e.g. ``["en", "fr"]``; empty when there is none
        (or ``data_folder`` does not exist).

    Example
    -------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("fr", "en", "notes"):
    ...     (root / name).mkdir()
    >>> for name in ("fr", "en"):
    ...     _ = (root / name / "train.tsv").write_text("")
    >>> find_locales(root)
    ['en', 'fr']
    """
    data_folder = Path(data_folder)
    if not data_folder.is_dir():
        return []
    locales, ignored = [], []
    for entry in sorted(data_folder.iterdir()):
        if entry.is_dir() and (entry / "train.tsv").is_file():
            locales.append(entry.name)
        elif entry.is_dir():
            ignored.append(entry.name)
    if ignored:
        logger.info(
            f"not locale folders (no train.tsv) in {data_folder}: "
            f"{', '.join(ignored)}"
        )
    return locales


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
                raise CommonVoiceFormatError(
                    f"{path}:{line}: expected 'clip<TAB>duration[ms]', "
                    f"got {row!r}"
                ) from error
    return durations


def _prepare_split(
    lang_dir, lang, split, durations, min_dur, max_dur, skip_bad_rows
):
    """Reads one TSV; returns the kept manifest rows and the counts."""
    tsv = lang_dir / f"{split}.tsv"
    dropped = Counter()
    kept = []
    if not tsv.is_file():
        if split not in OPTIONAL_SPLITS:
            raise FileNotFoundError(
                f"missing Common Voice training split {tsv} (only dev.tsv "
                "and test.tsv may be absent)"
            )
        logger.warning(f"{lang}: no {tsv}, {split} split skipped")
        stats = {
            "missing": True,
            "kept": 0,
            "kept_hours": 0.0,
            "dropped": 0,
            "dropped_by_reason": {},
        }
        return [], stats

    def reject(reason, message):
        if not skip_bad_rows:
            raise CommonVoiceFormatError(message)
        logger.warning(f"skipped: {message}")
        dropped[reason] += 1

    with open(tsv, encoding="utf-8", newline="") as f:
        # Common Voice TSVs are unquoted: quotes are part of the sentence.
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or not set(CV_COLUMNS) <= set(header):
            raise CommonVoiceFormatError(
                f"{tsv}:1: header {header} lacks the Common Voice columns "
                f"{list(CV_COLUMNS)}"
            )
        column = {name: header.index(name) for name in CV_COLUMNS}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                reject(
                    "malformed_row",
                    f"{tsv}:{line}: {len(row)} fields, header has "
                    f"{len(header)}",
                )
                continue
            clip = row[column["path"]]
            sentence = " ".join(row[column["sentence"]].split())
            if not sentence:
                dropped["empty_sentence"] += 1
                continue
            clip_path = lang_dir / "clips" / clip
            duration = durations.get(clip)
            if duration is None or not clip_path.is_file():
                try:
                    if not clip_path.is_file():
                        raise AudioReadError(f"clip {clip_path} not found")
                    duration = audio_duration(clip_path)
                except AudioReadError as error:
                    reject("unreadable_clip", f"{tsv}:{line}: {error}")
                    continue
            if duration < min_dur:
                dropped["too_short"] += 1
                continue
            if duration > max_dur:
                dropped["too_long"] += 1
                continue
            kept.append(
                {
                    "ID": f"{lang}-{Path(clip).stem}",
                    "duration": f"{duration:.3f}",
                    "wav": f"$data_root/{lang}/clips/{clip}",
                    "sentence": sentence,
                    "lang": lang,
                    "client_id": row[column["client_id"]],
                }
            )
    stats = {
        "kept": len(kept),
        "kept_hours": sum(float(r["duration"]) for r in kept) / 3600,
        "dropped": sum(dropped.values()),
        "dropped_by_reason": dict(dropped),
    }
    return kept, stats
