"""WebDataset shards of w2v-BERT features: build, verify, read.

Decoding millions of small MP3 files every epoch costs ~2.6 ms of CPU per
audio-second and random access to them does not scale on network
filesystems. ``python -m speechbrain_sense.data.shards build`` turns the
prepared CSV manifests of any recipe into sequential tar shards in the
WebDataset layout (the format of SpeechBrain's own WebDataset recipes),
one folder per split and language, holding for every clip:

* ``NNNNNN.features.npy``: the w2v-BERT input features as float16
  ``[frames, 160]``, exactly what :class:`~speechbrain_sense.encoders.w2v_bert.
  W2VBertFbank` computes from the 16 kHz audio (``--store features``);
* ``NNNNNN.flac``: the 16 kHz mono audio, 16-bit FLAC (``--store audio``);
  ``--store both`` keeps both;
* ``NNNNNN.json``: clip id, transcript, language, duration, frame and
  sample counts, and the manifest's other columns.

The build is planned deterministically from the manifests (rows grouped by
split and language, shuffled with a fixed seed, cut into shards), so
``--num-jobs N --job-id i`` jobs of a SLURM array build disjoint shards
without talking to each other. A shard is written to a temporary file and
renamed; its sidecar ``<shard>.json`` (counts, ids, per-sample durations,
SHA-256) is written last, so a killed job restarts at the first shard
without a sidecar and a finished shard is never rewritten. Bad clips are
counted per reason and listed by id in the sidecars, and a job that loses
more than ``--max-bad-fraction`` of its clips fails with the report.
``shards verify`` checks that the union of the jobs is complete, without
duplicates, with the checksums recorded, and writes ``index.json``, which
the training stream (:mod:`speechbrain_sense.data.streaming`) reads.

Authors
 * speechbrain-sense developers 2026
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import os
import sys
import tarfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import torch

from speechbrain_sense.audio import AudioReadError, EmptyAudioError, load_audio
from speechbrain_sense.encoders.w2v_bert import (
    FBANK_HOP,
    FBANK_WINDOW,
    W2VBertFeatures,
    w2v_bert_frame_count,
)
from speechbrain_sense.hashing import file_sha256

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FEATURE_DTYPE = np.float16
STORE_MODES = ("features", "audio", "both")
PLAN_FILE = "plan.json"
INDEX_FILE = "index.json"
REPORT_DIR = "reports"
# Bumped when the sample layout inside a shard changes.
FORMAT_VERSION = 1
BAD_CLIP_REASONS = (
    "missing",
    "undecodable",
    "empty",
    "non_finite",
    "too_short",
    "too_long",
)


class ShardError(RuntimeError):
    """A shard folder, shard or sample is unusable (the message names it)."""


# ---------------------------------------------------------------------------
# Plan: which clip goes into which shard
# ---------------------------------------------------------------------------


@dataclass
class ShardSpec:
    """One planned shard: its name and its manifest rows, in order.

    ``indices`` are row numbers (0-based, header excluded) in the split's
    manifest; ``rows`` holds those rows once :func:`load_rows` read them
    (only for the shards a job builds).
    """

    name: str  # "<split>/<lang>/<split>-<lang>-000000"
    split: str
    language: str
    indices: np.ndarray = field(repr=False)  # [rows] int64
    rows: list | None = field(default=None, repr=False)

    def rows_digest(self):
        """SHA-256 of the row numbers (binds a built shard to its plan).

        Returns
        -------
        str
            Hex digest of ``indices`` as little-endian int64.
        """
        return hashlib.sha256(self.indices.astype("<i8").tobytes()).hexdigest()


def _manifest_reader(path):
    """(header, csv.reader) of a manifest; an error names a bad header."""
    f = open(path, encoding="utf-8", newline="")  # closed by the caller
    reader = csv.reader(f)
    header = next(reader, None)
    if not header or "ID" not in header:
        f.close()
        raise ShardError(f"{path}:1: manifest needs an 'ID' column")
    return f, header, reader


def scan_manifests(manifests, text_column="sentence", language=None):
    """First pass over the manifests: the language of every row.

    Only one small integer per row is kept, so planning holds millions of
    rows in a few megabytes; :func:`load_rows` reads full rows later, for
    the shards of one job only.

    Arguments
    ---------
    manifests : dict
        Split name -> CSV path (SpeechBrain manifests with ``ID``, ``wav``
        and ``duration`` columns, as every prepare script here writes).
    text_column : str
        Column holding the transcript.
    language : str, optional
        Language of manifests without a ``lang`` column.

    Returns
    -------
    dict
        Split -> ``(languages, codes)``: the sorted language names and,
        per row, the index of its language (``[rows]`` int32 array).

    Raises
    ------
    ShardError
        On a missing column, a malformed row or a row without language,
        naming the file and line.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "dev.csv"
    >>> _ = path.write_text(
    ...     "ID,duration,wav,sentence,lang\\n"
    ...     "a,1.0,/a.wav,hi,fr\\nb,2.0,/b.wav,yo,en\\n"
    ... )
    >>> langs, codes = scan_manifests({"dev": path})["dev"]
    >>> langs, codes.tolist()
    (['en', 'fr'], [1, 0])
    """
    out = {}
    for split, path in manifests.items():
        f, header, reader = _manifest_reader(path)
        with f:
            for column in ("wav", "duration", text_column):
                if column not in header:
                    raise ShardError(
                        f"{path}:1: no {column!r} column (has {header}); "
                        "see --text-column"
                    )
            lang_column = header.index("lang") if "lang" in header else None
            codes, names = [], {}
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise ShardError(
                        f"{path}:{line}: {len(row)} fields, the header has "
                        f"{len(header)}"
                    )
                lang = row[lang_column] if lang_column is not None else None
                lang = lang or language
                if not lang:
                    raise ShardError(
                        f"{path}:{line}: no language: the manifest has no "
                        "'lang' value; pass --language"
                    )
                codes.append(names.setdefault(lang, len(names)))
        languages = sorted(names)
        recode = np.array([languages.index(n) for n in names], dtype=np.int32)
        out[split] = (languages, recode[np.asarray(codes, dtype=np.int64)])
    return out


def plan_shards(scan, samples_per_shard=1000, seed=0):
    """Cuts every (split, language) into shards, deterministically.

    Rows of a language are shuffled with a seed derived from ``seed``, the
    split and the language (speakers and recording dates are clustered in
    the manifests), then cut into shards of ``samples_per_shard`` rows.
    The same manifests (``plan.json`` records their checksums) and
    arguments give the same plan on every machine.

    Arguments
    ---------
    scan : dict
        Split -> ``(languages, codes)``, from :func:`scan_manifests`.
    samples_per_shard : int
        Rows per shard (the last shard of a language may hold fewer).
    seed : int
        Shuffling seed.

    Returns
    -------
    list of ShardSpec
        Sorted by split, language and shard number.

    Example
    -------
    >>> scan = {"train": (["fr"], np.zeros(5, dtype=np.int32))}
    >>> plan = plan_shards(scan, samples_per_shard=2)
    >>> [(s.name, len(s.indices)) for s in plan]  # doctest: +NORMALIZE_WHITESPACE
    [('train/fr/train-fr-000000', 2), ('train/fr/train-fr-000001', 2),
     ('train/fr/train-fr-000002', 1)]
    >>> sorted(i for s in plan for i in s.indices.tolist())
    [0, 1, 2, 3, 4]
    """
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1: {samples_per_shard}")
    plan = []
    for split in sorted(scan):
        languages, codes = scan[split]
        for code, lang in enumerate(languages):
            indices = np.flatnonzero(codes == code)
            # crc32, not hash(): stable across processes and machines.
            key = zlib.crc32(f"{seed}/{split}/{lang}".encode())
            indices = indices[
                np.random.default_rng(key).permutation(indices.size)
            ]
            for k, start in enumerate(
                range(0, indices.size, samples_per_shard)
            ):
                name = f"{split}/{lang}/{split}-{lang}-{k:06d}"
                chunk = indices[start : start + samples_per_shard]
                plan.append(ShardSpec(name, split, lang, chunk))
    return plan


def load_rows(
    specs, manifests, data_root=None, text_column="sentence", language=None
):
    """Second pass: reads the rows of ``specs`` into ``spec.rows``.

    Arguments
    ---------
    specs : list of ShardSpec
        The shards whose rows are needed (one job's).
    manifests : dict
        Split name -> CSV path, as given to :func:`scan_manifests`.
    data_root : str, optional
        Value of ``$data_root`` in the ``wav`` column.
    text_column : str
        Column holding the transcript (stored as ``sentence``).
    language : str, optional
        Language of manifests without a ``lang`` column.

    Raises
    ------
    ShardError
        When a path needs an undefined ``$variable``.
    """
    wanted = {}
    for spec in specs:
        wanted.setdefault(spec.split, set()).update(spec.indices.tolist())
    rows = {}
    for split, indices in wanted.items():
        path = manifests[split]
        f, header, reader = _manifest_reader(path)
        with f:
            for index, values in enumerate(reader):
                if index not in indices:
                    continue
                row = dict(zip(header, values))
                wav = row["wav"]
                if wav.startswith("$"):
                    name, _, rest = wav[1:].partition("/")
                    if name != "data_root" or data_root is None:
                        raise ShardError(
                            f"{path}:{index + 2}: wav {wav!r} needs ${name}"
                            "; pass --data-root"
                        )
                    row["wav"] = f"{data_root}/{rest}"
                row["lang"] = row.get("lang") or language
                row["sentence"] = row.pop(text_column)
                rows[(split, index)] = row
    for spec in specs:
        spec.rows = [rows[(spec.split, i)] for i in spec.indices.tolist()]


def job_shards(plan, num_jobs=1, job_id=0):
    """The shards job ``job_id`` of ``num_jobs`` builds: every num_jobs-th.

    Arguments
    ---------
    plan : list of ShardSpec
        The whole plan (:func:`plan_shards`), the same for every job.
    num_jobs : int
        Number of independent jobs sharing the build.
    job_id : int
        This job, in ``[0, num_jobs)``.

    Returns
    -------
    list of ShardSpec
        Shards ``job_id, job_id + num_jobs, ...`` of the plan; the jobs'
        lists are disjoint and together cover the plan.

    Example
    -------
    >>> [s for s in job_shards(list("abcde"), num_jobs=2, job_id=1)]
    ['b', 'd']
    """
    if num_jobs < 1 or not 0 <= job_id < num_jobs:
        raise ValueError(f"invalid --job-id {job_id} for --num-jobs {num_jobs}")
    return plan[job_id::num_jobs]


def feature_fingerprint(extractor):
    """SHA-256 of the feature extractor's settings and the shard format.

    Shards are only valid for an encoder whose extractor has the same
    fingerprint: training checks it against its own encoder.

    Arguments
    ---------
    extractor : transformers.SeamlessM4TFeatureExtractor
        The model's feature extractor (``to_json_string`` gives its
        settings; class names are left out).

    Returns
    -------
    str
        Hex SHA-256 of the settings plus ``FORMAT_VERSION``.
    """
    settings = json.loads(extractor.to_json_string())
    for key in ("processor_class", "feature_extractor_type"):
        settings.pop(key, None)
    settings["format_version"] = FORMAT_VERSION
    blob = json.dumps(settings, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def _encode_npy(array):
    """Serialises an array in ``.npy`` format (no pickle), in memory.

    Arguments
    ---------
    array : numpy.ndarray
        The array to store, e.g. ``[frames, 160]`` float16 features.

    Returns
    -------
    bytes
        The ``.npy`` file content.
    """
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _encode_flac(waveform):
    """Encodes 16 kHz audio as 16-bit FLAC, in memory.

    Arguments
    ---------
    waveform : torch.Tensor
        ``[time]`` mono audio at ``SAMPLE_RATE``.

    Returns
    -------
    bytes
        The FLAC file content.
    """
    buffer = io.BytesIO()
    soundfile.write(
        buffer, waveform.numpy(), SAMPLE_RATE, format="FLAC", subtype="PCM_16"
    )
    return buffer.getvalue()


def _write_json_atomic(path, record):
    """Writes JSON to a temporary file, then renames it over ``path``.

    Readers (and a restarted job) thus see the old file or the whole new
    one, never a partial write.

    Arguments
    ---------
    path : str or Path
        Destination file.
    record : dict or list
        JSON-serialisable content (written with non-ASCII kept).
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


