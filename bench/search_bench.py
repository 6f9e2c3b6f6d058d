#!/usr/bin/env python3
"""Spoken-archive search: indexing throughput, query latency, storage.

Four measurements of :mod:`speechbrain_sense.search`:

* **Indexing throughput** (audio-hours per CPU-hour), end to end through
  :func:`~speechbrain_sense.search.indexer.index_folder` (walk, hash,
  decode, Silero VAD, passages, embedding, SQLite commits, snapshot) on a
  generated folder of recordings: eSpeak NG sentences in four languages
  with pauses between them, FLAC at 22.05 kHz (so decoding resamples, as
  for most real archives). The encoder is the exported tiny student
  (``sense_tiny.yaml``'s w2v-BERT, 512-d head, random weights). Wall and
  process CPU time are both reported; each stage is then timed alone
  over the same audio (decode, VAD, embedding, store). The figure for
  the full-size w2v-BERT 2.0 is projected from the full-width encoder RTF
  in docs/benchmarks.md, section 5 (see :func:`projected_throughput`).
* **Query latency** of one query arriving alone, at each ``--sizes``
  passages of ``--dim`` (1024, BGE-M3's width): exact search
  (:func:`~speechbrain_sense.search.query.search_matrix`,
  ``backend="exact"``, over the float16 matrix memory-mapped with
  ``np.load(mmap_mode="r")``, as a query runs) against FAISS IVF
  (:func:`~speechbrain_sense.search.query.build_faiss_index`, its default
  ``nlist`` and ``nprobe``, plus an ``nprobe`` sweep), with FAISS's
  recall@10 against the exact answer. A FAISS flat float16 scan
  (``IndexScalarQuantizer``, exact on the same values, not used by the
  package) is timed as a reference for what an exact scan can cost. The
  vectors are a mixture of Gaussian clusters on the unit sphere
  (:func:`mixture`, ``--workload``); uniform random vectors have no
  neighbourhood structure, and make IVF look worse than on real
  embeddings.
* **Storage**: loading every embedding back out of the SQLite BLOBs
  (what a query would pay without the snapshot) against mapping the
  ``.vectors`` snapshot and scanning it once, with the page cache warm
  and cold (evicted with ``posix_fadvise(DONTNEED)``), in a real
  :class:`~speechbrain_sense.search.store.SearchIndex`.
* **Index size per audio-hour**: measured on the indexing run, and
  projected for ``--dim`` from the measured passage rate and the
  measured SQLite bytes per passage of the storage run.

Command lines::

    python bench/search_bench.py            # ~10 min on 2 CPU cores
    python bench/search_bench.py --quick    # seconds (the smoke test)
    python bench/search_bench.py --sizes 1e4,1e5 --storage-sizes 1e5

The last line printed is ``faiss_min_passages: N``, the size from which
FAISS should answer (:func:`recommended_faiss_min`).

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import json
import math
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from measurement import (
    device_description,
    load_average,
    markdown_table,
)
from workloads import (
    DEFAULT_WORK_DIR,
    TINY_SIZE,
    quiet_libraries,
    recipe_head,
    student_source,
)

LANGUAGES = ("en", "fr", "de", "es")
# Full-width w2v-BERT 2.0 with 4 of its 24 Conformer layers, 5 s
# utterances, batch 4, 2 threads, random weights (docs/benchmarks.md,
# section 5, bench/onnx_rtf.py): the only full-width CPU RTF measured.
FULL_WIDTH_4_LAYER_RTF = {"torch eager": 0.0443, "onnxruntime int8": 0.0215}
FULL_LAYERS, MEASURED_LAYERS, RTF_THREADS = 24, 4, 2


# --------------------------------------------------------------------------
# Clocks and small statistics
# --------------------------------------------------------------------------


class Clock:
    """Wall and process CPU seconds of a ``with`` block.

    CPU time is ``resource.getrusage(RUSAGE_SELF)`` (user + system), so
    it counts every thread of the process: torch's, and the indexer's
    decode workers.

    Example
    -------
    >>> with Clock() as clock:
    ...     _ = sum(range(10000))
    >>> clock.wall >= 0 and clock.cpu >= 0
    True
    """

    @staticmethod
    def _cpu():
        """CPU seconds of this process so far (user + system)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self):
        """Starts both clocks."""
        self._wall, self._cpu0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc_info):
        """Stops both clocks; exceptions propagate.

        Arguments
        ---------
        *exc_info
            Positional arguments passed on.
        """
        self.wall = time.perf_counter() - self._wall
        self.cpu = self._cpu() - self._cpu0


def latency_ms(seconds):
    """Median and 95th percentile of single-query times, in ms.

    Arguments
    ---------
    seconds : list of float
        One time per query.

    Returns
    -------
    tuple
        ``(median_ms, p95_ms)``.

    Example
    -------
    >>> latency_ms([0.001 * i for i in range(1, 101)])
    (50.5, 95.05)
    """
    values = np.asarray(seconds) * 1000
    return float(np.median(values)), float(np.percentile(values, 95))


