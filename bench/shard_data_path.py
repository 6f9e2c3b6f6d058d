#!/usr/bin/env python3
"""Shard data path: worker CPU, shard builds, disk, preparation at scale.

What moving training data from MP3 files to WebDataset shards of w2v-BERT
features (:mod:`speechbrain_sense.data.shards`, :mod:`speechbrain_sense.
streaming`) buys and costs, on a synthetic Common Voice corpus (eSpeak NG
speech, 48 kHz MP3) and a tiny random w2v-BERT (its feature extractor is
w2v-BERT 2.0's, so the features cost what the real ones cost):

1. **DataLoader-worker CPU per audio-second** (process CPU time, one torch
   thread, after a warm-up pass, median of ``--repeat`` passes):
   (a) today's map-style path, ``load_audio`` (MP3 decode + resampling) +
   ``W2VBertFeatures`` per clip; (b) ``--store features`` shards read with
   ``ShardReader`` (tar members, npy fp16 -> float32 tensor); (c)
   ``--store audio`` shards (FLAC decode + ``W2VBertFeatures``); (d) the
   whole ``ShardStream`` training iteration in-process (planning, reads,
   ``PaddedBatch`` collation), and (e) the same over audio shards.
   Per-clip timings are fitted as ``fixed + rate x duration``. Where the
   CPU goes: (a) and (c) by stage, (b) split into tar reading, json, npy
   and fp16 -> fp32, and (d) as ``ShardStream.__iter__`` runs it, each
   stage timed apart: planning (drawing, sorting and packing each sort
   window), reads (each window's clips in (shard, position) order,
   ``ShardReader.read`` seeking with the member table of the shard's
   ``.json`` sidecar) and ``PaddedBatch`` collation; with the windows,
   reads, distinct shards per window and shard openings of the pass.
2. **Shard builds** per ``--store`` mode, in one process: audio-hours per
   core-hour (CPU time), bytes of the tars per audio-hour (split into a
   per-clip and a per-second part), and the MP3 source per audio-hour.
3. **Preparation at scale**: ``common_voice_sense_prepare.prepare_common_voice``
   on a synthetic Common Voice tree of ``--prepare-rows`` TSV rows over
   ``--prepare-languages`` locales (TSVs with the real columns,
   ``clip_durations.tsv``, and clips as hard links to a few one-byte
   files), with ``verify_clips="none"``, which stats each clip but opens
   none with a listed duration (the decoding check is timed by
   ``bench/clip_check.py``). Wall time and peak RSS above the import
   baseline, in a child process; when above the target, a second child
   traces the allocations with ``tracemalloc`` when every row has been
   read (the ``_commit_manifests`` call that moves the manifests into
   place).
4. The estimate for a full Common Voice build (``--cv-hours``,
   ``--cv-clips``): core-hours and TB per store mode.

Command lines::

    python bench/shard_data_path.py                    # defaults, minutes
    python bench/shard_data_path.py --prepare-rows 100000   # quicker
    python bench/shard_data_path.py --prepare-rows 0        # no item 3
    python bench/shard_data_path.py --json results.json

The synthetic corpus, the model and the Common Voice tree are built once
into ``--work-dir`` and reused. The run ends with ``NAME: value`` lines;
the last one is ``stream_ms_per_audio_second: X``.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import csv
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from measurement import (
    PeakMemory,
    device_description,
    load_average,
    markdown_table,
    median,
)
from workloads import (
    DEFAULT_WORK_DIR,
    _build_once,
    load_recipe_module,
    quiet_libraries,
    student_source,
    synthetic_corpus,
)

from speechbrain_sense.data.preparation import COMMON_VOICE_COLUMNS

SAMPLE_RATE = 16000
SPLITS = ("train", "dev", "test")
STORES = ("features", "audio", "both")
RESULT_PREFIX = "RESULT "
# Targets this benchmark reports against.
TARGET_READ_MS = 0.3  # worker CPU per audio-second, (b) and (d)
TARGET_PREPARE_MB = 150.0  # peak RSS above the import baseline
# ext4 allows 65,000 hard links per inode.
LINKS_PER_INODE = 60000
# Common Voice locales (folder names), for the synthetic tree.
CV_LOCALES = (
    "ab af am ar as ast az ba bas be bg bn br ca ckb cnh cs cv cy da de dv "
    "dyu el en eo es et eu fa fi fr fy-NL ga-IE gl gn ha he hi hsb hu hy-AM "
    "ia id ig is it ja ka kab kk kmr ko ky lg lij lo lt ltg lv mdf mhr mk ml "
    "mn mr mrj mt myv nan-tw ne-NP nhi nl nn-NO nso oc or os pa-IN pl ps pt "
    "quy rm-sursilv rm-vallader ro ru rw sah sat sc sk skr sl sq sr sv-SE sw "
    "ta te th ti tig tk tok tr tt tw ug uk ur uz vi vot yi yo yue zgh zh-CN "
    "zh-HK zh-TW zu"
).split()
# The columns of a Common Voice 17 split TSV.
CV_TSV_COLUMNS = COMMON_VOICE_COLUMNS["17.0"]


def fit_fixed_and_rate(durations, seconds):
    """Least-squares ``seconds = fixed + rate * duration`` per clip.

    Arguments
    ---------
    durations : list of float
        Clip durations (s).
    seconds : list of float
        CPU seconds per clip.

    Returns
    -------
    tuple
        ``(fixed seconds per clip, seconds per audio-second)``.

    Example
    -------
    >>> fixed, rate = fit_fixed_and_rate([1.0, 2.0, 3.0], [0.3, 0.5, 0.7])
    >>> round(fixed, 6), round(rate, 6)
    (0.1, 0.2)
    """
    rate, fixed = np.polyfit(np.asarray(durations), np.asarray(seconds), 1)
    return float(fixed), float(rate)


def _ms(seconds_per_audio_second):
    """Formats a seconds-per-audio-second cost as milliseconds, 3 decimals."""
    return f"{1000 * seconds_per_audio_second:.3f}"


# --------------------------------------------------------------------------
# 1. Worker CPU per audio-second
# --------------------------------------------------------------------------


def _clip_paths(corpus):
    """Absolute audio paths of every row of the corpus's split manifests."""
    rows = []
    for split in SPLITS:
        with open(corpus[f"{split}_csv"], encoding="utf-8", newline="") as f:
            rows += list(csv.DictReader(f))
    return [
        row["wav"].replace("$data_root", corpus["data_folder"]) for row in rows
    ]


