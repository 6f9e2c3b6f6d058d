"""Data preparation for multilingual SENSE training on Common Voice.

Reads ``<data_folder>/<lang>/{train,dev,test}.tsv`` of a Common Voice
release (any version with the ``client_id``, ``path`` and ``sentence``
columns) for every requested language and writes SpeechBrain CSV manifests ``train.csv``, ``dev.csv`` and
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

Releases: the preparation is tested against the layout of
``VALIDATED_RELEASE`` (its TSV header, ``RELEASE_COLUMNS``) and warns,
without stopping, when the release named in ``data_folder``'s path
(``cv-corpus-<version>-<date>``) is another one or cannot be told, and when
a locale's ``train.tsv`` header differs from that layout.
``language_filter="bge_m3"`` keeps only the locales the BGE-M3 teacher
covers and prints those it drops.

Partial releases: ``languages="auto"`` takes every locale folder of
``data_folder`` (a folder holding ``train.tsv``), so a download of a few
locales needs no language list. A language without ``dev.tsv`` or
``test.tsv`` contributes nothing to that split (a warning, and
``"missing": true`` in its report entry); ``train.tsv`` is required.

Every kept clip is checked before training (``verify_clips``, see
:mod:`speechbrain_sense.data.clip_check`): decoded in parallel worker processes,
with the verdicts cached in ``clip_checks.sqlite``, so that no corrupt,
truncated, empty, missing or too-short clip reaches training. TSVs are read
line by line as UTF-8 (a byte order mark is accepted): a bad byte is a row
error naming its file, line and column. Bad rows stop the preparation, or
with ``skip_bad_rows`` are counted per reason and the first of them named
in the report, up to ``max_bad_fraction`` of a split.

Durations come from ``clip_durations.tsv`` when the release ships it, else
from each clip's decoding. Preparation is skipped when the manifests exist
and were written with the same options; any change of languages (for
``"auto"``: of the locale folders found) or options redoes it.

Memory follows the largest locale, not the release: kept rows are
streamed to temporary manifests (renamed into place once every check has
passed, so a failed preparation leaves the previous manifests, or none),
only counts are kept per language and split (and 8 bytes per kept row of
the split being read, for its hours), and a locale's
``clip_durations.tsv`` is held as sorted arrays (16 bytes per clip) while
that locale is read.

Authors
 * speechbrain-sense developers 2026
"""

import array
import bisect
import codecs
import contextlib
import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from speechbrain_sense.data.clip_check import ClipVerifier
from speechbrain_sense.data.preparation import (
    COMMON_VOICE_COLUMNS,
    OPTIONS_FILE,
    ManifestWriter,
    already_prepared,
    mark_prepared,
)
from speechbrain_sense.data.sampling import save_language_ratios
from speechbrain_sense.teachers.sentence_encoders import (
    filter_teacher_languages,
)

logger = get_logger(__name__)

