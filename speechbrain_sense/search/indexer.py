"""Indexing a folder of recordings: walk, decode, cut, embed, store.

:func:`index_folder` brings an index up to date with a folder:

1. **Walk** the folder (:func:`walk_audio`), following symbolic links
   that stay inside it, never twice into the same directory (a link
   loop is reported once and skipped), with file names kept as bytes.
2. **Compare** each file with the index: same size and mtime is
   unchanged; otherwise its SHA-256 decides (a file touched but not
   changed is not re-embedded). Files gone from the folder are dropped.
3. **Prepare** each new or changed file in a thread pool, off the
   embedding thread: hash, decode (any rate, any channel count; FFmpeg
   for what libsndfile cannot read), VAD, passage spans
   (:mod:`speechbrain_sense.search.passages`).
4. **Embed** the passages of a group of files together, batched by
   duration (:func:`speechbrain_sense.encoders.inference.duration_batches`), and
   **commit** each file with all its passages in one transaction, so a
   run killed at any point resumes without losing or duplicating a file.
5. **Publish** the float16 matrix the queries scan.

Unreadable files (corrupt, empty, no samples) are counted, listed with
the reason, and recorded so that an unchanged one is not retried; they
never stop the run.

Authors
 * speechbrain-sense developers 2026
"""

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from speechbrain_sense.audio import AudioReadError, load_audio
from speechbrain_sense.encoders.inference import duration_batches, pad_waveforms
from speechbrain_sense.hashing import file_sha256
from speechbrain_sense.search.passages import fixed_spans, passage_spans
from speechbrain_sense.search.store import (
    INDEXED,
    NO_SPEECH,
    UNREADABLE,
    SearchIndex,
    display_path,
    resolve_inside,
)

#: File name endings taken for audio (lower case); others are ignored.
AUDIO_SUFFIXES = (
    ".wav",
    ".flac",
    ".mp3",
    ".ogg",
    ".oga",
    ".opus",
    ".m4a",
    ".mp4",
    ".aac",
    ".wma",
    ".webm",
    ".mka",
    ".aif",
    ".aiff",
    ".au",
)


@dataclass
class PassageSettings:
    """How recordings are cut into passages (recorded in the index).

    Arguments
    ---------
    vad : bool
        Cut at speech activity (Silero VAD); else fixed windows.
    max_passage : float
        Longest passage, seconds.
    max_gap : float
        Longest pause inside a passage, seconds.
    overlap : float
        Overlap of the windows a long stretch is cut into, seconds.
    vad_threshold : float
        Silero speech probability threshold.
    """

    vad: bool = True
    max_passage: float = 15.0
    max_gap: float = 1.0
    overlap: float = 2.0
    vad_threshold: float = 0.5

    def as_dict(self):
        """The settings as the JSON the index stores.

        Returns
        -------
        dict
        """
        return dict(self.__dict__)

    def spans(self, waveform, sample_rate):
        """Passage spans of one waveform.

        Arguments
        ---------
        waveform : torch.Tensor
            ``[time]`` mono samples.
        sample_rate : int
            Their rate.

        Returns
        -------
        list of (float, float)
            ``(start, end)`` seconds, within the waveform.
        """
        duration = len(waveform) / sample_rate
        if not self.vad:
            return fixed_spans(duration, self.max_passage, self.overlap)
        from speechbrain_sense.data.vad import speech_segments

        segments = speech_segments(
            waveform, sample_rate, threshold=self.vad_threshold
        )
        spans = passage_spans(
            segments, self.max_passage, self.max_gap, self.overlap
        )
        return [(s, min(e, duration)) for s, e in spans if s < duration]


@dataclass
class IndexReport:
    """What one indexing run did (printed by the command line)."""

    found: int = 0
    unchanged: int = 0
    embedded: int = 0
    deleted: int = 0
    no_speech: int = 0
    passages: int = 0
    audio_seconds: float = 0.0
    unreadable: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    seconds: float = 0.0

    def summary(self):
        """A few lines for the terminal.

        Returns
        -------
        str
        """
        # Audio-hours per hour of wall time: audio seconds per second.
        rate = self.audio_seconds / max(self.seconds, 1e-9)
        lines = [
            f"{self.found} audio files: {self.embedded} embedded "
            f"({self.passages} passages, {self.audio_seconds / 3600:.2f} h "
            f"of audio), {self.unchanged} unchanged, {self.deleted} "
            f"dropped, {self.no_speech} without speech, "
            f"{len(self.unreadable)} unreadable",
            f"{self.seconds:.1f} s: {rate:.1f} audio-hours per hour",
        ]
        for path, reason in self.unreadable:
            lines.append(f"  unreadable: {path}: {reason}")
        for path, reason in self.skipped:
            lines.append(f"  skipped: {path}: {reason}")
        return "\n".join(lines)