def recall_at_k(found, truth):
    """Mean share of each query's true top-k that a search returned.

    Arguments
    ---------
    found : numpy.ndarray
        ``[Q, k]`` rows returned (``-1`` for none).
    truth : numpy.ndarray
        ``[Q, k]`` exact top-k rows.

    Returns
    -------
    float

    Example
    -------
    >>> recall_at_k(np.array([[1, 2], [3, -1]]), np.array([[2, 1], [3, 4]]))
    0.75
    """
    hits = [len(set(f) & set(t)) for f, t in zip(found, truth)]
    return sum(hits) / truth.size


# --------------------------------------------------------------------------
# Recordings and the tiny model
# --------------------------------------------------------------------------


def make_recordings(folder, files, min_seconds, max_seconds, seed=0):
    """A folder of speech recordings with pauses, written once.

    Each file strings together eSpeak NG sentences (the phrase grammar of
    ``en``, ``fr``, ``de``, ``es``, one language per file) with pauses of
    0.2-1.2 s inside a topic and 2-5 s between topics, over a faint noise
    floor (Silero VAD never sees digital silence in real recordings). A
    pool of synthesised sentences is reused across files: throughput does
    not depend on what is said.

    Arguments
    ---------
    folder : str or Path
        Where the ``.flac`` files go (reused when complete).
    files : int
        Number of recordings.
    min_seconds, max_seconds : float
        Range of recording lengths (uniform).
    seed : int
        Seed of lengths, sentences and pauses.

    Returns
    -------
    Path
        The folder.
    """
    import soundfile

    from speechbrain_sense.synthetic.espeak import ESpeakSynthesizer
    from speechbrain_sense.synthetic.phrase_grammar import grammar_sentences

    folder = Path(folder)
    if (folder / "done").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tts = ESpeakSynthesizer()
    rng = random.Random(seed)
    pool = {}
    for language in LANGUAGES:
        texts = grammar_sentences(language, seed=seed)[:24]
        pool[language] = [tts.synthesize(text, language) for text in texts]
    rate = pool["en"][0].sample_rate
    noise = np.random.default_rng(seed)
    for i in range(files):
        language = LANGUAGES[i % len(LANGUAGES)]
        target = rng.uniform(min_seconds, max_seconds) * rate
        pieces, length = [], 0
        while length < target:
            pause = rng.uniform(2.0, 5.0) if rng.random() < 0.2 else None
            pause = pause or rng.uniform(0.2, 1.2)
            speech = rng.choice(pool[language]).waveform
            pieces += [np.zeros(int(pause * rate), np.float32), speech]
            length += int(pause * rate) + len(speech)
        wav = np.concatenate(pieces)[: int(target)]
        wav += 3e-4 * noise.standard_normal(len(wav)).astype(np.float32)
        soundfile.write(folder / f"rec{i:03d}_{language}.flac", wav, rate)
    (folder / "done").write_text("")
    return folder


def tiny_search_model(work_dir):
    """The exported tiny student as a :class:`SearchModel`.

    Arguments
    ---------
    work_dir : str or Path
        Benchmark work folder (the tiny w2v-BERT is cached there).

    Returns
    -------
    speechbrain_sense.search.query.SearchModel
    """
    from speechbrain_sense.encoders.export import export_student
    from speechbrain_sense.encoders.student import SenseStudent
    from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
    from speechbrain_sense.search.query import SearchModel

    source = student_source(work_dir, "tiny")
    torch.manual_seed(0)
    student = SenseStudent(
        SenseW2VBert(source, save_path=source),
        recipe_head(TINY_SIZE["hidden_size"], 512),
    )
    folder = Path(tempfile.mkdtemp(prefix="sense-search-bench-"))
    model_dir = export_student(student.state_dict(), source, folder / "m")
    return SearchModel(model_dir, savedir=folder / "fetched")


# --------------------------------------------------------------------------
# 1. Indexing throughput
# --------------------------------------------------------------------------