SPLITS = ("train", "dev", "test")
CV_COLUMNS = ("client_id", "path", "sentence")
# The release whose layout this preparation and its tests (the synthetic
# corpus of speechbrain_sense.synthetic.common_voice) reproduce. The SENSE
# authors do not say which release they trained on.
VALIDATED_RELEASE = "16.1"
# The clip TSV header of each release this preparation knows.
RELEASE_COLUMNS = COMMON_VOICE_COLUMNS
# How Mozilla names a release's root folder: cv-corpus-16.1-2023-12-06.
RELEASE_FOLDER = re.compile(
    r"cv-corpus-(\d+\.\d+)(?:-delta)?-\d{4}-\d{2}-\d{2}"
)
MANIFEST_COLUMNS = ("ID", "duration", "wav", "sentence", "lang", "client_id")
REPORT_FILE = "prepare_report.json"
RATIOS_FILE = "language_ratios.json"
# ``languages`` value that selects every locale folder of ``data_folder``.
AUTO_LANGUAGES = "auto"
# Splits a partial release may lack (the language then has no such rows).
OPTIONAL_SPLITS = ("dev", "test")
OUTPUTS = [f"{split}.csv" for split in SPLITS] + [REPORT_FILE, RATIOS_FILE]
# Verdicts of the clip checks (speechbrain_sense.data.clip_check), kept across
# preparations: a rerun opens no clip again.
CLIP_CHECKS_FILE = "clip_checks.sqlite"
# Rows whose clips are checked together (bounds memory, keeps row order).
CHECK_CHUNK = 4096
# Bad rows named in the report per language and split.
FIRST_BAD_ROWS = 20
# max_bad_fraction applies to a split with more bad rows than this: two bad
# clips of a 20-clip locale are not a broken download.
BAD_ROWS_ALWAYS_TOLERATED = 10
# Dropped rows that are damage, not filters: max_bad_fraction counts these.
BAD_ROW_REASONS = (
    "malformed_row",
    "bad_encoding",
    "missing_clip",
    "empty_clip",
    "corrupt_clip",
    "too_short_to_encode",
    "truncated_clip",
)


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
    verify_clips="decode",
    max_bad_fraction=0.01,
    num_workers=None,
    language_filter=None,
    common_voice_release=VALIDATED_RELEASE,
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
        Count and skip bad rows (malformed, not UTF-8) and bad clips
        (missing, empty, corrupt, truncated, shorter than one encoder
        frame) instead of stopping with an error that names the file and
        line.
    verify_clips : str
        How every kept clip is checked before training
        (:mod:`speechbrain_sense.data.clip_check`): ``"decode"`` (decoded
        whole), ``"header"`` (header only) or ``"none"`` (only that it
        exists). Verdicts are cached in ``clip_checks.sqlite`` of
        ``save_folder``.
    max_bad_fraction : float
        With ``skip_bad_rows``, the largest share of bad rows a language's
        split may have once it has more than ``BAD_ROWS_ALWAYS_TOLERATED``
        (10) of them; above it the preparation fails (a broken download is
        not a few bad clips).
    num_workers : int, optional
        Processes checking clips (default: the usable cores).
    language_filter : str, optional
        ``"bge_m3"``: keep only the locales the teacher covers
        (:func:`speechbrain_sense.teachers.sentence_encoders.filter_teacher_languages`, which
        prints those it drops); ``None`` keeps them all.
    common_voice_release : str, optional
        The release expected (``"16.1"``), checked by
        :func:`check_release`; ``None`` checks nothing.

    Returns
    -------
    dict
        The report: per language (in the order prepared, i.e. the resolved
        language list) and split, kept and dropped counts with reasons,
        and kept hours, and the first bad rows (``first_bad_rows``, by
        file and line) when any; a split whose TSV is absent has
        ``"missing": True`` and zero counts.
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
    languages = filter_teacher_languages(languages, language_filter)
    if not languages:
        raise ValueError("no language given to prepare_common_voice")
    if len(set(languages)) != len(languages):
        raise ValueError(f"duplicate languages in {languages}")
    for lang in languages:
        # "" would name data_folder itself, "a/b" or ".." another folder.
        if (
            not isinstance(lang, str)
            or not lang.strip()
            or Path(lang).name != lang
            or lang in (".", "..")
        ):
            raise ValueError(
                f"{lang!r} in languages is not a locale folder name "
                f"(languages: {languages})"
            )
    if common_voice_release is not None:
        check_release(data_folder, languages, common_voice_release)
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
        "verify_clips": verify_clips,
        "max_bad_fraction": max_bad_fraction,
    }
    if already_prepared(save_folder, options, OUTPUTS):
        logger.info(f"Common Voice manifests in {save_folder} are up to date")
        return json.loads((save_folder / REPORT_FILE).read_text())

    save_folder.mkdir(parents=True, exist_ok=True)
    report = {}
    filters = {
        "min_duration": min_duration,
        "max_duration": max_duration,
        "max_bad_fraction": max_bad_fraction,
    }
    with contextlib.ExitStack() as stack:
        verifier = stack.enter_context(
            ClipVerifier(
                save_folder / CLIP_CHECKS_FILE, verify_clips, num_workers
            )
        )
        # Temporary files until the commits below: an error on the way
        # (the ExitStack deletes them) leaves the manifests as they were.
        writers = {
            split: stack.enter_context(
                ManifestWriter(save_folder / f"{split}.csv", MANIFEST_COLUMNS)
            )
            for split in SPLITS
        }
        for lang in languages:
            lang_dir = Path(data_folder) / lang
            if not lang_dir.is_dir():
                raise FileNotFoundError(
                    f"language folder {lang_dir} not found; is data_folder "
                    "the root of a Common Voice release?"
                )
            durations = _read_clip_durations(lang_dir, skip_bad_rows)
            report[lang] = {}
            for split in SPLITS:
                report[lang][split] = _prepare_split(
                    lang_dir,
                    lang,
                    split,
                    durations,
                    filters,
                    skip_bad_rows,
                    writers[split],
                    verifier,
                )
            # Freed before the next locale's table is read.
            del durations
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

        empty = [
            lang for lang in languages if report[lang]["train"]["kept"] == 0
        ]
        if empty and not allow_empty_languages:
            raise ValueError(
                f"no training utterance kept for {empty} (see the dropped "
                f"counts in the log); fix the data or filters, or set "
                "allow_empty_languages to train without them"
            )
        if len(empty) == len(languages):
            raise ValueError(
                f"no training utterance kept in any of {languages}; check "
                "data_folder and the duration filters"
            )
        for lang in empty:
            logger.warning(
                f"{lang}: no training utterance kept, language unused"
            )

        _commit_manifests(save_folder, writers)
    # The languages in the order prepared, those without training rows left
    # out (as counting the rows of train.csv did).
    train_counts = {
        lang: report[lang]["train"]["kept"]
        for lang in languages
        if report[lang]["train"]["kept"] > 0
    }
    save_language_ratios(
        save_folder / RATIOS_FILE, train_counts, language_alpha
    )
    (save_folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
    # Written last: its presence means everything above completed.
    mark_prepared(save_folder, options)
    return report


def _commit_manifests(save_folder, writers):
    """Renames the streamed manifests into place (every row written).

    The previous run's record goes first: a crash between the renames
    then prepares again on the next run instead of trusting a mix of old
    and new manifests.
    """
    (Path(save_folder) / OPTIONS_FILE).unlink(missing_ok=True)
    for split, writer in writers.items():
        if writer.rows == 0:
            # Still written (header only): readers expect all three files.
            logger.warning(
                f"{split}.csv holds no utterance of any language (train.py "
                "needs dev and test utterances)"
            )
        writer.commit()


def release_of(data_folder):
    """The Common Voice version named in a path, e.g. ``"16.1"``.

    Mozilla's archives unpack into ``cv-corpus-<version>-<date>/<locale>``;
    ``data_folder`` or one of its parents carries that name.

    Arguments
    ---------
    data_folder : str or Path
        Root of the release.

    Returns
    -------
    str or None
        The version, or ``None`` when no part of the path names one.

    Example
    -------
    >>> release_of("/data/cv-corpus-17.0-2024-03-15")
    '17.0'
    >>> release_of("/data/cv-corpus-16.1-2023-12-06/extracted")
    '16.1'
    >>> release_of("/data/common_voice") is None
    True
    """
    for part in reversed(Path(os.path.abspath(data_folder)).parts):
        match = RELEASE_FOLDER.fullmatch(part)
        if match:
            return match.group(1)
    return None


def check_release(data_folder, languages, release=VALIDATED_RELEASE):
    """Warns when the release or its layout is not the one expected.

    Nothing stops here: the columns the preparation reads are checked
    where they are read. A warning names what differs, so that a user on
    another release knows to read the report before training.

    Arguments
    ---------
    data_folder : str or Path
        Root of the release.
    languages : list of str
        Locale folders whose ``train.tsv`` header is compared.
    release : str
        The expected version, a key of :data:`RELEASE_COLUMNS`.

    Returns
    -------
    list of str
        The warnings given (empty when the release and every header are
        the expected ones).
    """
    if release not in RELEASE_COLUMNS:
        raise ValueError(
            f"common_voice_release must be one of "
            f"{', '.join(RELEASE_COLUMNS)} (the layouts this preparation "
            f"knows) or null, not {release!r}"
        )
    found = release_of(data_folder)
    warnings = []
    if found is None:
        warnings.append(
            f"cannot tell the Common Voice release of {data_folder} (no "
            f"cv-corpus-<version>-<date> in its path); the recipe is tested "
            f"on the layout of {release}: compare prepare_report.json"
        )
    elif found != release:
        warnings.append(
            f"{data_folder} is Common Voice {found}; the recipe is tested on "
            f"{release}: compare its counts in prepare_report.json"
        )
    expected = list(RELEASE_COLUMNS[release])
    headers = {}
    for lang in languages:
        path = Path(data_folder) / lang / "train.tsv"
        if not path.is_file():
            continue  # the preparation names the missing file
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            header = f.readline().rstrip("\r\n").split("\t")
        if header != expected:
            headers.setdefault(tuple(header), []).append(lang)
    for header, langs in headers.items():
        extra = [c for c in header if c not in expected]
        missing = [c for c in expected if c not in header]
        what = "; ".join(
            text
            for text in (
                f"extra columns {extra}" if extra else "",
                f"missing columns {missing}" if missing else "",
                "" if extra or missing else "columns in another order",
            )
            if text
        )
        warnings.append(
            f"train.tsv of {', '.join(langs)}: not the Common Voice "
            f"{release} layout ({what})"
        )
    for warning in warnings:
        logger.warning(warning)
    return warnings


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


class ClipDurations:
    """A locale's ``clip_durations.tsv``, compactly: ``get(clip)`` seconds.

    Common Voice's own clip names, ``common_voice_<locale>_<n>.mp3``, are
    held as the int64 ``n`` in a sorted array next to a float64 array of
    their durations (``array.array``, searched with ``bisect``: 16 bytes
    per clip instead of ~135 in a dict); any other name goes to a small
    dict. A name maps to exactly one of the
    two, and ``n`` is kept only when it spells the name back (ASCII
    digits, no leading zero), so lookups answer what a dict of the file
    would: the same float, the last line for a clip listed twice.

    Arguments
    ---------
    prefix : str
        ``common_voice_<locale>_``.
    numbers : array.array
        int64 (``"q"``) ``n`` of the Common Voice names, sorted, unique.
    seconds : array.array
        float64 (``"d"``) durations of ``numbers``.
    others : dict
        Durations of the other names.

    Example
    -------
    >>> durations = ClipDurations.from_lines(
    ...     "common_voice_en_",
    ...     [("common_voice_en_12.mp3", 4.2), ("x.mp3", 1.0),
    ...      ("common_voice_en_3.mp3", 0.5), ("common_voice_en_12.mp3", 2.0)],
    ... )
    >>> len(durations)
    3
    >>> durations.get("common_voice_en_12.mp3"), durations.get("x.mp3")
    (2.0, 1.0)
    >>> durations.get("common_voice_en_012.mp3") is None
    True
    """

    def __init__(self, prefix, numbers, seconds, others):
        self.prefix = prefix
        self.numbers = numbers
        self.seconds = seconds
        self.others = others

    @classmethod
    def from_lines(cls, prefix, lines):
        """Builds the table from ``(clip, seconds)`` pairs, in file order."""
        numbers, seconds, others = array.array("q"), array.array("d"), {}
        for clip, duration in lines:
            number = _clip_number(clip, prefix)
            if number is None:
                others[clip] = duration
            else:
                numbers.append(number)
                seconds.append(duration)
        keys = np.frombuffer(numbers, dtype=np.int64)
        if np.all(keys[1:] > keys[:-1]):
            return cls(prefix, numbers, seconds, others)
        # Stable: a clip listed twice keeps its file order, and the last of
        # each run of equal numbers is kept, as a dict would. Peak: about
        # 32 bytes per clip (the two arrays and the order, or one sorted
        # copy in their place), 16 once built.
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        del numbers
        values = np.frombuffer(seconds, dtype=np.float64)[order]
        del seconds, order
        last = np.empty(len(keys), dtype=bool)
        last[-1:] = True
        np.not_equal(keys[1:], keys[:-1], out=last[:-1])
        if not last.all():
            keys, values = keys[last], values[last]
        del last
        # Arrays of Python numbers again: bisect on them is 4 times
        # quicker than np.searchsorted for one value.
        numbers, seconds = array.array("q"), array.array("d")
        numbers.frombytes(memoryview(keys).cast("B"))
        del keys
        seconds.frombytes(memoryview(values).cast("B"))
        return cls(prefix, numbers, seconds, others)

    def __len__(self):
        """Number of clips with a known duration."""
        return len(self.numbers) + len(self.others)

    def get(self, clip, default=None):
        """The duration of ``clip`` in seconds, else ``default``."""
        number = _clip_number(clip, self.prefix)
        if number is None:
            return self.others.get(clip, default)
        index = bisect.bisect_left(self.numbers, number)
        if index < len(self.numbers) and self.numbers[index] == number:
            return self.seconds[index]
        return default


def _clip_number(clip, prefix):
    """``n`` of ``<prefix><n>.mp3`` when it spells the name back, else None."""
    if not (clip.startswith(prefix) and clip.endswith(".mp3")):
        return None
    digits = clip[len(prefix) : -len(".mp3")]
    if (
        not digits.isascii()
        or not digits.isdigit()
        or len(digits) > 18
        or (digits[0] == "0" and len(digits) > 1)
    ):
        return None
    return int(digits)


def _tsv_lines(path, reject):
    """Yields ``(line number, text)`` of a TSV file, decoded as UTF-8.

    Decoded line by line, so that a byte that is not UTF-8 is a row error
    naming its file and line (given to ``reject``, which raises or counts
    it) rather than a ``UnicodeDecodeError`` for the whole file. A UTF-8
    byte order mark before the header is valid UTF-8 and is dropped.

    Arguments
    ---------
    path : Path
        The TSV file.
    reject : callable
        ``reject(reason, message)`` for a line that is not UTF-8; the
        header line is always an error.

    Yields
    ------
    (int, str)
        The line number (from 1) and the line without its line break.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            raw = raw.rstrip(b"\r\n")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                message = (
                    f"{path}:{number}: not UTF-8: byte "
                    f"0x{raw[error.start]:02x} at column {error.start + 1}"
                )
                if number == 1:
                    raise CommonVoiceFormatError(message) from error
                reject("bad_encoding", message)
                continue
            yield number, text


def _read_clip_durations(lang_dir, skip_bad_rows=False):
    """Clip durations in seconds from ``clip_durations.tsv`` if present.

    A malformed line is an error naming the file and line; with
    ``skip_bad_rows`` a line that is not UTF-8 is skipped with a warning
    (its clip then gets its duration from its audio).
    """
    path = lang_dir / "clip_durations.tsv"
    prefix = f"common_voice_{lang_dir.name}_"
    if not path.is_file():
        return ClipDurations.from_lines(prefix, [])

    def reject(reason, message):
        """Raises, or warns with ``skip_bad_rows``."""
        if not skip_bad_rows:
            raise CommonVoiceFormatError(message)
        logger.warning(f"skipped: {message}")

    def lines():
        """Yields ``(clip, seconds)`` per row; errors name the file and line."""
        rows = _tsv_lines(path, reject)
        next(rows, None)
        for line, text in rows:
            row = text.split("\t")
            try:
                yield row[0], float(row[1]) / 1000.0
            except (IndexError, ValueError) as error:
                raise CommonVoiceFormatError(
                    f"{path}:{line}: expected 'clip<TAB>duration[ms]', "
                    f"got {row!r}"
                ) from error

    return ClipDurations.from_lines(prefix, lines())


def _count_lines(path):
    """Lines of a file (for the progress bar's total), read in blocks."""
    count = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


def _prepare_split(
    lang_dir,
    lang,
    split,
    durations,
    filters,
    skip_bad_rows,
    writer,
    verifier,
):
    """Reads one TSV, writes its kept rows to ``writer``; returns counts.

    Rows pass the text and duration filters first; the clips of the rows
    left are then checked by ``verifier`` (in chunks, in parallel), so a
    clip that is filtered out is never opened.

    Arguments
    ---------
    lang_dir : Path
        The locale folder.
    lang : str
        Its locale code.
    split : str
        ``train``, ``dev`` or ``test``.
    durations : ClipDurations
        The locale's ``clip_durations.tsv``.
    filters : dict
        ``min_duration``, ``max_duration`` (seconds) and
        ``max_bad_fraction``.
    skip_bad_rows : bool
        Count and skip bad rows and clips instead of raising.
    writer : ManifestWriter
        Where the kept rows go.
    verifier : ClipVerifier
        Checks the clips.

    Returns
    -------
    dict
        Kept and dropped counts (by reason), kept hours and the first bad
        rows, named by file and line.
    """
    tsv = lang_dir / f"{split}.tsv"
    min_dur, max_dur = filters["min_duration"], filters["max_duration"]
    dropped = Counter()
    first_bad = []
    # The kept durations as written, summed as the rows' values always
    # were (sum() of Python floats in row order): the report's hours stay
    # the same to the last bit. 8 bytes per kept row of this split.
    kept_seconds = array.array("d")
    if not tsv.is_file():
        if split not in OPTIONAL_SPLITS:
            raise FileNotFoundError(
                f"missing Common Voice training split {tsv} (only dev.tsv "
                "and test.tsv may be absent)"
            )
        logger.warning(f"{lang}: no {tsv}, {split} split skipped")
        return {
            "missing": True,
            "kept": 0,
            "kept_hours": 0.0,
            "dropped": 0,
            "dropped_by_reason": {},
        }

    def reject(reason, message):
        """Raises on a bad row, or logs and counts it with ``skip_bad_rows``."""
        if not skip_bad_rows:
            raise CommonVoiceFormatError(message)
        logger.warning(f"skipped: {message}")
        dropped[reason] += 1
        if len(first_bad) < FIRST_BAD_ROWS:
            first_bad.append(message)

    def keep(row, duration):
        """Writes a row that passed every check."""
        written = f"{duration:.3f}"
        writer.writerow({**row, "duration": written})
        kept_seconds.append(float(written))

    pending = []  # (line, clip, listed seconds, manifest row) to check

    def check_pending():
        """Checks the clips of the pending rows; writes the good ones."""
        verdicts = verifier.check(
            [
                (f"{lang}/clips/{clip}", lang_dir / "clips" / clip, listed)
                for _, clip, listed, _ in pending
            ]
        )
        for (line, clip, listed, row), verdict in zip(pending, verdicts):
            if not verdict.ok:
                reason = verdict.reason
                reject(
                    reason,
                    f"{tsv}:{line}: clip {lang_dir / 'clips' / clip}: "
                    f"{verdict.detail}",
                )
                continue
            duration = listed if listed is not None else verdict.seconds
            if listed is None and duration < min_dur:
                dropped["too_short"] += 1
            elif listed is None and duration > max_dur:
                dropped["too_long"] += 1
            else:
                keep(row, duration)
        pending.clear()

    rows_read = 0
    lines = _tsv_lines(tsv, reject)
    progress = tqdm(
        total=max(_count_lines(tsv) - 1, 0),
        desc=f"{lang} {split}",
        unit="row",
        disable=None,  # on a terminal only, not in job logs
    )
    with progress:
        # Common Voice TSVs are unquoted: quotes are part of the sentence.
        first = next(lines, None)
        header = None if first is None else first[1].split("\t")
        if header is None or not set(CV_COLUMNS) <= set(header):
            raise CommonVoiceFormatError(
                f"{tsv}:1: header {header} lacks the Common Voice columns "
                f"{list(CV_COLUMNS)}"
            )
        column = {name: header.index(name) for name in CV_COLUMNS}
        for line, text in lines:
            progress.update()
            if not text:
                continue
            rows_read += 1
            row = text.split("\t")
            if len(row) != len(header):
                reject(
                    "malformed_row",
                    f"{tsv}:{line}: {len(row)} fields, header has "
                    f"{len(header)}",
                )
                continue
            if "\0" in text:
                reject("malformed_row", f"{tsv}:{line}: holds a NUL byte")
                continue
            clip = row[column["path"]]
            sentence = " ".join(row[column["sentence"]].split())
            if not sentence:
                dropped["empty_sentence"] += 1
                continue
            if not clip.strip() or Path(clip).name != clip:
                reject(
                    "malformed_row",
                    f"{tsv}:{line}: path {clip!r} is not a clip file name",
                )
                continue
            listed = durations.get(clip)
            # A listed duration filters before the clip is opened.
            if listed is not None and listed < min_dur:
                dropped["too_short"] += 1
                continue
            if listed is not None and listed > max_dur:
                dropped["too_long"] += 1
                continue
            manifest_row = {
                "ID": f"{lang}-{Path(clip).stem}",
                "wav": f"$data_root/{lang}/clips/{clip}",
                "sentence": sentence,
                "lang": lang,
                "client_id": row[column["client_id"]],
            }
            pending.append((line, clip, listed, manifest_row))
            if len(pending) >= CHECK_CHUNK:
                check_pending()
        check_pending()
    bad = sum(dropped[reason] for reason in BAD_ROW_REASONS)
    if (
        bad > BAD_ROWS_ALWAYS_TOLERATED
        and bad / rows_read > filters["max_bad_fraction"]
    ):
        counts = {r: dropped[r] for r in BAD_ROW_REASONS if dropped[r]}
        raise CommonVoiceFormatError(
            f"{tsv}: {bad} of {rows_read} rows are bad "
            f"({bad / rows_read:.1%} > max_bad_fraction="
            f"{filters['max_bad_fraction']}): "
            f"{counts}"
            f"; first: {first_bad[:3]}. Is the download complete?"
        )
    result = {
        "kept": len(kept_seconds),
        "kept_hours": sum(kept_seconds) / 3600,
        "dropped": sum(dropped.values()),
        "dropped_by_reason": dict(dropped),
    }
    if first_bad:
        result["first_bad_rows"] = first_bad
    return result