def walk_audio(root, report=None, suffixes=AUDIO_SUFFIXES):
    """Audio files under ``root``, as ``(relative path bytes, full path)``.

    Symbolic links are followed when they lead to a place inside
    ``root``; a directory already visited (a link loop, or two links to
    one directory) and links leading outside are skipped and reported.

    Arguments
    ---------
    root : str or Path
        The folder.
    report : IndexReport, optional
        Collects the skipped paths and why.
    suffixes : tuple of str
        File name endings taken (lower case).

    Returns
    -------
    list of (bytes, bytes)
        Sorted by relative path.
    """
    root_b = os.fsencode(os.path.realpath(root))
    seen = set()
    found = []

    def skip(path, reason):
        """Notes a path left out, and why."""
        if report is not None:
            report.skipped.append(
                (display_path(os.path.relpath(path, root_b)), reason)
            )

    suffix_b = tuple(s.encode() for s in suffixes)
    for directory, dirnames, filenames in os.walk(root_b, followlinks=True):
        stat = os.stat(directory)
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            skip(directory, "directory already indexed (link loop?)")
            dirnames[:] = []
            continue
        seen.add(key)
        kept = []
        for name in sorted(dirnames):
            path = os.path.join(directory, name)
            if os.path.islink(path) and not resolve_inside(root_b, path):
                skip(path, "link to a directory outside the folder")
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            if not name.lower().endswith(suffix_b):
                continue
            path = os.path.join(directory, name)
            if os.path.islink(path) and not resolve_inside(root_b, path):
                skip(path, "link to a file outside the folder")
                continue
            if not os.path.isfile(path):
                skip(path, "not a regular file (dangling link?)")
                continue
            found.append((os.path.relpath(path, root_b), path))
    found.sort()
    return found


@dataclass
class _Prepared:
    """One file ready to embed (or to record as it is)."""

    rel: bytes
    size: int
    mtime_ns: int
    sha256: str
    waveform: torch.Tensor = None
    duration: float = None
    spans: list = None
    error: str = None
    unchanged: bool = False
    file_id: int = None


def _prepare(rel, path, stat, known, settings, sample_rate):
    """Hashes, decodes and cuts one file (runs in a worker thread)."""
    sha = file_sha256(path)
    item = _Prepared(rel, stat.st_size, stat.st_mtime_ns, sha)
    if known is not None and known["sha256"] == sha:
        item.file_id = known["id"]
        item.unchanged = True
        return item
    try:
        wav = load_audio(os.fsdecode(path), sample_rate)
    except AudioReadError as error:
        item.error = str(error)
        return item
    item.waveform = wav
    item.duration = len(wav) / sample_rate
    item.spans = settings.spans(wav, sample_rate)
    return item


def _embed_group(model, group, max_batch_seconds):
    """``{rel: [P, D] float32}`` for every passage of a group of files."""
    rate = model.sample_rate
    # Passages file after file, so each file owns one run of rows.
    pieces = [
        item.waveform[int(start * rate) : int(end * rate)]
        for item in group
        for start, end in item.spans
    ]
    out = np.empty((len(pieces), model.identity["dim"]), dtype=np.float32)
    durations = [len(piece) / rate for piece in pieces]
    for batch in duration_batches(durations, max_batch_seconds):
        padded, lens = pad_waveforms([pieces[i] for i in batch])
        out[batch] = model.embed_waveforms(padded, lens).numpy()
    bounds = np.cumsum([0] + [len(item.spans) for item in group])
    return {
        item.rel: out[bounds[i] : bounds[i + 1]] for i, item in enumerate(group)
    }