def mp3_path_costs(paths, features, repeat):
    """(a) ``load_audio`` + ``W2VBertFeatures`` per clip, CPU seconds.

    Arguments
    ---------
    paths : list of str
        MP3 clips.
    features : W2VBertFeatures
        The extractor.
    repeat : int
        Timed passes (after one warm-up pass).

    Returns
    -------
    dict
        Per-clip ``durations`` and median per-clip ``decode`` / ``fbank``
        seconds, and the per-pass totals ``passes``.
    """
    from speechbrain_sense.audio import load_audio

    for path in paths:  # warm-up: page cache, resampler kernel
        features(load_audio(path, SAMPLE_RATE))
    decode = np.zeros((repeat, len(paths)))
    fbank = np.zeros((repeat, len(paths)))
    durations = []
    for r in range(repeat):
        for i, path in enumerate(paths):
            start = time.process_time()
            wav = load_audio(path, SAMPLE_RATE)
            middle = time.process_time()
            features(wav)
            decode[r, i] = middle - start
            fbank[r, i] = time.process_time() - middle
            if r == 0:
                durations.append(wav.numel() / SAMPLE_RATE)
    return {
        "durations": durations,
        "stages": {
            "MP3 decode + 48->16 kHz resampling": np.median(decode, 0),
            "w2v-BERT fbank (W2VBertFeatures)": np.median(fbank, 0),
        },
        "passes": (decode + fbank).sum(1).tolist(),
    }


def shard_read_costs(tar_paths, repeat, features=None):
    """(b)/(c) ``ShardReader`` iteration over shards, CPU per sample.

    Arguments
    ---------
    tar_paths : list of Path
        The shards.
    repeat : int
        Timed passes (after one warm-up pass).
    features : W2VBertFeatures, optional
        Applied to ``waveform`` (audio shards).

    Returns
    -------
    dict
        As :func:`mp3_path_costs`.
    """
    from speechbrain_sense.data.shards import ShardReader

    read_rows, feature_rows, durations = [], [], []
    for r in range(repeat + 1):
        read_times, feature_times = [], []
        for path in tar_paths:
            samples = iter(ShardReader(path))
            while True:
                start = time.process_time()
                sample = next(samples, None)
                middle = time.process_time()
                if sample is None:
                    break
                if features is not None:
                    features(sample["waveform"])
                read_times.append(middle - start)
                feature_times.append(time.process_time() - middle)
                if r == 0:
                    durations.append(sample["duration"])
        if r > 0:  # pass 0 warms up
            read_rows.append(read_times)
            feature_rows.append(feature_times)
    read = np.asarray(read_rows)
    stages = {"ShardReader: tar + decode_sample": np.median(read, 0)}
    total = read.sum(1)
    if features is not None:
        feature = np.asarray(feature_rows)
        stages["w2v-BERT fbank (W2VBertFeatures)"] = np.median(feature, 0)
        total = total + feature.sum(1)
    return {"durations": durations, "stages": stages, "passes": total.tolist()}


def features_read_breakdown(tar_paths, repeat):
    """Where (b)'s CPU goes: tar reading, json, np.load, fp16 -> fp32.

    Arguments
    ---------
    tar_paths : list of Path
        ``--store features`` shards.
    repeat : int
        Passes; the median is kept.

    Returns
    -------
    dict
        Stage -> CPU seconds of one pass.
    """
    totals = {}
    for _ in range(repeat + 1):
        times = dict.fromkeys(
            ("tar headers + member bytes", "json.loads", "np.load (npy)"),
            0.0,
        )
        times["fp16 -> fp32 + torch.from_numpy"] = 0.0
        for path in tar_paths:
            start = time.process_time()
            members = []
            with tarfile.open(path, mode="r:") as tar:
                for member in tar:
                    members.append(
                        (member.name, tar.extractfile(member).read())
                    )
            times["tar headers + member bytes"] += time.process_time() - start
            for name, data in members:
                start = time.process_time()
                if name.endswith(".json"):
                    json.loads(data.decode("utf-8"))
                    times["json.loads"] += time.process_time() - start
                elif name.endswith(".features.npy"):
                    array = np.load(io.BytesIO(data))
                    middle = time.process_time()
                    torch.from_numpy(array.astype(np.float32))
                    times["np.load (npy)"] += middle - start
                    key = "fp16 -> fp32 + torch.from_numpy"
                    times[key] += time.process_time() - middle
        for key, value in times.items():
            totals.setdefault(key, []).append(value)
    return {key: median(values[1:]) for key, values in totals.items()}