def decode_clip(path, min_duration=0.0, max_duration=None):
    """Decodes a clip at 16 kHz, or names the reason it is unusable.

    Arguments
    ---------
    path : str
        Audio file.
    min_duration : float
        Shortest accepted clip, in seconds (and at least one w2v-BERT
        frame, 560 samples).
    max_duration : float, optional
        Longest accepted clip, in seconds.

    Returns
    -------
    tuple
        ``(waveform, None)`` or ``(None, reason)`` with ``reason`` one of
        ``BAD_CLIP_REASONS``.
    """
    if not os.path.isfile(path):
        return None, "missing"
    if os.path.getsize(path) == 0:
        return None, "empty"
    try:
        waveform = load_audio(path, SAMPLE_RATE)
    except EmptyAudioError:
        return None, "empty"
    except AudioReadError:
        return None, "undecodable"
    if not bool(torch.isfinite(waveform).all()):
        return None, "non_finite"
    duration = waveform.numel() / SAMPLE_RATE
    too_few = waveform.numel() < FBANK_WINDOW + FBANK_HOP
    if too_few or duration < min_duration:
        return None, "too_short"
    if max_duration is not None and duration > max_duration:
        return None, "too_long"
    return waveform, None


class _ShardBuilder:
    """Builds single shards; one instance per (worker) process."""

    def __init__(self, out_dir, encoder_source, store, options):
        self.out_dir = Path(out_dir)
        self.store = store
        self.options = options
        self.features = None
        if store in ("features", "both"):
            self.features = W2VBertFeatures(encoder_source)

    def build(self, spec):
        """Writes ``spec``'s tar and sidecar; returns the sidecar record."""
        import webdataset

        tar_path = self.out_dir / f"{spec.name}.tar"
        tar_path.parent.mkdir(parents=True, exist_ok=True)
        partial = tar_path.with_name(f"{tar_path.name}.partial")
        ids, durations, skipped = [], [], {}
        audio_seconds = 0.0
        with open(partial, "wb") as stream:
            # mtime fixed: a rebuilt shard is byte-identical.
            writer = webdataset.TarWriter(stream, encoder=False, mtime=0)
            for row in spec.rows:
                waveform, reason = decode_clip(
                    row["wav"],
                    self.options["min_duration"],
                    self.options["max_duration"],
                )
                if reason is not None:
                    skipped.setdefault(reason, []).append(row["ID"])
                    continue
                sample = self._sample(len(ids), row, waveform)
                writer.write(sample)
                ids.append(row["ID"])
                duration = waveform.numel() / SAMPLE_RATE
                durations.append(round(duration, 4))
                audio_seconds += duration
            writer.close()
        os.replace(partial, tar_path)
        record = {
            # Where every sample's bytes are: readers seek, never scan.
            "members": member_table(tar_path),
            "name": spec.name,
            "split": spec.split,
            "language": spec.language,
            "rows": len(spec.rows),
            "samples": len(ids),
            "audio_seconds": audio_seconds,
            "bytes": tar_path.stat().st_size,
            "sha256": file_sha256(tar_path),
            "rows_sha256": spec.rows_digest(),
            "ids": ids,
            "durations": durations,
            "skipped": skipped,
        }
        # Written last: its presence means the shard is complete.
        _write_json_atomic(self.out_dir / f"{spec.name}.json", record)
        return record

    def _sample(self, position, row, waveform):
        """Builds the tar members of one clip, ready for ``TarWriter``.

        Arguments
        ---------
        position : int
            Index of the sample in the shard (its ``NNNNNN`` key).
        row : dict
            The clip's manifest row (``ID``, ``sentence``, ``lang``...);
            columns other than the standard ones go into the json.
        waveform : torch.Tensor
            ``[time]`` decoded 16 kHz audio.

        Returns
        -------
        dict
            ``__key__`` and the encoded members: ``json`` and, depending on
            the store mode, ``features.npy`` and/or ``flac`` (bytes).
        """
        num_samples = waveform.numel()
        meta = {
            "id": row["ID"],
            "sentence": row["sentence"],
            "lang": row["lang"],
            "duration": num_samples / SAMPLE_RATE,
            "num_samples": num_samples,
            "num_frames": w2v_bert_frame_count(num_samples),
        }
        for key, value in row.items():
            if key not in ("ID", "wav", "duration", "sentence", "lang"):
                meta.setdefault(key, value)
        sample = {
            "__key__": f"{position:06d}",
            "json": json.dumps(meta, ensure_ascii=False).encode("utf-8"),
        }
        if self.features is not None:
            features = self.features(waveform).numpy().astype(FEATURE_DTYPE)
            sample["features.npy"] = _encode_npy(features)
        if self.store in ("audio", "both"):
            sample["flac"] = _encode_flac(waveform)
        return sample


