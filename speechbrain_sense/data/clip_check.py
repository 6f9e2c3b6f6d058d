"""Checking every clip of a corpus once, at preparation time.

A clip that cannot be decoded must not pass preparation: the sampler may
draw it epochs later, crash the run, and, since a resumed run replays the
same batch plan, crash every rerun at the same place. :class:`ClipVerifier`
therefore opens every kept clip before training, in parallel worker
processes, and gives each a verdict:

=======================  ==================================================
reason                   the clip
=======================  ==================================================
``missing_clip``         is not on disk
``empty_clip``           is a file of 0 bytes, or decodes to no samples
``corrupt_clip``         does not decode (libsndfile fails)
``too_short_to_encode``  is shorter than one w2v-BERT frame (400 samples at
                         16 kHz, 25 ms): the encoder would give no frame
``truncated_clip``       decodes to much less than the duration that
                         ``clip_durations.tsv`` lists for it
=======================  ==================================================

Modes: ``"decode"`` decodes every clip (the only way to find a corrupt
stream behind a valid header); ``"header"`` opens the headers only (a
quick first pass); ``"none"`` checks only that the file exists, and reads
the header of a clip without a listed duration (what preparation did
before).

Verdicts are cached in an SQLite file keyed by the clip's path relative to
the corpus root, its size and its modification time, so a rerun, or a
preparation with other filters, opens nothing again, and a clip that
changes on disk is checked again.

Authors
 * speechbrain-sense developers 2026
"""

import multiprocessing
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import soundfile

from speechbrain_sense.encoders.w2v_bert import FBANK_WINDOW

MODES = ("decode", "header", "none")
# The shortest waveform w2v-BERT turns into a frame, in seconds.
MIN_ENCODABLE_SECONDS = FBANK_WINDOW / 16000
# A listed duration may exceed the decoded one by MP3 encoder delay and
# padding (a few frames of 1152 samples); a truncated clip loses far more.
TRUNCATION_SLACK_SECONDS = 0.1
TRUNCATION_SLACK_FRACTION = 0.05
# A cached "decode" verdict also answers a "header" request.
_ANSWERS = {"decode": ("decode",), "header": ("header", "decode")}


@dataclass(frozen=True)
class ClipVerdict:
    """What checking one clip found.

    Arguments
    ---------
    reason : str or None
        ``None`` for a good clip, else one of the reasons of the module.
    detail : str
        What is wrong, without the path (``""`` for a good clip).
    seconds : float or None
        Decoded (or header) duration; ``None`` when unknown.
    """

    reason: object
    detail: str
    seconds: object

    @property
    def ok(self):
        """Whether the clip may be kept."""
        return self.reason is None


# The verdict of a clip that is not on disk (found by a stat, never cached).
MISSING = ClipVerdict("missing_clip", "the file does not exist", None)