def measure_indexing(folder, model, db_path):
    """End-to-end indexing, then each stage alone over the same audio.

    Arguments
    ---------
    folder : Path
        The recordings.
    model : SearchModel
        The encoder.
    db_path : Path
        Index database to create (must not exist).

    Returns
    -------
    dict
        ``wall``, ``cpu``, ``audio_seconds``, ``passages``,
        ``passage_seconds``, ``bytes`` (db + snapshot files) and
        ``stages`` (``{name: (wall, cpu)}``).
    """
    from speechbrain_sense.audio import load_audio
    from speechbrain_sense.data.vad import speech_segments
    from speechbrain_sense.encoders.inference import (
        duration_batches,
        pad_waveforms,
    )
    from speechbrain_sense.search.indexer import PassageSettings, index_folder
    from speechbrain_sense.search.passages import passage_spans
    from speechbrain_sense.search.store import INDEXED, SearchIndex

    settings = PassageSettings()
    rate = model.sample_rate
    # Silero's model loads on a thread's first call: not indexing work.
    speech_segments(torch.zeros(rate), rate)
    with Clock() as total:
        report = index_folder(folder, model, db_path, settings, progress=False)
    out = {
        "wall": total.wall,
        "cpu": total.cpu,
        "audio_seconds": report.audio_seconds,
        "passages": report.passages,
        "files": report.embedded,
        "bytes": sum(
            p.stat().st_size for p in db_path.parent.glob(db_path.name + "*")
        ),
    }

    paths = sorted(folder.glob("*.flac"))
    stages = {}
    with Clock() as clock:
        wavs = [load_audio(path, rate) for path in paths]
    stages["decode + resample"] = clock
    with Clock() as clock:
        segments = [speech_segments(wav, rate) for wav in wavs]
    stages["Silero VAD"] = clock
    spans = [
        passage_spans(
            s, settings.max_passage, settings.max_gap, settings.overlap
        )
        for s in segments
    ]
    pieces = [
        wav[int(start * rate) : int(end * rate)]
        for wav, file_spans in zip(wavs, spans)
        for start, end in file_spans
    ]
    out["passage_seconds"] = sum(len(p) for p in pieces) / rate
    embedded = np.empty((len(pieces), model.identity["dim"]), np.float32)
    with Clock() as clock:
        durations = [len(p) / rate for p in pieces]
        for batch in duration_batches(durations, 120.0):
            padded, lens = pad_waveforms([pieces[i] for i in batch])
            embedded[batch] = model.embed_waveforms(padded, lens).numpy()
    stages["embed (tiny encoder)"] = clock
    store = SearchIndex(db_path.with_name("stages.db"), create=True)
    store.bind(model.identity, folder)
    with Clock() as clock:
        row = 0
        for i, file_spans in enumerate(spans):
            emb = embedded[row : row + len(file_spans)]
            row += len(file_spans)
            store.replace_file(
                f"{i}".encode(), 1, 1, "0", 1.0, INDEXED, None, file_spans, emb
            )
        store.publish()
    store.close()
    stages["SQLite commits + snapshot"] = clock
    out["stages"] = {name: (c.wall, c.cpu) for name, c in stages.items()}
    return out


def projected_throughput(indexing, rtf_4_layers):
    """Audio-hours per CPU-hour of indexing with full w2v-BERT 2.0.

    ``cpu_s_per_audio_s = rest + f * RTF_24 * threads``, where ``rest`` is
    the CPU seconds per audio second of every stage but the encoder
    (decode, VAD, store: measured, they do not depend on the encoder),
    ``f`` the embedded passage seconds per audio second (pauses dropped,
    window overlaps counted twice), ``RTF_24 = RTF_4 * 24 / 4`` (an upper
    bound: the fbank and pooling, counted in ``RTF_4``, do not grow with
    depth) and ``threads`` the threads the RTF was measured with (its
    compute seconds are wall seconds on 2 cores).

    Arguments
    ---------
    indexing : dict
        :func:`measure_indexing`'s result.
    rtf_4_layers : float
        RTF of the full-width encoder with 4 of its 24 layers.

    Returns
    -------
    dict
        ``rtf_24``, ``cpu_per_audio_second``, ``audio_h_per_cpu_h``.

    Example
    -------
    >>> facts = {"audio_seconds": 100.0, "passage_seconds": 80.0,
    ...          "stages": {"embed (tiny encoder)": (1, 1), "VAD": (1, 2)}}
    >>> round(projected_throughput(facts, 0.05)["audio_h_per_cpu_h"], 3)
    2.0
    """
    audio = indexing["audio_seconds"]
    rest = sum(
        cpu
        for name, (_, cpu) in indexing["stages"].items()
        if not name.startswith("embed")
    )
    rtf_24 = rtf_4_layers * FULL_LAYERS / MEASURED_LAYERS
    fraction = indexing["passage_seconds"] / audio
    cpu = rest / audio + fraction * rtf_24 * RTF_THREADS
    return {
        "rtf_24": rtf_24,
        "cpu_per_audio_second": cpu,
        "audio_h_per_cpu_h": 1 / cpu,
    }


# --------------------------------------------------------------------------
# 2. Query latency
# --------------------------------------------------------------------------


#: Synthetic embedding workloads (:func:`mixture`): Gaussian clusters
#: with random centres in all D dimensions, which never overlap; or
#: clusters in a random 64-d subspace as wide as their centres' spacing,
#: plus isotropic noise, which overlap as topics do.
WORKLOADS = {
    "separated": {"subspace": None, "isotropic": 0.0},
    "overlapping": {"subspace": 64, "isotropic": 0.5},
}