_WORKER_BUILDER = None


def _init_worker(out_dir, encoder_source, store, options):
    """Pool initializer: one single-threaded shard builder per process.

    Arguments
    ---------
    out_dir : str or Path
        Shard folder.
    encoder_source : str
        w2v-BERT model directory or hub id (its feature extractor).
    store : str
        ``"features"``, ``"audio"`` or ``"both"``.
    options : dict
        ``min_duration`` and ``max_duration`` of the clips kept.
    """
    global _WORKER_BUILDER
    torch.set_num_threads(1)
    _WORKER_BUILDER = _ShardBuilder(out_dir, encoder_source, store, options)


def _build_in_worker(spec):
    """Builds one shard with this worker process's builder.

    Arguments
    ---------
    spec : ShardSpec
        The shard, with its rows loaded.

    Returns
    -------
    dict
        The shard's sidecar record.
    """
    return _WORKER_BUILDER.build(spec)


def _is_finished(out_dir, spec):
    """A shard is finished when its sidecar matches its plan and its tar."""
    sidecar = Path(out_dir) / f"{spec.name}.json"
    tar_path = Path(out_dir) / f"{spec.name}.tar"
    if not sidecar.is_file() or not tar_path.is_file():
        return None
    record = json.loads(sidecar.read_text("utf-8"))
    if record.get("rows_sha256") != spec.rows_digest():
        raise ShardError(
            f"{sidecar}: built from other manifest rows than the plan; "
            "this folder holds another build"
        )
    if record.get("bytes") != tar_path.stat().st_size:
        return None  # the tar was replaced or truncated: rebuild it
    return record