def stream_costs(folder, options, ratios, repeat, features=None):
    """(d)/(e) the whole ``ShardStream`` training iteration, in-process.

    Arguments
    ---------
    folder : Path
        A verified shard folder.
    options : argparse.Namespace
        Benchmark options.
    ratios : dict
        Language ratios of the corpus.
    repeat : int
        Timed passes (after one warm-up pass).
    features : W2VBertFeatures, optional
        For audio-only shards.

    Returns
    -------
    dict
        ``passes`` (CPU s), ``audio_seconds`` and ``batches`` of one pass,
        and the stream object.
    """
    from speechbrain_sense.data.streaming import ShardStream

    stream = ShardStream(
        folder,
        "train",
        options.max_batch_seconds,
        language_ratios=ratios,
        max_batch_size=options.max_batch_size,
        num_workers=0,
        features=features,
    )
    passes = []
    for r in range(repeat + 1):
        seconds, batches = 0.0, 0
        start = time.process_time()
        for batch in stream:
            batches += 1
            seconds += float(torch.as_tensor(batch.duration).sum())
        if r > 0:
            passes.append(time.process_time() - start)
    return {
        "passes": passes,
        "audio_seconds": seconds,
        "batches": batches,
        "stream": stream,
    }


def stream_breakdown(stream, repeat):
    """(d)'s pass stage by stage, as ``ShardStream.__iter__`` runs it.

    Plans slot 0's sort windows (``_slot_windows``), reads each window
    with ``_read_window`` (``ShardReader.read`` in (shard, position)
    order, the shards of the previous window kept open) and collates the
    batches with ``PaddedBatch``, timing the three apart.

    Arguments
    ---------
    stream : ShardStream
        A features training stream (``num_workers=0``).
    repeat : int
        Passes; the median is kept.

    Returns
    -------
    dict
        CPU seconds of one pass per stage (``planning``, ``reads``,
        ``collation``); ``windows``, ``samples_read`` (distinct clips
        of each window), ``shards_per_window`` (distinct shards a window
        reads, mean), ``shard_openings`` and ``audio_seconds`` of the
        pass.
    """
    from speechbrain.dataio.batch import PaddedBatch

    count = stream.batches_per_slot(stream.epoch)
    stages = {"planning": [], "reads": [], "collation": []}
    for _ in range(repeat + 1):
        times = dict.fromkeys(stages, 0.0)
        readers = {}
        windows = shards = openings = read = number = 0
        seconds = 0.0
        planned = stream._slot_windows(stream.epoch, 0)
        try:
            while number < count:
                start = time.process_time()
                window = next(planned, None)
                times["planning"] += time.process_time() - start
                if window is None:
                    break
                todo = window[: count - number]
                number += len(todo)
                if not todo:
                    continue
                used = {s for batch in todo for s in batch[0].tolist()}
                windows += 1
                shards += len(used)
                openings += len(used - readers.keys())
                start = time.process_time()
                samples = stream._read_window(todo, readers)
                times["reads"] += time.process_time() - start
                read += len(samples)
                start = time.process_time()
                for batch in todo:
                    refs = zip(batch[0].tolist(), batch[1].tolist())
                    PaddedBatch([samples[r] for r in refs])
                times["collation"] += time.process_time() - start
                seconds += sum(float(batch[2].sum()) for batch in todo)
        finally:
            for reader in readers.values():
                reader.close()
        for key, value in times.items():
            stages[key].append(value)
    out = {key: median(values[1:]) for key, values in stages.items()}
    out.update(
        windows=windows,
        samples_read=read,
        shards_per_window=shards / max(windows, 1),
        shard_openings=openings,
        audio_seconds=seconds,
    )
    return out


# --------------------------------------------------------------------------
# 2. Shard builds
# --------------------------------------------------------------------------


def tar_composition(tar_paths):
    """Splits shard bytes into a per-clip and a per-audio-second part.

    Per audio-second: the feature values (``frames x 160 x 2`` bytes of
    each npy) and the FLAC members. Per clip: everything else, i.e. tar
    headers and padding, the json members and the npy headers.

    Arguments
    ---------
    tar_paths : list of Path
        The shards of one store mode.

    Returns
    -------
    dict
        ``bytes``, ``clips``, ``seconds``, ``per_clip`` and
        ``per_second`` bytes.
    """
    total = clips = seconds = payload = 0
    for path in tar_paths:
        total += path.stat().st_size
        with tarfile.open(path, mode="r:") as tar:
            members = {}
            for member in tar:
                key, kind = member.name.split(".", 1)
                members.setdefault(key, {})[kind] = member
            for sample in members.values():
                meta = json.loads(tar.extractfile(sample["json"]).read())
                clips += 1
                seconds += meta["duration"]
                if "features.npy" in sample:
                    payload += meta["num_frames"] * 160 * 2
                if "flac" in sample:
                    payload += sample["flac"].size
    return {
        "bytes": total,
        "clips": clips,
        "seconds": seconds,
        "per_clip": (total - payload) / clips,
        "per_second": payload / seconds,
    }