def mixture(rng, clusters, dim, workload="overlapping"):
    """A mixture of Gaussian clusters on the unit sphere.

    Each cluster has a random unit centre and isotropic noise of standard
    deviation ``scale / sqrt(d)`` per dimension of the space it lives in
    (``scale`` uniform in 0.7-1.3: some topics are tighter than others).
    ``"separated"``: that space is all ``D`` dimensions, where random
    centres are nearly orthogonal, so every row's neighbours are in its
    own cluster (a row lies at cosine ~0.7 to its centre, ~0.5 to a
    sibling) and IVF cells follow clusters: the easy case.
    ``"overlapping"``: the clusters live in a random ``d = 64``
    dimensional subspace (embeddings of real models have a low effective
    rank) with noise as large as the centres, so neighbourhoods straddle
    clusters; the rows are mapped to ``D`` dimensions, normalised, and
    get isotropic noise of norm 0.5 (top-1 cosine ~0.5).

    Arguments
    ---------
    rng : numpy.random.Generator
        Source of the centres.
    clusters : int
        Number of clusters ``C``.
    dim : int
        Dimension ``D``.
    workload : str
        A key of :data:`WORKLOADS`.

    Returns
    -------
    callable
        ``draw(rng, count)``: ``[count, D]`` float32 unit rows.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = mixture(rng, 4, 256)(rng, 8)
    >>> x.shape, bool(np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5))
    ((8, 256), True)
    """
    facts = WORKLOADS[workload]
    space = facts["subspace"] or dim
    centres = rng.standard_normal((clusters, space), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    scales = rng.uniform(0.7, 1.3, clusters).astype(np.float32)
    projection = None
    if facts["subspace"]:
        projection = rng.standard_normal((space, dim), dtype=np.float32)
        projection /= math.sqrt(space)

    def unit(rows):
        """Rows scaled to unit length."""
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def draw(rng, count):
        """``count`` rows drawn from the mixture."""
        which = rng.integers(0, clusters, count)
        noise = rng.standard_normal((count, space), dtype=np.float32)
        sigma = scales[which] / math.sqrt(space)
        rows = centres[which] + sigma[:, None] * noise
        if projection is None:
            return unit(rows)
        rows = unit(rows @ projection)  # [count, d] -> [count, D]
        noise = rng.standard_normal((count, dim), dtype=np.float32)
        return unit(rows + facts["isotropic"] / math.sqrt(dim) * noise)

    return draw


def write_matrix(
    path, count, dim, clusters, queries, workload, seed=0, chunk=65536
):
    """Writes ``[count, dim]`` float16 clustered rows as a ``.npy``.

    Written in chunks through ``np.lib.format.open_memmap`` (10^6 x 1024
    is 2 GB in float16, 4 GB while drawn in float32).

    Arguments
    ---------
    path : Path
        The ``.npy`` file.
    count, dim : int
        Matrix shape.
    clusters : int
        Mixture components.
    queries : int
        Fresh draws from the same mixture to return as queries.
    workload : str
        A key of :data:`WORKLOADS`.
    seed : int
        Seed of centres and rows.
    chunk : int
        Rows drawn at a time.

    Returns
    -------
    numpy.ndarray
        ``[queries, dim]`` float32 unit queries.
    """
    rng = np.random.default_rng(seed)
    draw = mixture(rng, clusters, dim, workload)
    matrix = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float16, shape=(count, dim)
    )
    for start in range(0, count, chunk):
        rows = min(chunk, count - start)
        matrix[start : start + rows] = draw(rng, rows)
    matrix.flush()
    del matrix
    return draw(rng, queries)


def timed_queries(search, queries, budget_s, at_least):
    """Times ``search`` on queries one at a time, within a time budget.

    Arguments
    ---------
    search : callable
        ``search(query [1, D]) -> rows [1, k]``.
    queries : torch.Tensor
        ``[Q, D]`` queries.
    budget_s : float
        Stop after this many seconds (once ``at_least`` are timed).
    at_least : int
        Queries timed whatever the budget.

    Returns
    -------
    tuple
        ``(seconds per query, rows [n, k])`` for the ``n`` queries timed.
    """
    search(queries[:1])  # first call: lazy set-up, page faults
    times, rows = [], []
    began = time.perf_counter()
    for i in range(len(queries)):
        start = time.perf_counter()
        rows.append(search(queries[i : i + 1])[0])
        times.append(time.perf_counter() - start)
        if i + 1 >= at_least and time.perf_counter() - began > budget_s:
            break
    return times, np.stack(rows)