def _check_plan(out_dir, plan_record):
    """Writes ``plan.json`` or checks that the folder was planned alike."""
    path = Path(out_dir) / PLAN_FILE
    if path.is_file():
        existing = json.loads(path.read_text("utf-8"))
        if existing != plan_record:
            changed = sorted(
                key
                for key in set(existing) | set(plan_record)
                if existing.get(key) != plan_record.get(key)
            )
            raise ShardError(
                f"{path}: this folder was built with other manifests or "
                f"options (differs in {changed}); build into a new folder"
            )
        return
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    _write_json_atomic(path, plan_record)


def _manifest_digest(path):
    """SHA-256 of a manifest, recorded in ``plan.json`` to bind the build.

    Arguments
    ---------
    path : str or Path
        CSV manifest.

    Returns
    -------
    str
        Hex digest of the file.
    """
    return file_sha256(path)


def build_shards(
    manifests,
    out_dir,
    encoder_source,
    data_root=None,
    store="features",
    samples_per_shard=1000,
    num_jobs=1,
    job_id=0,
    workers=1,
    min_duration=0.0,
    max_duration=None,
    max_bad_fraction=0.01,
    text_column="sentence",
    language=None,
    seed=0,
    progress=True,
):
    """Builds this job's shards (resumably) and writes its report.

    Arguments
    ---------
    manifests : dict
        Split name -> CSV manifest path.
    out_dir : str or Path
        Shard folder (shared by all jobs).
    encoder_source : str
        w2v-BERT model directory or hub id (its feature extractor).
    data_root : str, optional
        Value of ``$data_root`` in the manifests.
    store : str
        ``"features"``, ``"audio"`` or ``"both"``.
    samples_per_shard : int
        Clips per shard.
    num_jobs : int
        Number of independent jobs building the folder.
    job_id : int
        This job, in ``[0, num_jobs)``.
    workers : int
        Processes building shards in parallel within this job.
    min_duration : float
        Shorter clips are skipped as ``too_short``.
    max_duration : float, optional
        Longer clips are skipped as ``too_long``.
    max_bad_fraction : float
        Fail when more than this fraction of the job's clips is skipped.
    text_column : str
        Manifest column of the transcript.
    language : str, optional
        Language of manifests without a ``lang`` column.
    seed : int
        Seed of the plan's shuffling.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict
        The job's report: clips kept, skipped by reason, audio hours, time.

    Raises
    ------
    ShardError
        On inconsistent folders or when too many clips are bad.
    """
    if store not in STORE_MODES:
        raise ValueError(f"store must be one of {STORE_MODES}: {store!r}")
    start = time.time()
    out_dir = Path(out_dir)
    plan = plan_shards(
        scan_manifests(manifests, text_column, language),
        samples_per_shard,
        seed,
    )
    features = W2VBertFeatures(encoder_source)
    options = {"min_duration": min_duration, "max_duration": max_duration}
    plan_record = {
        "format_version": FORMAT_VERSION,
        "store": store,
        "samples_per_shard": samples_per_shard,
        "seed": seed,
        "num_rows": sum(len(spec.indices) for spec in plan),
        "feature_fingerprint": feature_fingerprint(features.extractor),
        "manifests": {
            split: _manifest_digest(path)
            for split, path in sorted(manifests.items())
        },
        "shards": [
            {
                "name": spec.name,
                "split": spec.split,
                "language": spec.language,
                "rows": len(spec.indices),
                "rows_sha256": spec.rows_digest(),
            }
            for spec in plan
        ],
        **options,
    }
    _check_plan(out_dir, plan_record)

    mine = job_shards(plan, num_jobs, job_id)
    records, todo = [], []
    for spec in mine:
        record = _is_finished(out_dir, spec)
        (records.append(record) if record else todo.append(spec))
    load_rows(todo, manifests, data_root, text_column, language)
    resumed = len(records)
    total_rows = sum(len(spec.indices) for spec in mine)
    done_rows = sum(record["rows"] for record in records)
    logger.info(
        "shards job %d/%d: %d shards (%d clips), %d already built",
        job_id,
        num_jobs,
        len(mine),
        total_rows,
        resumed,
    )
    bar = _progress_bar(total_rows, done_rows, progress)
    built_seconds = 0.0

    def finished(record):
        """Records a built shard and advances the progress bar.

        Arguments
        ---------
        record : dict
            The shard's sidecar record.
        """
        nonlocal built_seconds
        records.append(record)
        built_seconds += record["audio_seconds"]
        hours_per_s = built_seconds / 3600 / max(time.time() - start, 1e-9)
        bar.set_postfix(audio_h_per_s=f"{hours_per_s:.3f}", refresh=False)
        bar.update(record["rows"])

    if workers > 1 and len(todo) > 1:
        import multiprocessing

        args = (out_dir, encoder_source, store, options)
        with multiprocessing.get_context().Pool(
            workers, initializer=_init_worker, initargs=args
        ) as pool:
            for record in pool.imap_unordered(_build_in_worker, todo):
                finished(record)
    else:
        builder = _ShardBuilder(out_dir, encoder_source, store, options)
        for spec in todo:
            finished(builder.build(spec))
    bar.close()

    report = _job_report(records, time.time() - start, resumed)
    report.update({"job_id": job_id, "num_jobs": num_jobs, "store": store})
    report_dir = out_dir / REPORT_DIR
    report_dir.mkdir(exist_ok=True)
    _write_json_atomic(
        report_dir / f"job-{job_id:05d}-of-{num_jobs:05d}.json", report
    )
    bad = report["skipped"] / max(report["rows"], 1)
    if bad > max_bad_fraction:
        raise ShardError(
            f"{report['skipped']} of {report['rows']} clips ({bad:.1%}) "
            f"were unusable, more than --max-bad-fraction "
            f"{max_bad_fraction:.1%}: {report['skipped_by_reason']} "
            f"(ids in the shards' .json sidecars; report in {report_dir})"
        )
    if num_jobs == 1:
        verify_shards(out_dir, checksums=False)
    return report