def build_costs(options, corpus, source, folder):
    """Builds every store mode ``--repeat`` times; CPU, wall and bytes.

    Arguments
    ---------
    options : argparse.Namespace
        Benchmark options.
    corpus : dict
        :func:`workloads.synthetic_corpus` paths.
    source : str
        w2v-BERT directory.
    folder : Path
        Where the shard folders go (``<folder>/<store>`` are kept).

    Returns
    -------
    dict
        Store -> ``cpu``, ``wall`` (medians), the build report, the tar
        composition.
    """
    from speechbrain_sense.data.shards import build_shards

    manifests = {split: corpus[f"{split}_csv"] for split in SPLITS}

    def build(out, store, which=manifests):
        """Shards ``which`` into ``out`` with one worker; the build's report."""
        return build_shards(
            which,
            out,
            source,
            data_root=corpus["data_folder"],
            store=store,
            samples_per_shard=options.samples_per_shard,
            workers=1,
            progress=False,
        )

    # Warm-up (imports, extractor, page cache): the dev split, untimed.
    build(folder / "warm-up", "both", {"dev": manifests["dev"]})
    shutil.rmtree(folder / "warm-up")
    results = {}
    for store in STORES:
        cpu, wall = [], []
        for r in range(options.repeat):
            out = folder / f"{store}-{r}"
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            report = build(out, store)
            cpu.append(time.process_time() - start_cpu)
            wall.append(time.perf_counter() - start_wall)
            if r < options.repeat - 1:
                shutil.rmtree(out)
        os.replace(out, folder / store)
        tars = sorted((folder / store).rglob("*.tar"))
        results[store] = {
            "cpu": median(cpu),
            "wall": median(wall),
            "report": report,
            "composition": tar_composition(tars),
        }
    return results


def mp3_bytes(paths):
    """Total size of the source clips."""
    return sum(os.path.getsize(path) for path in paths)


# --------------------------------------------------------------------------
# 3. Preparation at scale
# --------------------------------------------------------------------------


def _split_rows(total, parts):
    """Splits ``total`` into ``parts`` near-equal counts, larger ones first."""
    base, extra = divmod(total, parts)
    return [base + (k < extra) for k in range(parts)]