def measure_queries(size, options, folder):
    """Exact, FAISS IVF and flat-fp16 single-query latency at one size.

    Arguments
    ---------
    size : int
        Passages ``N``.
    options : argparse.Namespace
        Benchmark options.
    folder : Path
        Where the matrix is written (and deleted after).

    Returns
    -------
    list of dict
        One row per search: ``search``, ``n_timed``, ``median_ms``,
        ``p95_ms``, ``recall``, ``build_s``, ``nprobe``, ``nlist``.
    """
    import faiss

    from speechbrain_sense.search.query import build_faiss_index, search_matrix

    path = folder / f"matrix-{size}.npy"
    # A fixed cluster count would leave 5 rows per cluster at 10^4, whose
    # top-10 is then mostly noise; real archives grow in topics too.
    clusters = max(10, min(options.clusters, size // options.cluster_size))
    with Clock() as made:
        queries = write_matrix(
            path, size, options.dim, clusters, 100, options.workload
        )
    queries = torch.from_numpy(queries[: options.queries])
    matrix = np.load(path, mmap_mode="r")  # as SearchIndex.matrix() maps it
    k = 10

    def exact(query):
        """One exact search, as a query runs it."""
        return search_matrix(query, matrix, k, backend="exact")[1]

    truth = exact(queries)  # all queries in one pass: the reference answer
    times, rows = timed_queries(
        exact, queries, options.exact_budget_s, options.min_timed
    )
    med, p95 = latency_ms(times)
    out = [
        {
            "size": size,
            "search": "exact (search_matrix, memmap fp16)",
            "n_timed": len(times),
            "median_ms": med,
            "p95_ms": p95,
            "recall": recall_at_k(rows, truth[: len(rows)]),
            "generate_s": made.wall,
            "clusters": clusters,
        }
    ]

    with Clock() as built:
        ivf = build_faiss_index(matrix)
    default = ivf.nprobe
    sweep = [int(n) for n in options.nprobe_sweep.split(",") if n]
    for nprobe in [default] + [n for n in sweep if n != default]:
        if nprobe > ivf.nlist:
            continue
        ivf.nprobe = nprobe

        def approximate(query):
            """One FAISS search at this ``nprobe``."""
            return search_matrix(query, matrix, k, "faiss", ivf)[1]

        times, rows = timed_queries(approximate, queries, 60.0, len(queries))
        med, p95 = latency_ms(times)
        out.append(
            {
                "size": size,
                "search": "FAISS IVF (build_faiss_index)"
                + ("" if nprobe == default else ", nprobe swept"),
                "n_timed": len(times),
                "median_ms": med,
                "p95_ms": p95,
                "recall": recall_at_k(rows, truth),
                "build_s": built.wall,
                "nprobe": nprobe,
                "nlist": ivf.nlist,
                "default": nprobe == default,
            }
        )
    ivf = None  # frees its 4 GB at 10^6 before the next index

    if options.flat_reference:
        with Clock() as built:
            flat = faiss.IndexScalarQuantizer(
                options.dim,
                faiss.ScalarQuantizer.QT_fp16,
                faiss.METRIC_INNER_PRODUCT,
            )
            for start in range(0, size, 65536):
                flat.add(np.asarray(matrix[start : start + 65536], np.float32))

        def scan(query):
            """One FAISS flat float16 scan (the reference)."""
            return flat.search(query.numpy(), k)[1]

        times, rows = timed_queries(scan, queries, 60.0, len(queries))
        med, p95 = latency_ms(times)
        out.append(
            {
                "size": size,
                "search": "reference: FAISS flat fp16 scan (in RAM)",
                "n_timed": len(times),
                "median_ms": med,
                "p95_ms": p95,
                "recall": recall_at_k(rows, truth),
                "build_s": built.wall,
            }
        )
        flat = None
    matrix = None  # unmaps the file before it is deleted
    path.unlink()
    return out


def crossover(points, limit_ms):
    """Smallest size at which latency reaches ``limit_ms``, interpolated.

    Exact search costs ``a + b N``: between two measured sizes the
    crossing is interpolated linearly; below the smallest, latency is
    taken as proportional to ``N``.

    Arguments
    ---------
    points : list of (int, float)
        ``(N, median_ms)``, increasing ``N``.
    limit_ms : float
        The latency bound.

    Returns
    -------
    float or None
        ``N`` at the bound; None when no measured size reaches it.

    Example
    -------
    >>> crossover([(10_000, 50.0), (100_000, 500.0)], 100.0)
    20000.0
    >>> crossover([(10_000, 200.0)], 100.0), crossover([(10, 1.0)], 100.0)
    (5000.0, None)
    """
    previous = (0, 0.0)
    for size, ms in points:
        if ms >= limit_ms:
            (n0, t0), (n1, t1) = previous, (size, ms)
            return n0 + (limit_ms - t0) * (n1 - n0) / (t1 - t0)
        previous = (size, ms)
    return None


def round_size(size):
    """A size rounded down to one significant digit.

    Example
    -------
    >>> round_size(23_456), round_size(180_000)
    (20000, 100000)
    """
    scale = 10 ** int(math.floor(math.log10(size)))
    return int(size // scale * scale)


def recommended_faiss_min(rows, limit_ms, min_recall):
    """The size from which ``backend="auto"`` should use FAISS.

    The smallest ``N`` at which exact single-query latency reaches
    ``limit_ms`` (:func:`crossover`), provided the default IVF at the
    next measured size is at least ``min_recall`` and faster than exact;
    otherwise the smallest measured size where it is both.

    Arguments
    ---------
    rows : list of dict
        :func:`measure_queries`' rows, every size.
    limit_ms : float
        Latency bound for exact search.
    min_recall : float
        Recall@10 FAISS must reach.

    Returns
    -------
    tuple
        ``(N or None, reason)``.
    """
    exact = [
        (r["size"], r["median_ms"]) for r in rows if r["search"][:5] == "exact"
    ]
    ivf = {r["size"]: r for r in rows if r.get("default")}
    fast = {
        size: ivf[size]["recall"] >= min_recall and ivf[size]["median_ms"] < ms
        for size, ms in exact
        if size in ivf
    }
    at = crossover(exact, limit_ms)
    if at is not None:
        above = [size for size in sorted(fast) if size >= at]
        if above and fast[above[0]]:
            return round_size(at), (
                f"exact reaches {limit_ms:g} ms at about {at:,.0f} passages; "
                f"FAISS at {above[0]:,} is faster at recall@10 "
                f"{ivf[above[0]]['recall']:.3f}"
            )
    if at is None:
        # Exact answers are worth keeping while they are fast enough,
        # however much faster FAISS is.
        return None, (
            f"exact stays under {limit_ms:g} ms up to {exact[-1][0]:,} "
            "passages: keep it there"
        )
    good = [size for size in sorted(fast) if fast[size] and size >= at]
    if good:
        return good[0], (
            f"exact reaches {limit_ms:g} ms at about {at:,.0f} passages; "
            f"{good[0]:,} is the smallest larger size where FAISS is "
            f"faster at recall@10 >= {min_recall}"
        )
    return None, "no measured size where FAISS is both faster and accurate"


# --------------------------------------------------------------------------
# 3. Storage: BLOBs against the snapshot
# --------------------------------------------------------------------------


def evict(*paths):
    """Drops files from the page cache (``posix_fadvise(DONTNEED)``).

    Clean pages are dropped at once on Linux, without privileges; it is
    advice, so a cold figure can only be too warm, never too cold.
    """
    for path in paths:
        if not Path(path).is_file():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def measure_storage(size, options, folder):
    """BLOB load against snapshot map and scan, ``size`` passages.

    Arguments
    ---------
    size : int
        Passages.
    options : argparse.Namespace
        Benchmark options (``dim``).
    folder : Path
        Where the index is written (and deleted after).

    Returns
    -------
    dict
        Seconds per step (``*_warm``, ``*_cold``), ``fill_s``,
        ``publish_s``, ``db_bytes``, ``vectors_bytes``.
    """
    import sqlite3

    from speechbrain_sense.search.query import search_matrix
    from speechbrain_sense.search.store import INDEXED, SearchIndex

    db_path = folder / f"storage-{size}.db"
    index = SearchIndex(db_path, create=True)
    index.bind({"fingerprint": "bench", "dim": options.dim}, folder)
    rng = np.random.default_rng(1)
    draw = mixture(rng, 256, options.dim)  # content does not matter here
    per_file = 200  # passages of a 40-minute recording
    with Clock() as fill:
        for start in range(0, size, per_file):
            rows = min(per_file, size - start)
            emb = draw(rng, rows)
            spans = [(15.0 * j, 15.0 * j + 14.0) for j in range(rows)]
            index.replace_file(
                f"f{start}.wav".encode(), 1, 1, "0", 1.0, INDEXED, None,
                spans, emb,
            )  # fmt: skip
    with Clock() as publish:
        index.publish()
    index.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    vectors = index.vectors_path
    index.close()
    query = torch.from_numpy(draw(rng, 1))

    def load_blobs():
        """Every embedding read back out of SQLite."""
        db = sqlite3.connect(str(db_path))
        (count,) = db.execute("SELECT COUNT(*) FROM passages").fetchone()
        matrix = np.empty((count, options.dim), np.float16)
        rows = db.execute("SELECT embedding FROM passages ORDER BY id")
        for i, (blob,) in enumerate(rows):
            matrix[i] = np.frombuffer(blob, dtype=np.float16)
        db.close()
        return matrix

    def map_and_scan():
        """The snapshot mapped and scanned by one exact query."""
        matrix = np.load(vectors, mmap_mode="r")
        search_matrix(query, matrix, 10)

    def map_only():
        """The snapshot mapped, nothing read."""
        np.load(vectors, mmap_mode="r")

    out = {
        "size": size,
        "fill_s": fill.wall,
        "publish_s": publish.wall,
        "db_bytes": db_path.stat().st_size,
        "vectors_bytes": vectors.stat().st_size,
    }
    steps = {
        "blobs": load_blobs,
        "map": map_only,
        "map_scan": map_and_scan,
    }
    for name, step in steps.items():
        for cache in ("cold", "warm"):
            if cache == "cold":
                evict(db_path, vectors)
            else:
                step()  # fills the cache
            with Clock() as clock:
                step()
            out[f"{name}_{cache}"] = clock.wall
    for path in folder.glob(db_path.name + "*"):
        path.unlink()
    return out


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_arguments(argv=None):
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small everything (the smoke test): 2 short files, sizes "
        "4096,16384, storage 4096, 10 queries",
    )
    parser.add_argument("--files", type=int, default=30, help="recordings")
    parser.add_argument(
        "--min-seconds", type=float, default=30.0, help="shortest recording"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="longest recording"
    )
    parser.add_argument(
        "--sizes", default="1e4,1e5,1e6", help="query latency: passages"
    )
    parser.add_argument(
        "--storage-sizes", default="1e5,1e6", help="storage: passages"
    )
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--workload",
        choices=tuple(WORKLOADS),
        default="overlapping",
        help="synthetic embeddings for the latency and recall runs",
    )
    parser.add_argument(
        "--clusters",
        type=int,
        default=2000,
        help="mixture components (at most N / --cluster-size)",
    )
    parser.add_argument(
        "--cluster-size",
        type=int,
        default=50,
        help="fewest rows per mixture component on average",
    )
    parser.add_argument(
        "--exact-budget-s",
        type=float,
        default=60.0,
        help="seconds of single exact queries timed per size (after "
        "--min-timed)",
    )
    parser.add_argument("--min-timed", type=int, default=10)
    parser.add_argument(
        "--nprobe-sweep",
        default="8,32,128",
        help="FAISS nprobe values timed beside build_faiss_index's default",
    )
    parser.add_argument(
        "--no-flat-reference",
        dest="flat_reference",
        action="store_false",
        help="skip the FAISS flat fp16 reference scan",
    )
    parser.add_argument("--limit-ms", type=float, default=100.0)
    parser.add_argument("--min-recall", type=float, default=0.95)
    parser.add_argument("--skip-indexing", action="store_true")
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--skip-storage", action="store_true")
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    parser.add_argument(
        "--tmp-dir",
        default=None,
        help="where matrices and indexes are written (default: a new "
        "folder under the system's temporary folder)",
    )
    parser.add_argument("--json", default=None, help="also write results")
    options = parser.parse_args(argv)
    if options.quick:
        options.files, options.min_seconds, options.max_seconds = 2, 8.0, 15.0
        options.sizes, options.storage_sizes = "4096,16384", "4096"
        options.queries, options.min_timed = 10, 5
        options.exact_budget_s, options.nprobe_sweep = 1.0, "8"
    return options


def size_label(size):
    """``10000`` as ``"1e4"``, other sizes with thousands separators.

    Example
    -------
    >>> size_label(100_000), size_label(4096)
    ('1e5', '4,096')
    """
    power = round(math.log10(size))
    return f"1e{power}" if 10**power == size else f"{size:,}"


def sizes_of(text):
    """``"1e4,1e5"`` as ``[10000, 100000]``."""
    return [int(float(s)) for s in text.split(",") if s]


def check_disk(folder, options):
    """Refuses to start when the matrices would not fit on the disk."""
    largest = max(
        sizes_of(options.sizes) * (not options.skip_queries)
        + sizes_of(options.storage_sizes) * (not options.skip_storage)
        + [0]
    )
    # The storage run holds the database and its snapshot at once.
    need = 2.2 * largest * options.dim * 2 + 2**30
    free = shutil.disk_usage(folder).free
    if free < need:
        raise SystemExit(
            f"{folder} has {free / 2**30:.1f} GiB free; {largest:,} x "
            f"{options.dim} needs about {need / 2**30:.1f} GiB (use "
            "--tmp-dir or smaller --sizes)"
        )


def print_indexing(indexing, options):
    """The indexing tables, the full-model projection and the sizes."""
    audio_h = indexing["audio_seconds"] / 3600
    cores = os.cpu_count()
    print(
        f"\n1. Indexing {indexing['files']} recordings, {audio_h:.3f} h of "
        f"audio, {indexing['passages']} passages (index_folder, tiny "
        f"encoder, {indexing['dim']}-d):"
    )
    rows = [
        [
            "index_folder, end to end",
            f"{indexing['wall']:.1f}",
            f"{indexing['cpu']:.1f}",
            f"{indexing['cpu'] / indexing['wall']:.2f}",
            f"{audio_h / (indexing['cpu'] / 3600):.0f}",
            f"{audio_h / (indexing['wall'] * cores / 3600):.0f}",
        ]
    ]
    for name, (wall, cpu) in indexing["stages"].items():
        rows.append(
            [
                f"{name} (alone)",
                f"{wall:.1f}",
                f"{cpu:.1f}",
                f"{cpu / max(wall, 1e-9):.2f}",
                f"{audio_h / (cpu / 3600):.0f}",
                f"{audio_h / (wall * cores / 3600):.0f}",
            ]
        )
    print(
        markdown_table(
            [
                "stage",
                "wall s",
                "CPU s",
                "cores busy",
                "audio-h per CPU-h (process CPU)",
                f"audio-h per CPU-h (wall x {cores} cores)",
            ],
            rows,
        )
    )
    hours = indexing["audio_seconds"] / 3600
    rate = indexing["passages"] / hours
    fraction = indexing["passage_seconds"] / indexing["audio_seconds"]
    print(
        f"passages: {rate:.0f} per audio-hour; embedded passage audio "
        f"{100 * fraction:.0f}% of the recordings (pauses dropped, window "
        f"overlaps counted twice)"
    )
    print(
        "\nProjected for full w2v-BERT 2.0 (24 layers): cpu_s_per_audio_s = "
        "rest + f * RTF_4 * 24/4 * 2 threads, rest = CPU of the stages "
        "other than embedding per audio second:"
    )
    rows = []
    for backend, rtf in FULL_WIDTH_4_LAYER_RTF.items():
        projected = projected_throughput(indexing, rtf)
        indexing[f"projected {backend}"] = projected
        rows.append(
            [
                backend,
                f"{rtf:.4f}",
                f"{projected['rtf_24']:.3f}",
                f"{projected['cpu_per_audio_second']:.3f}",
                f"{projected['audio_h_per_cpu_h']:.2f}",
                f"{projected['audio_h_per_cpu_h'] * cores:.2f}",
            ]
        )
    print(
        markdown_table(
            [
                "encoder",
                "RTF_4 (docs, section 5)",
                "RTF_24 (x6)",
                "CPU s per audio s",
                "audio-h per CPU-h",
                f"audio-h per wall-h on {cores} cores",
            ],
            rows,
        )
    )
    print(
        f"\n4. Index size: {indexing['bytes'] / 2**20:.2f} MiB for "
        f"{hours:.3f} h = {indexing['bytes'] / hours / 2**20:.2f} MiB per "
        f"audio-hour (db + snapshot, {indexing['dim']}-d)"
    )


def print_queries(rows, workload):
    """The latency table."""
    print(
        "\n2. Single-query latency (k=10, one query at a time, matrix in "
        f"the page cache), {workload} clusters:"
    )
    table = []
    for r in rows:
        build = r.get("build_s")
        table.append(
            [
                size_label(r["size"]),
                r["search"],
                r.get("nprobe", "—")
                if "nlist" not in r
                else f"{r['nprobe']} / {r['nlist']}",
                r["n_timed"],
                f"{r['median_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['recall']:.3f}",
                "—" if build is None else f"{build:.1f}",
            ]
        )
    print(
        markdown_table(
            [
                "N",
                "search",
                "nprobe / nlist",
                "queries timed",
                "median ms",
                "p95 ms",
                "recall@10 vs exact",
                "build s",
            ],
            table,
        )
    )
    made = {r["size"]: r for r in rows if "generate_s" in r}
    for size, r in made.items():
        print(
            f"N={size:,}: {r['clusters']} clusters, matrix written in "
            f"{r['generate_s']:.1f} s"
        )


def print_storage(results, rows_per_hour, dim):
    """The storage table and the projected index size."""
    print(
        "\n3. Loading every embedding (wall s; cold = evicted from the "
        "page cache first):"
    )
    table = []
    for r in results:
        n = size_label(r["size"])
        table += [
            [n, "SQLite BLOBs -> array", r["blobs_cold"], r["blobs_warm"]],
            [n, "np.load(mmap_mode='r')", r["map_cold"], r["map_warm"]],
            [
                n,
                "np.load(mmap) + first exact query",
                r["map_scan_cold"],
                r["map_scan_warm"],
            ],
        ]
    print(
        markdown_table(
            ["N", "step", "cold s", "warm s"],
            [[a, b, f"{c:.3f}", f"{d:.3f}"] for a, b, c, d in table],
        )
    )
    for r in results:
        per_row = r["db_bytes"] / r["size"]
        print(
            f"N={r['size']:,}: filling (replace_file, 200 passages per file) "
            f"{r['fill_s']:.1f} s, publish() {r['publish_s']:.1f} s; db "
            f"{r['db_bytes'] / 2**20:.0f} MiB ({per_row:.0f} bytes per "
            f"passage, {per_row - 2 * dim:.0f} above the {2 * dim}-byte "
            f"BLOB), snapshot {r['vectors_bytes'] / 2**20:.0f} MiB"
        )
    if rows_per_hour is None:
        return
    per_row = results[-1]["db_bytes"] / results[-1]["size"]
    snapshot = 2 * dim + 8  # the float16 row and its int64 passage id
    per_hour = rows_per_hour * (per_row + snapshot)
    print(
        f"\n4. Projected index size at D={dim}: {rows_per_hour:.0f} "
        f"passages/h x ({per_row:.0f} db + {snapshot} snapshot bytes) = "
        f"{per_hour / 2**20:.1f} MiB per audio-hour "
        f"({per_hour * 1000 / 2**30:.1f} GiB per 1000 h)"
    )


def main(argv=None):
    """Runs the benchmark; returns the recommended ``FAISS_MIN_PASSAGES``.

    Arguments
    ---------
    argv : list of str
        Command-line arguments.

    Returns
    -------
    int or None
        The size from which FAISS should answer (None: not measured).
    """
    options = parse_arguments(argv)
    quiet_libraries()
    print(
        f"device: {device_description('cpu')}, {torch.get_num_threads()} "
        "torch thread(s)"
    )
    print(f"load average at start: {load_average()}")
    tmp = Path(
        tempfile.mkdtemp(prefix="sense-search-bench-", dir=options.tmp_dir)
    )
    check_disk(tmp, options)
    results = {"options": vars(options)}
    rows_per_hour = None
    try:
        if not options.skip_indexing:
            work = Path(options.work_dir)
            folder = make_recordings(
                work
                / f"search-recordings-{options.files}-{options.min_seconds:g}"
                f"-{options.max_seconds:g}",
                options.files,
                options.min_seconds,
                options.max_seconds,
            )
            model = tiny_search_model(work)
            indexing = measure_indexing(folder, model, tmp / "index.db")
            indexing["dim"] = model.identity["dim"]
            print_indexing(indexing, options)
            rows_per_hour = indexing["passages"] / (
                indexing["audio_seconds"] / 3600
            )
            results["indexing"] = indexing
        if not options.skip_queries:
            rows = []
            for size in sizes_of(options.sizes):
                rows += measure_queries(size, options, tmp)
            print_queries(rows, options.workload)
            results["queries"] = rows
        if not options.skip_storage:
            storage = [
                measure_storage(size, options, tmp)
                for size in sizes_of(options.storage_sizes)
            ]
            print_storage(storage, rows_per_hour, options.dim)
            results["storage"] = storage
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if options.json:
        Path(options.json).write_text(
            json.dumps(results, indent=1, default=str)
        )
    print(f"load average at end: {load_average()}")
    if "queries" not in results:
        return None
    size, reason = recommended_faiss_min(
        results["queries"], options.limit_ms, options.min_recall
    )
    print(f"recommendation: {reason}")
    print(f"faiss_min_passages: {size}")
    return size


if __name__ == "__main__":
    main()