def index_folder(
    audio_dir,
    model,
    db_path,
    settings=None,
    max_batch_seconds=120.0,
    group_seconds=600.0,
    workers=2,
    progress=True,
    on_commit=None,
):
    """Brings the index at ``db_path`` up to date with ``audio_dir``.

    Arguments
    ---------
    audio_dir : str or Path
        The folder of recordings.
    model : speechbrain_sense.search.query.SearchModel
        The encoder (its fingerprint is recorded; another model's index is
        refused).
    db_path : str or Path
        The index database (created on the first run).
    settings : PassageSettings, optional
        How passages are cut; changing them re-embeds every file.
    max_batch_seconds : float
        Padded audio per encoder batch.
    group_seconds : float
        Audio prepared before embedding and committing a group of files;
        bounds memory and the work a kill can lose.
    workers : int
        Threads that hash, decode and cut files ahead of the encoder.
    progress : bool
        Show a progress bar (files, audio-hours per second, ETA).
    on_commit : callable, optional
        Called with each committed file's relative path (bytes).

    Returns
    -------
    IndexReport
    """
    began = time.perf_counter()
    settings = settings or PassageSettings()
    root = Path(audio_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    report = IndexReport()
    index = SearchIndex(db_path, create=True)
    try:
        index.bind(model.identity, root, settings.as_dict())
        known = index.files()
        found = walk_audio(root, report)
        report.found = len(found)
        present = {rel for rel, _ in found}
        gone = [rel for rel in known if rel not in present]
        index.remove_files(gone)
        report.deleted = len(gone)
        todo = []
        for rel, path in found:
            stat = os.stat(path)
            row = known.get(rel)
            same = (
                row is not None
                and row["size"] == stat.st_size
                and row["mtime_ns"] == stat.st_mtime_ns
            )
            if same:
                report.unchanged += 1
                if row["status"] == UNREADABLE:
                    report.unreadable.append((display_path(rel), row["error"]))
                continue
            todo.append((rel, path, stat, row))
        run = _IndexingRun(
            index, model, settings, report, on_commit, max_batch_seconds
        )
        run.run(todo, group_seconds, workers, progress)
        index.publish()
        _refresh_faiss(index)
    finally:
        index.close()
    report.seconds = time.perf_counter() - began
    return report


class _IndexingRun:
    """Prepares, embeds and commits the files of one :func:`index_folder`.

    Arguments
    ---------
    index : SearchIndex
        Where files are committed.
    model : speechbrain_sense.search.query.SearchModel
        The encoder.
    settings : PassageSettings
        How passages are cut.
    report : IndexReport
        Filled in as files are done.
    on_commit : callable or None
        Called with each committed file's relative path.
    max_batch_seconds : float
        Padded audio per encoder batch.
    """

    def __init__(
        self,
        index,
        model,
        settings,
        report,
        on_commit,
        max_batch_seconds,
    ):
        self.index = index
        self.model = model
        self.settings = settings
        self.report = report
        self.on_commit = on_commit
        self.max_batch_seconds = max_batch_seconds
        self.group = []
        self.bar = None
        self.began = time.perf_counter()

    def prepare(self, job):
        """Hashes, decodes and cuts one file (in a worker thread).

        Arguments
        ---------
        job : tuple
            ``(relative path, full path, os.stat result, known row)``.

        Returns
        -------
        _Prepared
        """
        rel, path, stat, row = job
        return _prepare(
            rel,
            path,
            stat,
            row,
            self.settings,
            self.model.sample_rate,
        )

    def commit(self, item, status, emb=None):
        """Writes one file and its passages in one transaction.

        Arguments
        ---------
        item : _Prepared
            The file.
        status : str
            :data:`INDEXED`, :data:`NO_SPEECH` or :data:`UNREADABLE`.
        emb : numpy.ndarray, optional
            ``[P, D]`` embeddings of ``item.spans`` (none otherwise).
        """
        spans = item.spans if emb is not None else []
        if emb is None:
            emb = np.zeros((0, self.model.identity["dim"]), dtype=np.float16)
        self.index.replace_file(
            item.rel,
            item.size,
            item.mtime_ns,
            item.sha256,
            item.duration,
            status,
            item.error,
            spans,
            emb,
        )
        if self.on_commit is not None:
            self.on_commit(item.rel)

    def flush(self):
        """Embeds the pending group of files and commits them."""
        embedded = _embed_group(self.model, self.group, self.max_batch_seconds)
        for item in self.group:
            self.commit(item, INDEXED, embedded[item.rel])
            self.report.embedded += 1
            self.report.passages += len(item.spans)
            self.report.audio_seconds += item.duration
        self.bar.update(len(self.group))
        hours = self.report.audio_seconds / 3600
        elapsed = max(time.perf_counter() - self.began, 1e-9)
        self.bar.set_postfix_str(f"{hours / elapsed:.4f} audio-h/s")
        self.group = []

    def run(self, todo, group_seconds, workers, progress):
        """Does every job of ``todo``, ``workers`` threads preparing ahead.

        Arguments
        ---------
        todo : list of tuple
            Jobs for :meth:`prepare`.
        group_seconds : float
            Audio embedded together before a group is committed.
        workers : int
            Preparing threads.
        progress : bool
            Show a progress bar.
        """
        from tqdm import tqdm

        self.bar = tqdm(
            total=len(todo), unit="file", desc="indexing", disable=not progress
        )
        report, pending = self.report, 0.0
        for item in _prefetched(self.prepare, todo, workers):
            if item.unchanged:
                self.index.touch_file(item.file_id, item.size, item.mtime_ns)
                report.unchanged += 1
            elif item.error is not None:
                self.commit(item, UNREADABLE)
                report.unreadable.append((display_path(item.rel), item.error))
            elif not item.spans:
                self.commit(item, NO_SPEECH)
                report.no_speech += 1
                report.audio_seconds += item.duration
            else:
                self.group.append(item)
                pending += item.duration
                if pending >= group_seconds:
                    self.flush()
                    pending = 0.0
                continue
            self.bar.update(1)
        if self.group:
            self.flush()
        self.bar.close()


def _refresh_faiss(index):
    """Rebuilds a FAISS index the user opted in to, now rather than at
    the next query (57 s at 10^6 passages, docs/benchmarks.md §8).

    Arguments
    ---------
    index : SearchIndex
        The index just updated.
    """
    from speechbrain_sense.search.query import faiss_index_for, faiss_path

    if faiss_path(index).is_file() and len(index.matrix()) > 0:
        faiss_index_for(index)


def _prefetched(function, jobs, workers):
    """``function(job)`` for each job, in order, ``2 * workers`` ahead.

    ``Executor.map`` would submit every job at once and so hold every
    decoded file in memory; this keeps a bounded window in flight.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        window = deque()
        for job in jobs:
            window.append(pool.submit(function, job))
            if len(window) > 2 * max(1, workers):
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