def check_clip(path, listed_seconds=None, mode="decode"):
    """Checks one clip.

    Arguments
    ---------
    path : str or Path
        The audio file.
    listed_seconds : float, optional
        Its duration in ``clip_durations.tsv``, when listed.
    mode : str
        ``"decode"``, ``"header"`` or ``"none"`` (see the module).

    Returns
    -------
    ClipVerdict

    Example
    -------
    >>> check_clip("/no/such/clip.mp3").reason
    'missing_clip'
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return MISSING
    if size == 0:
        return ClipVerdict("empty_clip", "the file is empty (0 bytes)", None)
    if mode == "none":
        if listed_seconds is not None:
            return ClipVerdict(None, "", listed_seconds)
        mode = "header"
    try:
        with soundfile.SoundFile(str(path)) as f:
            rate = f.samplerate
            promised = f.frames / rate
            if mode == "header":
                samples = f.frames
            else:
                # In blocks, so a long file never sits in memory whole,
                # and counted as decoded: for a truncated MP3 libsndfile
                # reports (and SoundFile.blocks pads to) the frame count
                # its header promises.
                samples = 0
                while block := len(f.read(1 << 16, dtype="float32")):
                    samples += block
    except Exception as error:  # libsndfile raises several types
        # Its message says "File does not exist" for a corrupt file; the
        # file does exist (stat above).
        return ClipVerdict(
            "corrupt_clip",
            f"corrupt or not an audio file ({size} bytes; libsndfile: {error})",
            None,
        )
    seconds = samples / rate
    if seconds == 0:
        return ClipVerdict("empty_clip", "decodes to no samples", 0.0)
    if seconds < MIN_ENCODABLE_SECONDS:
        return ClipVerdict(
            "too_short_to_encode",
            f"lasts {1000 * seconds:.1f} ms, shorter than one w2v-BERT "
            f"frame ({1000 * MIN_ENCODABLE_SECONDS:.0f} ms)",
            seconds,
        )
    for expected, source in (
        (listed_seconds, "clip_durations.tsv lists"),
        (promised, "its header promises"),
    ):
        if expected is None:
            continue
        slack = max(
            TRUNCATION_SLACK_SECONDS, TRUNCATION_SLACK_FRACTION * expected
        )
        if seconds < expected - slack:
            return ClipVerdict(
                "truncated_clip",
                f"decodes to {seconds:.3f} s, but {source} {expected:.3f} s: "
                "the file is truncated",
                seconds,
            )
    return ClipVerdict(None, "", seconds)


def _check_job(job):
    """:func:`check_clip` on ``(path, listed_seconds, mode)`` (a worker)."""
    return check_clip(*job)


class ClipVerifier:
    """Checks clips in parallel, caching the verdicts on disk.

    Arguments
    ---------
    cache_file : str or Path, optional
        SQLite file of verdicts (created); ``None``: no cache.
    mode : str
        ``"decode"``, ``"header"`` or ``"none"``.
    num_workers : int, optional
        Worker processes (default: the usable cores); 0 or 1 checks in
        this process.

    Example
    -------
    >>> import tempfile
    >>> with ClipVerifier(num_workers=0) as verifier:
    ...     (verdict,) = verifier.check([("a.mp3", "/no/a.mp3", None)])
    >>> verdict.reason
    'missing_clip'
    """

    def __init__(self, cache_file=None, mode="decode", num_workers=None):
        if mode not in MODES:
            raise ValueError(f"clip check mode must be one of {MODES}: {mode}")
        self.mode = mode
        if num_workers is None:
            num_workers = len(os.sched_getaffinity(0))
        self.num_workers = int(num_workers)
        self._pool = None
        self._db = None
        if cache_file is not None and mode != "none":
            Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(cache_file))
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (clip TEXT PRIMARY KEY,"
                " size INTEGER, mtime_ns INTEGER, mode TEXT, listed REAL,"
                " reason TEXT, detail TEXT, seconds REAL)"
            )
        self.opened = 0  # clips checked (not answered by the cache)

    def __enter__(self):
        """Returns the verifier itself."""
        return self

    def __exit__(self, *exc):
        """Stops the workers and closes the cache (:meth:`close`)."""
        self.close()

    def close(self):
        """Stops the workers and closes the cache."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def _map(self, jobs):
        """Verdicts of ``jobs``, in order, in the worker processes."""
        if self.num_workers <= 1 or len(jobs) < 2:
            return [_check_job(job) for job in jobs]
        if self._pool is None:
            # fork: the workers need nothing re-imported; the check itself
            # is libsndfile and NumPy only.
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context(
                "fork" if "fork" in methods else None
            )
            self._pool = context.Pool(self.num_workers)
        return self._pool.map(_check_job, jobs, chunksize=8)

    def check(self, clips):
        """Verdicts of clips, cached ones from the cache.

        Arguments
        ---------
        clips : list of (str, str or Path, float or None)
            ``(key, path, listed_seconds)``: ``key`` names the clip in the
            cache (its path relative to the corpus root).

        Returns
        -------
        list of ClipVerdict
            In the order of ``clips``.
        """
        verdicts = [None] * len(clips)
        stats = {}
        for i, (_, path, _) in enumerate(clips):
            try:
                stat = os.stat(path)
            except OSError:
                verdicts[i] = MISSING
                continue
            stats[i] = (stat.st_size, stat.st_mtime_ns)
        if self._db is not None and stats:
            cached = self._lookup([clips[i][0] for i in stats])
            for i, (size, mtime) in stats.items():
                row = cached.get(clips[i][0])
                if row is None:
                    continue
                c_size, c_mtime, c_mode, c_listed, reason, detail, seconds = row
                if (
                    (c_size, c_mtime) == (size, mtime)
                    and c_mode in _ANSWERS[self.mode]
                    and c_listed == clips[i][2]
                ):
                    verdicts[i] = ClipVerdict(reason, detail or "", seconds)
        todo = [i for i in stats if verdicts[i] is None]
        jobs = [(clips[i][1], clips[i][2], self.mode) for i in todo]
        for i, verdict in zip(todo, self._map(jobs)):
            verdicts[i] = verdict
        self.opened += len(todo)
        if self._db is not None and todo:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO verdicts VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            clips[i][0],
                            *stats[i],
                            self.mode,
                            clips[i][2],
                            verdicts[i].reason,
                            verdicts[i].detail,
                            verdicts[i].seconds,
                        )
                        for i in todo
                    ],
                )
        return verdicts

    def _lookup(self, keys):
        """Cached rows of ``keys`` (``{key: row}``)."""
        found = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in self._db.execute(
                "SELECT clip, size, mtime_ns, mode, listed, reason, detail,"
                f" seconds FROM verdicts WHERE clip IN ({marks})",
                part,
            ):
                found[row[0]] = row[1:]
        return found