def _progress_bar(total, initial, enabled):
    """A tqdm bar counting the job's clips.

    Arguments
    ---------
    total : int
        Clips of the job's shards.
    initial : int
        Clips of the shards already built (resumed).
    enabled : bool
        Show the bar; when False it is disabled but still usable.

    Returns
    -------
    tqdm.tqdm
        The bar, in clips, starting at ``initial``.
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="clip",
        desc="shards",
        disable=not enabled,
        dynamic_ncols=True,
    )


def _job_report(records, seconds, resumed):
    """Sums a job's shard sidecars into its report.

    Arguments
    ---------
    records : list of dict
        Sidecar records of the job's shards (built or resumed).
    seconds : float
        Wall-clock time of the job.
    resumed : int
        Shards that were already built when the job started.

    Returns
    -------
    dict
        Shard and clip counts (kept, skipped, by reason), audio hours,
        bytes and wall seconds.
    """
    reasons = Counter()
    for record in records:
        for reason, ids in record["skipped"].items():
            reasons[reason] += len(ids)
    audio = sum(record["audio_seconds"] for record in records)
    return {
        "shards": len(records),
        "shards_resumed": resumed,
        "rows": sum(record["rows"] for record in records),
        "kept": sum(record["samples"] for record in records),
        "skipped": sum(reasons.values()),
        "skipped_by_reason": dict(sorted(reasons.items())),
        "audio_hours": audio / 3600,
        "bytes": sum(record["bytes"] for record in records),
        "wall_seconds": seconds,
    }


# ---------------------------------------------------------------------------
# Verifying and indexing
# ---------------------------------------------------------------------------


def _id_hash(utt_id):
    """64-bit hash of a clip id, for memory-light duplicate detection.

    Arguments
    ---------
    utt_id : str
        Clip id.

    Returns
    -------
    int
        Unsigned 64-bit BLAKE2b digest of the id.
    """
    return int.from_bytes(
        hashlib.blake2b(utt_id.encode("utf-8"), digest_size=8).digest(),
        "little",
    )


def _duplicates(out_dir, plan, hashes):
    """Names the clips listed in two places (a second pass, only if any)."""
    values, counts = np.unique(hashes, return_counts=True)
    repeated = set(values[counts > 1].tolist())
    if not repeated:
        return []
    where = {}
    for entry in plan["shards"]:
        record = json.loads(
            (Path(out_dir) / f"{entry['name']}.json").read_text("utf-8")
        )
        for ids in [record["ids"], *record["skipped"].values()]:
            for utt_id in ids:
                if _id_hash(utt_id) in repeated:
                    where.setdefault(utt_id, []).append(entry["name"])
    return [
        f"clip {utt_id} in {' and '.join(names)}"
        for utt_id, names in where.items()
        if len(names) > 1
    ]


def verify_shards(out_dir, checksums=True):
    """Checks that all jobs' shards are complete; writes ``index.json``.

    Arguments
    ---------
    out_dir : str or Path
        Shard folder with ``plan.json``.
    checksums : bool
        Re-hash every tar against its sidecar (reads the whole folder).

    Returns
    -------
    dict
        The index: per shard its split, language, path, sample count,
        audio-seconds, bytes, checksum and per-sample durations; the
        feature fingerprint; totals per split and language.

    Raises
    ------
    ShardError
        Listing missing, corrupt or duplicated shards or clips.
    """
    out_dir = Path(out_dir)
    plan_path = out_dir / PLAN_FILE
    if not plan_path.is_file():
        raise ShardError(f"{plan_path} not found: not a shard folder")
    plan = json.loads(plan_path.read_text("utf-8"))
    problems, shards, hashes = [], [], []
    num_ids = 0
    for k, entry in enumerate(plan["shards"]):
        sidecar = out_dir / f"{entry['name']}.json"
        tar_path = out_dir / f"{entry['name']}.tar"
        if not sidecar.is_file() or not tar_path.is_file():
            problems.append(f"missing shard {entry['name']} (#{k})")
            continue
        record = json.loads(sidecar.read_text("utf-8"))
        if record["rows_sha256"] != entry["rows_sha256"]:
            problems.append(f"{sidecar}: built from other rows than planned")
            continue
        if record["bytes"] != tar_path.stat().st_size or (
            checksums and file_sha256(tar_path) != record["sha256"]
        ):
            problems.append(f"{tar_path}: checksum or size differs")
            continue
        listed = record["ids"] + [
            utt for ids in record["skipped"].values() for utt in ids
        ]
        if len(listed) != entry["rows"]:
            problems.append(
                f"{sidecar}: {len(listed)} clips kept or skipped, "
                f"{entry['rows']} planned"
            )
        # 8 bytes per clip, not a set of ids: millions of clips.
        hashes.append(np.array([_id_hash(u) for u in listed], np.uint64))
        num_ids += len(listed)
        shards.append(
            {
                key: record[key]
                for key in (
                    "name",
                    "split",
                    "language",
                    "samples",
                    "audio_seconds",
                    "bytes",
                    "sha256",
                    "durations",
                )
            }
        )
    if hashes:
        problems += _duplicates(out_dir, plan, np.concatenate(hashes))
    if num_ids != plan["num_rows"] and not problems:
        problems.append(f"{num_ids} clips found, {plan['num_rows']} planned")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = (
            f"\n  ... and {len(problems) - 20} more"
            if len(problems) > 20
            else ""
        )
        raise ShardError(
            f"{out_dir}: {len(problems)} problem(s):\n  {shown}{more}"
        )
    totals = {}
    for shard in shards:
        split = totals.setdefault(shard["split"], {})
        lang = split.setdefault(
            shard["language"], {"shards": 0, "samples": 0, "hours": 0.0}
        )
        lang["shards"] += 1
        lang["samples"] += shard["samples"]
        lang["hours"] += shard["audio_seconds"] / 3600
    index = {
        "format_version": plan["format_version"],
        "store": plan["store"],
        "feature_fingerprint": plan["feature_fingerprint"],
        "totals": totals,
        "shards": shards,
    }
    _write_json_atomic(out_dir / INDEX_FILE, index)
    return index


def load_index(folder):
    """Reads ``index.json`` of a verified shard folder.

    Arguments
    ---------
    folder : str or Path
        Shard folder.

    Returns
    -------
    dict
        The index written by :func:`verify_shards`.

    Raises
    ------
    ShardError
        When the folder was not verified (``shards verify``).
    """
    path = Path(folder) / INDEX_FILE
    if not path.is_file():
        raise ShardError(
            f"{path} not found: build the shards, then run "
            f"'python -m speechbrain_sense.data.shards verify {folder}'"
        )
    return json.loads(path.read_text("utf-8"))


def check_fingerprint(index, extractor, folder="shards"):
    """Fails unless the shards hold this extractor's features.

    Arguments
    ---------
    index : dict
        The shard index (:func:`load_index`).
    extractor : transformers.SeamlessM4TFeatureExtractor
        The training encoder's feature extractor.
    folder : str or Path
        Shard folder, named in the error message.

    Raises
    ------
    ShardError
        When the fingerprints differ.
    """
    expected = feature_fingerprint(extractor)
    if index["feature_fingerprint"] != expected:
        raise ShardError(
            f"{folder}: shards were built with another feature extractor "
            f"(fingerprint {index['feature_fingerprint'][:12]}, this "
            f"encoder's {expected[:12]}); rebuild them for this encoder"
        )


def check_manifests(folder, manifests):
    """Fails unless the shards were built from these very manifests.

    Training looks up teacher targets by transcript in a cache built from
    the manifests: shards of other manifests would miss or mislabel clips.

    Arguments
    ---------
    folder : str or Path
        Shard folder (``plan.json``).
    manifests : dict
        Split -> CSV path, as training prepared them.
    """
    plan = json.loads((Path(folder) / PLAN_FILE).read_text("utf-8"))
    for split, path in manifests.items():
        digest = plan["manifests"].get(split)
        if digest is None:
            raise ShardError(f"{folder}: no {split} manifest was sharded")
        if _manifest_digest(path) != digest:
            raise ShardError(
                f"{folder}: built from another {split} manifest than {path}"
                " (preparation changed since): rebuild the shards"
            )


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def decode_sample(members, where):
    """Turns one sample's tar members into a dict of arrays and metadata.

    Arguments
    ---------
    members : dict
        Extension -> bytes (``json``, ``features.npy``, ``flac``).
    where : str
        ``"<shard>: sample <key>"``, for error messages.

    Returns
    -------
    dict
        The json fields plus ``features`` (``[frames, 160]`` float32
        tensor) and/or ``waveform`` (``[time]`` float32 tensor).
    """
    try:
        sample = json.loads(members["json"].decode("utf-8"))
        if "features.npy" in members:
            array = np.load(io.BytesIO(members["features.npy"]))
            if array.ndim != 2 or array.shape[0] != sample["num_frames"]:
                raise ValueError(
                    f"features of shape {array.shape}, "
                    f"{sample['num_frames']} frames expected"
                )
            sample["features"] = torch.from_numpy(array.astype(np.float32))
        if "flac" in members:
            waveform, rate = soundfile.read(
                io.BytesIO(members["flac"]), dtype="float32"
            )
            if rate != SAMPLE_RATE or len(waveform) != sample["num_samples"]:
                raise ValueError("audio length or rate differs from its json")
            sample["waveform"] = torch.from_numpy(waveform)
    except Exception as error:  # json, numpy and libsndfile all raise
        raise ShardError(f"{where}: corrupt sample: {error}") from error
    if "features" not in sample and "waveform" not in sample:
        raise ShardError(f"{where}: neither features nor audio stored")
    return sample


def member_table(path):
    """Byte offset and size of every sample's members, from one header scan.

    Arguments
    ---------
    path : str or Path
        A ``.tar`` shard.

    Returns
    -------
    list of dict
        For sample ``i``: extension -> ``[offset, size]`` of its data.
    """
    table, keys = [], {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                key, _, extension = member.name.partition(".")
                if key not in keys:
                    keys[key] = len(table)
                    table.append({})
                table[keys[key]][extension] = [member.offset_data, member.size]
    except (OSError, tarfile.TarError, EOFError) as error:
        raise ShardError(
            f"{path}: truncated or corrupt shard: {error}"
        ) from error
    for position, key in enumerate(keys):
        if key != f"{position:06d}":
            raise ShardError(f"{path}: sample {position} has key {key!r}")
    return table


class ShardReader:
    """Reads samples of one shard, by position or in order.

    ``read(position)`` seeks straight to the sample's bytes, with the
    member table the build recorded in the shard's ``.json`` sidecar (or,
    without a sidecar, from one scan of the tar headers): a reader may jump
    around a shard at no cost beyond the bytes it reads.

    Arguments
    ---------
    path : str or Path
        The ``.tar`` shard.

    Example
    -------
    >>> reader = ShardReader("/no/such.tar")  # opened lazily
    >>> reader.read(0)
    Traceback (most recent call last):
    ...
    speechbrain_sense.data.shards.ShardError: /no/such.tar: cannot open shard: ...
    """

    def __init__(self, path):
        self.path = Path(path)
        self._file = None
        self._table = None

    def _open(self):
        """Opens the shard, loads its member table and checks its size."""
        try:
            self._file = open(self.path, "rb")  # kept open: many reads
            size = os.fstat(self._file.fileno()).st_size
        except OSError as error:
            raise ShardError(
                f"{self.path}: cannot open shard: {error}"
            ) from error
        sidecar = self.path.with_suffix(".json")
        record = {}
        if sidecar.is_file():
            record = json.loads(sidecar.read_text("utf-8"))
        self._table = record.get("members") or member_table(self.path)
        if record.get("bytes", size) != size:
            raise ShardError(
                f"{self.path}: {size} bytes, its sidecar says "
                f"{record['bytes']}: truncated or replaced shard"
            )

    def read(self, position):
        """Decoded sample number ``position`` of the shard.

        Arguments
        ---------
        position : int
            0-based sample index.

        Returns
        -------
        dict
            See :func:`decode_sample`.
        """
        if self._file is None:
            self._open()
        where = f"{self.path}: sample {position:06d}"
        if not 0 <= position < len(self._table):
            raise ShardError(f"{where}: past the end of the shard")
        members = {}
        for extension, (offset, size) in self._table[position].items():
            self._file.seek(offset)
            data = self._file.read(size)
            if len(data) != size:
                raise ShardError(f"{where}: truncated member {extension}")
            members[extension] = data
        return decode_sample(members, where)

    def __iter__(self):
        """All samples in file order, with tarfile alone (no sidecar)."""
        position = 0
        try:
            with tarfile.open(self.path, mode="r:") as tar:
                members, key = {}, None
                for member in tar:
                    name_key, _, extension = member.name.partition(".")
                    if key is not None and name_key != key:
                        yield decode_sample(
                            members, f"{self.path}: sample {key}"
                        )
                        members, position = {}, position + 1
                    key = name_key
                    data = tar.extractfile(member).read()
                    if len(data) != member.size:
                        raise EOFError(f"member {member.name} truncated")
                    members[extension] = data
                if key is not None:
                    yield decode_sample(members, f"{self.path}: sample {key}")
        except (OSError, tarfile.TarError, EOFError) as error:
            raise ShardError(
                f"{self.path}: sample {position:06d}: truncated or corrupt "
                f"shard: {error}"
            ) from error

    def close(self):
        """Closes the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _parse_manifests(values):
    """Maps the manifest arguments to splits, checking the files exist.

    Each value is ``SPLIT=PATH``, or ``PATH`` whose file stem is the split.

    Arguments
    ---------
    values : list of str
        The command line's manifest arguments.

    Returns
    -------
    dict
        Split name -> CSV path.
    """
    manifests = {}
    for value in values:
        split, sep, path = value.partition("=")
        if not sep:
            split, path = Path(value).stem, value
        if split in manifests:
            raise ShardError(f"split {split!r} given twice")
        if not Path(path).is_file():
            raise ShardError(f"manifest {path} not found")
        manifests[split] = path
    return manifests