def synthetic_cv_tree(work_dir, rows, languages, seed=0):
    """A Common Voice release of ``rows`` TSV rows, without audio.

    Per locale: ``train/dev/test.tsv`` (80/10/10, Common Voice 17 columns,
    128-hex client ids, grammar sentences), ``clip_durations.tsv`` for
    those clips (log-normal, median 4.2 s), and ``clips/`` holding one
    hard link per clip to a few empty files (one inode per
    ``LINKS_PER_INODE`` links). Built once into ``work_dir``.

    Arguments
    ---------
    work_dir : str or Path
        Work folder.
    rows : int
        TSV rows over all locales and splits.
    languages : int
        Locales (at most ``len(CV_LOCALES)``).
    seed : int
        Seed.

    Returns
    -------
    tuple
        ``(folder, info)``: the release root and ``tree_info.json``
        (locales, rows, build seconds, inodes).
    """
    from speechbrain_sense.synthetic.phrase_grammar import (
        grammar_languages,
        grammar_sentences,
    )

    if not 1 <= languages <= len(CV_LOCALES):
        raise ValueError(f"--prepare-languages must be 1..{len(CV_LOCALES)}")
    locales = CV_LOCALES[:languages]
    pools = [grammar_sentences(lang) for lang in grammar_languages()]

    def build(tmp):
        """Hard-links the seed clips into a CV-shaped tree under ``tmp``."""
        start = time.perf_counter()
        sources = tmp / ".link-sources"
        sources.mkdir()
        links, inodes = 0, 0
        source = None
        for k, (lang, count) in enumerate(
            zip(locales, _split_rows(rows, languages))
        ):
            rng = np.random.default_rng([seed, k])
            clips = tmp / lang / "clips"
            clips.mkdir(parents=True)
            numbers = 10_000_000 + rng.choice(89_999_999, count, replace=False)
            names = [f"common_voice_{lang}_{n}.mp3" for n in numbers]
            millis = np.clip(
                rng.lognormal(math.log(4200), 0.45, count), 300, 25000
            ).astype(int)
            speakers = [rng.bytes(64).hex() for _ in range(max(1, count // 40))]
            who = rng.integers(len(speakers), size=count)
            pool = pools[k % len(pools)]
            with open(
                tmp / lang / "clip_durations.tsv", "w", encoding="utf-8"
            ) as f:
                f.write("clip\tduration[ms]\n")
                f.writelines(
                    f"{name}\t{ms}\n" for name, ms in zip(names, millis)
                )
            bounds = {
                "train": (0, 8 * count // 10),
                "dev": (8 * count // 10, 9 * count // 10),
                "test": (9 * count // 10, count),
            }
            for split, (first, last) in bounds.items():
                with open(
                    tmp / lang / f"{split}.tsv", "w", encoding="utf-8"
                ) as f:
                    f.write("\t".join(CV_TSV_COLUMNS) + "\n")
                    for i in range(first, last):
                        fields = (
                            speakers[who[i]],
                            names[i],
                            rng.bytes(32).hex(),
                            pool[i % len(pool)],
                            "",
                            "2",
                            "0",
                            "",
                            "",
                            "",
                            "",
                            lang,
                            "",
                        )
                        f.write("\t".join(fields) + "\n")
            for name in names:
                if links % LINKS_PER_INODE == 0:
                    source = sources / f"stub-{inodes}.mp3"
                    source.write_bytes(b"\0")  # not empty: exists, unopened
                    inodes += 1
                os.link(source, clips / name)
                links += 1
        info = {
            "locales": list(locales),
            "rows": rows,
            "build_seconds": time.perf_counter() - start,
            "clip_links": links,
            "clip_inodes": inodes,
        }
        (tmp / "tree_info.json").write_text(json.dumps(info, indent=1))

    folder = _build_once(
        Path(work_dir) / f"cv-tree-v2-{rows}rows-{languages}locales-seed{seed}",
        build,
    )
    info = json.loads((folder / "tree_info.json").read_text())
    return folder, info


def measure_prepare(child):
    """In the child: prepares, returns wall, CPU and peak RSS (or a trace).

    Arguments
    ---------
    child : dict
        ``data_folder``, ``languages``, ``trace`` (bool), ``top``.

    Returns
    -------
    dict
        Seconds, bytes, rows; with ``trace``, the traced bytes by source
        line when the manifests are committed (every row read).
    """
    import gc
    import tracemalloc

    import speechbrain  # noqa: F401  (part of the import baseline)

    module = load_recipe_module("common_voice_sense_prepare")
    gc.collect()
    save_folder = tempfile.mkdtemp(prefix="cv-prepare-bench-")
    snapshot = {}
    if child["trace"]:
        original = module._commit_manifests

        def commit_manifests(*args, **kwargs):
            """Snapshots traced memory at the first commit, then delegates."""
            if not snapshot:
                snapshot["current"] = tracemalloc.get_traced_memory()[0]
                snapshot["snapshot"] = tracemalloc.take_snapshot()
            return original(*args, **kwargs)

        module._commit_manifests = commit_manifests
        tracemalloc.start()
    try:
        baseline_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with PeakMemory("cpu") as memory:
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            report = module.prepare_common_voice(
                data_folder=child["data_folder"],
                save_folder=save_folder,
                languages=child["languages"],
                verify_clips="none",
            )
            cpu = time.process_time() - start_cpu
            wall = time.perf_counter() - start_wall
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        shutil.rmtree(save_folder, ignore_errors=True)
    kept = sum(s["kept"] for lang in report.values() for s in lang.values())
    dropped = sum(
        s["dropped"] for lang in report.values() for s in lang.values()
    )
    out = {
        "wall": wall,
        "cpu": cpu,
        "rows": kept + dropped,
        "kept": kept,
        "baseline_rss": memory.start_bytes,
        "peak_rss": memory.peak_bytes,
        "delta": memory.delta_bytes,
        "baseline_maxrss": 1024 * baseline_maxrss,
        "maxrss": 1024 * maxrss,
    }
    if child["trace"]:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        stats = snapshot["snapshot"].statistics("lineno")
        out["traced_at_write"] = snapshot["current"]
        out["traced_peak"] = peak
        # The per-language durations dict alone, for the largest locale.
        lang_dir = Path(child["data_folder"]) / child["languages"][0]
        tracemalloc.start()
        durations = module._read_clip_durations(lang_dir)
        out["durations_entries"] = len(durations)
        out["durations_bytes"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del durations
        out["top"] = [
            {
                "where": f"{Path(s.traceback[0].filename).name}:"
                f"{s.traceback[0].lineno}",
                "code": _source_line(s.traceback[0]),
                "bytes": s.size,
                "blocks": s.count,
            }
            for s in stats[: child["top"]]
        ]
    return out


def _source_line(frame):
    """The stripped source line of a tracemalloc frame."""
    import linecache

    return linecache.getline(frame.filename, frame.lineno).strip()


def run_prepare_child(data_folder, languages, trace=False, top=10):
    """Runs :func:`measure_prepare` in a fresh Python process.

    Arguments
    ---------
    data_folder : Path
        The synthetic release.
    languages : list of str
        Locales to prepare.
    trace : bool
        Trace allocations (slower; the RSS figures then include the
        tracer's own bookkeeping).
    top : int
        Source lines reported by the trace.

    Returns
    -------
    dict
        The child's result.
    """
    child = {
        "data_folder": str(data_folder),
        "languages": list(languages),
        "trace": trace,
        "top": top,
    }
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child-prepare",
        json.dumps(child),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
    raise RuntimeError(f"prepare child failed (exit code {done.returncode})")


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def parse_arguments(argv=None):
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--languages", default="en,fr")
    parser.add_argument(
        "--per-language",
        type=int,
        default=150,
        help="synthetic clips per language (80%% train)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed passes (median)"
    )
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--max-batch-seconds", type=float, default=60.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument(
        "--prepare-rows",
        type=int,
        default=1_000_000,
        help="TSV rows of the synthetic Common Voice tree (0: skip item 3)",
    )
    parser.add_argument("--prepare-languages", type=int, default=83)
    parser.add_argument(
        "--trace-prepare",
        choices=("auto", "always", "never"),
        default="auto",
        help="tracemalloc run of the preparation (auto: when above target)",
    )
    parser.add_argument(
        "--trace-rows",
        type=int,
        default=250_000,
        help="rows (whole locales) of the traced preparation",
    )
    parser.add_argument("--cv-hours", type=float, default=30000.0)
    parser.add_argument("--cv-clips", type=int, default=4_000_000)
    parser.add_argument(
        "--keep-shards", action="store_true", help="keep the built shards"
    )
    parser.add_argument("--json", default=None, help="write results here")
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    parser.add_argument("--child-prepare", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _cost_row(name, costs, reference=None):
    """Table row: total, fixed and per-second costs, ratio to ``reference``."""
    seconds = sum(costs["durations"])
    total = median(costs["passes"]) / seconds
    per_clip = sum(np.asarray(v) for v in costs["stages"].values())
    fixed, rate = fit_fixed_and_rate(costs["durations"], per_clip.tolist())
    return [
        name,
        _ms(total),
        f"{1e6 * fixed:.0f}",
        _ms(rate),
        f"{reference / total:.1f}x" if reference else "1.0x",
    ], total


def _read_table(mp3, read_features, read_audio, streams):
    """Item 1's main table; returns the ms per audio-second of each path."""
    rows, totals = [], {}
    row, totals["mp3"] = _cost_row("(a) MP3: load_audio + W2VBertFeatures", mp3)
    rows.append(row)
    row, totals["features_shards"] = _cost_row(
        "(b) features shards: ShardReader", read_features, totals["mp3"]
    )
    rows.append(row)
    row, totals["audio_shards"] = _cost_row(
        "(c) audio shards: ShardReader + W2VBertFeatures",
        read_audio,
        totals["mp3"],
    )
    rows.append(row)
    names = {
        "stream_features": "(d) ShardStream, features shards "
        "(plan + read + PaddedBatch)",
        "stream_audio": "(e) ShardStream, audio shards (+ W2VBertFeatures)",
    }
    for key, name in names.items():
        stream = streams[key]
        totals[key] = median(stream["passes"]) / stream["audio_seconds"]
        rows.append(
            [
                name,
                _ms(totals[key]),
                "-",
                "-",
                f"{totals['mp3'] / totals[key]:.1f}x",
            ]
        )
    print(
        markdown_table(
            [
                "path",
                "ms per audio-s",
                "fit: fixed us per clip",
                "fit: ms per audio-s",
                "less CPU than (a)",
            ],
            rows,
        )
    )
    return totals


def worker_section(options, corpus, source, shards_dir, ratios, results):
    """Item 1: prints the worker-CPU tables; fills ``results``."""
    from speechbrain_sense.encoders.w2v_bert import W2VBertFeatures

    features = W2VBertFeatures(source)
    paths = _clip_paths(corpus)
    repeat = options.repeat
    mp3 = mp3_path_costs(paths, features, repeat)
    feature_tars = sorted((shards_dir / "features").rglob("*.tar"))
    audio_tars = sorted((shards_dir / "audio").rglob("*.tar"))
    read_features = shard_read_costs(feature_tars, repeat)
    read_audio = shard_read_costs(audio_tars, repeat, features)
    streams = {
        "stream_features": stream_costs(
            shards_dir / "features", options, ratios, repeat
        ),
        "stream_audio": stream_costs(
            shards_dir / "audio", options, ratios, repeat, features
        ),
    }
    seconds = sum(mp3["durations"])
    print(
        f"\n1. DataLoader-worker CPU per audio-second (process CPU, 1 torch "
        f"thread, median of {repeat} passes after a warm-up; {len(paths)} "
        f"clips, {seconds:.0f} s of audio, mean {seconds / len(paths):.2f} "
        f"s per clip; target for (b) and (d): <= {TARGET_READ_MS} ms):"
    )
    totals = _read_table(mp3, read_features, read_audio, streams)
    print(
        f"(fits over clips of {min(mp3['durations']):.1f}-"
        f"{max(mp3['durations']):.1f} s: noisy where the per-second part "
        "dominates, (a) and (c))"
    )

    stream = streams["stream_features"]["stream"]
    breakdown = stream_breakdown(stream, repeat)
    stream_seconds = breakdown["audio_seconds"]
    stage_rows = []
    for name, stages in (("(a)", mp3), ("(c)", read_audio)):
        for stage, per_clip in stages["stages"].items():
            stage_rows.append(
                [name, stage, _ms(float(np.sum(per_clip)) / seconds)]
            )
    for stage, cpu in features_read_breakdown(feature_tars, repeat).items():
        stage_rows.append(["(b)", stage, _ms(cpu / seconds)])
    labels = {
        "planning": "planning: draw, sort and pack each window",
        "reads": "reads: ShardStream._read_window (ShardReader.read)",
        "collation": "collation: PaddedBatch",
    }
    for stage, label in labels.items():
        stage_rows.append(
            ["(d)", label, _ms(breakdown[stage] / stream_seconds)]
        )
    print("\nWhere it goes (ms per audio-second):")
    print(markdown_table(["path", "stage", "ms per audio-s"], stage_rows))
    staged = sum(breakdown[stage] for stage in labels) / stream_seconds
    print(
        f"\n(d) one pass: {breakdown['windows']} sort windows "
        f"(sort_window {stream.sort_window}), {breakdown['samples_read']} "
        "samples read, "
        f"{breakdown['shards_per_window']:.1f} distinct shards read per "
        f"window, {breakdown['shard_openings']} shard openings; train "
        f"shards here hold up to {max(d.size for d in stream.durations)} "
        f"clips (--samples-per-shard {options.samples_per_shard}); the "
        f"stages sum to {_ms(staged)} ms per audio-s, the whole iteration "
        f"{_ms(totals['stream_features'])}."
    )
    results["worker_ms_per_audio_second"] = {
        key: 1000 * value for key, value in totals.items()
    }
    results["worker_stages_ms_per_audio_second"] = {
        f"{row[0]} {row[1]}": float(row[2]) for row in stage_rows
    }
    results["stream_breakdown"] = breakdown


def build_section(options, builds, paths, results):
    """Item 2: prints build throughput and disk; fills ``results``."""
    rows = []
    out = {}
    for store, build in builds.items():
        hours = build["report"]["audio_hours"]
        comp = build["composition"]
        out[store] = {
            "audio_h_per_core_h": hours * 3600 / build["cpu"],
            "cpu_s_per_audio_h": build["cpu"] / hours,
            "bytes_per_audio_h": build["report"]["bytes"] / hours,
            "per_clip_bytes": comp["per_clip"],
            "per_second_bytes": comp["per_second"],
            "wall": build["wall"],
            "cpu": build["cpu"],
        }
        rows.append(
            [
                store,
                f"{build['cpu']:.2f}",
                f"{hours * 3600 / build['cpu']:.0f}",
                f"{build['report']['bytes'] / hours / 1e6:.1f}",
                f"{comp['per_second'] * 3600 / 1e6:.1f}",
                f"{comp['per_clip'] / 1e3:.2f}",
            ]
        )
    audio_hours = builds["features"]["report"]["audio_hours"]
    source_bytes = mp3_bytes(paths)
    rows.append(
        [
            "MP3 source (48 kHz)",
            "-",
            "-",
            f"{source_bytes / audio_hours / 1e6:.1f}",
            "-",
            "-",
        ]
    )
    print(
        f"\n2. Shard builds, 1 process, 1 torch thread ({len(paths)} clips, "
        f"{audio_hours * 3600:.0f} s; median of {options.repeat} builds):"
    )
    print(
        markdown_table(
            [
                "store",
                "CPU s",
                "audio-h per core-h",
                "MB per audio-h",
                "of which MB per audio-h of payload",
                "kB per clip (tar, json, headers)",
            ],
            rows,
        )
    )
    results["build"] = out
    results["mp3_bytes_per_audio_h"] = source_bytes / audio_hours
    return out


def prepare_section(options, results):
    """Item 3: the preparation of a large tree, in child processes."""
    start = time.perf_counter()
    tree, info = synthetic_cv_tree(
        options.work_dir, options.prepare_rows, options.prepare_languages
    )
    reused = time.perf_counter() - start < 0.5 * info["build_seconds"]
    print(
        f"\n3. prepare_common_voice on a synthetic Common Voice tree: "
        f"{info['rows']} TSV rows, {len(info['locales'])} locales, "
        f"clip_durations.tsv, clips as {info['clip_links']} hard links to "
        f"{info['clip_inodes']} one-byte file(s), verify_clips='none'; "
        f"tree built in "
        f"{info['build_seconds']:.1f} s"
        f"{' (earlier run, reused)' if reused else ''}: {tree}"
    )
    run = run_prepare_child(tree, info["locales"])
    delta_mb = run["delta"] / 1e6
    rows = [
        ["rows read / kept", f"{run['rows']} / {run['kept']}"],
        ["wall s / CPU s", f"{run['wall']:.1f} / {run['cpu']:.1f}"],
        ["import baseline RSS MB", f"{run['baseline_rss'] / 1e6:.0f}"],
        ["peak RSS (VmHWM) MB", f"{run['peak_rss'] / 1e6:.0f}"],
        [
            f"peak above baseline MB (target <= {TARGET_PREPARE_MB:.0f})",
            f"**{delta_mb:.0f}**",
        ],
        [
            "ru_maxrss MB (before -> after)",
            f"{run['baseline_maxrss'] / 1e6:.0f} -> {run['maxrss'] / 1e6:.0f}",
        ],
        ["bytes above baseline per row", f"{run['delta'] / run['rows']:.0f}"],
        ["us per row (wall)", f"{1e6 * run['wall'] / run['rows']:.1f}"],
    ]
    print(markdown_table(["figure", "value"], rows))
    results["prepare"] = dict(run, tree_build_seconds=info["build_seconds"])
    trace = options.trace_prepare == "always" or (
        options.trace_prepare == "auto" and delta_mb > TARGET_PREPARE_MB
    )
    if trace:
        counts = _split_rows(options.prepare_rows, options.prepare_languages)
        locales, rows_traced = [], 0
        for lang, count in zip(info["locales"], counts):
            if rows_traced >= options.trace_rows and locales:
                break
            locales.append(lang)
            rows_traced += count
        traced = run_prepare_child(tree, locales, trace=True)
        per_row = traced["traced_at_write"] / traced["rows"]
        print(
            f"\ntracemalloc, {len(locales)} locales ({traced['rows']} "
            f"rows), when the first manifest is written (all rows held): "
            f"{traced['traced_at_write'] / 1e6:.0f} MB traced, "
            f"{per_row:.0f} B per row; traced peak "
            f"{traced['traced_peak'] / 1e6:.0f} MB:"
        )
        print(
            markdown_table(
                ["where", "code", "MB", "B per row", "blocks per row"],
                [
                    [
                        t["where"],
                        f"`{t['code'][:60]}`",
                        f"{t['bytes'] / 1e6:.1f}",
                        f"{t['bytes'] / traced['rows']:.0f}",
                        f"{t['blocks'] / traced['rows']:.2f}",
                    ]
                    for t in traced["top"]
                ],
            )
        )
        entries = traced["durations_entries"]
        print(
            f"clip_durations.tsv as read (one table per locale, the largest "
            f"locale's alive at a time): {traced['durations_bytes'] / entries:.0f}"
            f" B per entry ({entries} entries traced), i.e. "
            f"{traced['durations_bytes'] / entries:.0f} MB per million clips "
            "the locale's clip_durations.tsv lists."
        )
        results["prepare_trace"] = traced
    return run


def estimate_section(options, builds, results):
    """Item 4: a full Common Voice build, from the measured rates."""
    seconds = options.cv_hours * 3600
    rows = []
    out = {}
    for store, build in builds.items():
        core_hours = options.cv_hours * build["cpu_s_per_audio_h"] / 3600
        naive_tb = options.cv_hours * build["bytes_per_audio_h"] / 1e12
        model_tb = (
            seconds * build["per_second_bytes"]
            + options.cv_clips * build["per_clip_bytes"]
        ) / 1e12
        out[store] = {
            "core_hours": core_hours,
            "tb": model_tb,
            "tb_at_measured_clip_length": naive_tb,
        }
        rows.append(
            [store, f"{core_hours:.0f}", f"{model_tb:.2f}", f"{naive_tb:.2f}"]
        )
    mp3_tb = options.cv_hours * results["mp3_bytes_per_audio_h"] / 1e12
    rows.append(["MP3 source (synthetic bitrate)", "-", "-", f"{mp3_tb:.2f}"])
    reading = results["worker_ms_per_audio_second"]
    print(
        f"\n4. Full Common Voice shard build: {options.cv_hours:.0f} audio "
        f"hours, {options.cv_clips} clips (mean "
        f"{seconds / options.cv_clips:.1f} s); core-hours at the measured "
        "rate (per-clip costs of the short synthetic clips included, so an "
        "upper bound), TB with the per-clip and per-second bytes:"
    )
    print(
        markdown_table(
            [
                "store",
                "core-hours",
                "TB (per-clip + per-second)",
                "TB (measured MB per audio-h)",
            ],
            rows,
        )
    )
    labels = {
        "mp3": "(a) MP3 files",
        "features_shards": "(b) features shards, ShardReader",
        "audio_shards": "(c) audio shards, ShardReader + fbank",
        "stream_features": "(d) ShardStream, features shards",
        "stream_audio": "(e) ShardStream, audio shards",
    }
    epoch_rows = [
        [labels[name], f"{options.cv_hours * value / 1000:.0f}"]
        for name, value in reading.items()
    ]
    print("\nWorker core-hours per training epoch over the same audio:")
    print(markdown_table(["path", "core-hours per epoch"], epoch_rows))
    results["full_cv_estimate"] = out
    return out


def main(argv=None):
    """Runs the benchmark; returns the stream's ms per audio-second."""
    options = parse_arguments(argv)
    if options.child_prepare:
        result = measure_prepare(json.loads(options.child_prepare))
        print(RESULT_PREFIX + json.dumps(result))
        return None
    quiet_libraries()
    from speechbrain_sense.data.sampling import load_language_ratios

    torch.set_num_threads(1)  # as in a DataLoader worker
    print(f"device: {device_description('cpu')}, 1 torch thread")
    print(f"load average at start: {load_average()}")
    languages = options.languages.split(",")
    corpus = synthetic_corpus(
        options.work_dir, languages, options.per_language, options.seed
    )
    source = student_source(options.work_dir, "tiny")
    ratios = load_language_ratios(corpus["language_ratios_file"])
    results = {"load_average_start": load_average()}
    shards_dir = Path(
        tempfile.mkdtemp(prefix="shard-bench-", dir=options.work_dir)
    )
    try:
        paths = _clip_paths(corpus)
        for path in paths:  # page cache of the sources
            Path(path).read_bytes()
        # Item 2 builds the shards that item 1 reads.
        builds = build_costs(options, corpus, source, shards_dir)
        worker_section(options, corpus, source, shards_dir, ratios, results)
        build_section(options, builds, paths, results)
    finally:
        if options.keep_shards:
            print(f"shards kept in {shards_dir}")
        else:
            shutil.rmtree(shards_dir, ignore_errors=True)
    if options.prepare_rows > 0:
        prepare_section(options, results)
    estimate_section(options, results["build"], results)
    results["load_average_end"] = load_average()
    print(f"\nload average at end: {load_average()}")
    if options.json:
        Path(options.json).write_text(json.dumps(results, indent=1))
    reading = results["worker_ms_per_audio_second"]
    lines = {
        "mp3_path_ms_per_audio_second": f"{reading['mp3']:.3f}",
        "features_shards_ms_per_audio_second": (
            f"{reading['features_shards']:.3f}"
        ),
        "audio_shards_ms_per_audio_second": f"{reading['audio_shards']:.3f}",
    }
    for store, build in results["build"].items():
        lines[f"build_{store}_audio_h_per_core_h"] = (
            f"{build['audio_h_per_core_h']:.0f}"
        )
        lines[f"disk_{store}_mb_per_audio_h"] = (
            f"{build['bytes_per_audio_h'] / 1e6:.1f}"
        )
    for store, estimate in results["full_cv_estimate"].items():
        lines[f"full_cv_{store}_core_hours"] = f"{estimate['core_hours']:.0f}"
        lines[f"full_cv_{store}_tb"] = f"{estimate['tb']:.2f}"
    if "prepare" in results:
        lines["prepare_wall_s"] = f"{results['prepare']['wall']:.1f}"
        lines["prepare_peak_mb_above_import"] = (
            f"{results['prepare']['delta'] / 1e6:.0f}"
        )
    lines["stream_ms_per_audio_second"] = f"{reading['stream_features']:.3f}"
    for name, value in lines.items():
        print(f"{name}: {value}")
    return reading["stream_features"]


if __name__ == "__main__":
    main()