def _parser():
    """Command-line parser with the ``build`` and ``verify`` verbs.

    Returns
    -------
    argparse.ArgumentParser
        Parser whose ``parse_args`` sets ``verb`` and that verb's options.
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_sense.data.shards",
        description=__doc__.split("\n\n")[0],
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    build = verbs.add_parser(
        "build",
        help="write WebDataset shards from CSV manifests",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    build.add_argument(
        "manifests",
        nargs="+",
        help="CSV manifests, as SPLIT=PATH or PATH (split = file stem)",
    )
    build.add_argument("--out", required=True, help="shard folder")
    build.add_argument(
        "--encoder-source",
        required=True,
        help="w2v-BERT hub id or directory (its feature extractor)",
    )
    build.add_argument(
        "--data-root", help="value of $data_root in the wav column"
    )
    build.add_argument(
        "--store",
        choices=STORE_MODES,
        default="features",
        help="fp16 w2v-BERT features, 16 kHz 16-bit FLAC audio, or both",
    )
    build.add_argument(
        "--samples-per-shard", type=int, default=1000, help="clips per shard"
    )
    build.add_argument(
        "--num-jobs",
        type=int,
        default=1,
        help="independent jobs sharing the build (e.g. a SLURM array)",
    )
    build.add_argument(
        "--job-id",
        type=int,
        default=0,
        help="this job, 0 .. num-jobs - 1 (e.g. $SLURM_ARRAY_TASK_ID)",
    )
    build.add_argument(
        "--workers", type=int, default=1, help="processes in this job"
    )
    build.add_argument(
        "--min-duration",
        type=float,
        default=0.0,
        help="shorter clips are skipped as too_short (seconds)",
    )
    build.add_argument(
        "--max-duration",
        type=float,
        default=None,
        help="longer clips are skipped as too_long (seconds; none: no limit)",
    )
    build.add_argument(
        "--max-bad-fraction",
        type=float,
        default=0.01,
        help="fail when a larger fraction of the job's clips is unusable",
    )
    build.add_argument(
        "--text-column",
        default="sentence",
        help="manifest column of the transcript",
    )
    build.add_argument(
        "--language", help="language of manifests without a 'lang' column"
    )
    build.add_argument(
        "--seed", type=int, default=0, help="seed of the shard plan's shuffle"
    )
    build.add_argument(
        "--no-progress", action="store_true", help="no tqdm progress bar"
    )
    build.add_argument(
        "--json", action="store_true", help="print the report as JSON"
    )

    verify = verbs.add_parser(
        "verify",
        help="check that all jobs finished; write index.json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    verify.add_argument("folder", help="shard folder")
    verify.add_argument(
        "--no-checksum",
        action="store_true",
        help="compare sizes only, do not re-hash the tars",
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _print_table(rows):
    """Prints ``(key, value)`` rows as two aligned columns.

    Arguments
    ---------
    rows : list of tuple
        ``(label, value)`` pairs.
    """
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main(argv=None):
    """Entry point of ``python -m speechbrain_sense.data.shards``.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0, or 1 after printing an error.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.verb == "build":
            report = build_shards(
                _parse_manifests(args.manifests),
                args.out,
                args.encoder_source,
                data_root=args.data_root,
                store=args.store,
                samples_per_shard=args.samples_per_shard,
                num_jobs=args.num_jobs,
                job_id=args.job_id,
                workers=args.workers,
                min_duration=args.min_duration,
                max_duration=args.max_duration,
                max_bad_fraction=args.max_bad_fraction,
                text_column=args.text_column,
                language=args.language,
                seed=args.seed,
                progress=not args.no_progress,
            )
            if args.json:
                print(json.dumps(report, indent=1))
            else:
                hours = report["audio_hours"]
                _print_table(
                    [
                        (
                            "shards",
                            f"{report['shards']} "
                            f"({report['shards_resumed']} already built)",
                        ),
                        ("clips kept", report["kept"]),
                        (
                            "clips skipped",
                            f"{report['skipped']} "
                            f"{report['skipped_by_reason'] or ''}".strip(),
                        ),
                        ("audio hours", f"{hours:.3f}"),
                        (
                            "bytes per audio hour",
                            f"{report['bytes'] / max(hours, 1e-9):.3e}",
                        ),
                        ("wall seconds", f"{report['wall_seconds']:.1f}"),
                    ]
                )
        else:
            index = verify_shards(args.folder, not args.no_checksum)
            if args.json:
                print(json.dumps(index["totals"], indent=1))
            else:
                rows = []
                for split, langs in sorted(index["totals"].items()):
                    samples = sum(v["samples"] for v in langs.values())
                    hours = sum(v["hours"] for v in langs.values())
                    rows.append(
                        (
                            split,
                            f"{len(langs)} languages, {samples} clips, "
                            f"{hours:.2f} h",
                        )
                    )
                rows.append(("index", str(Path(args.folder) / INDEX_FILE)))
                _print_table(rows)
    except (ShardError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
