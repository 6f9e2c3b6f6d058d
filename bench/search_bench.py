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
import shutil
import tempfile
from pathlib import Path

import torch
from measurement import (
    device_description,
    load_average,
    markdown_table,
)
from search_indexing import (
    FULL_WIDTH_4_LAYER_RTF,
    make_recordings,
    measure_indexing,
    projected_throughput,
    tiny_search_model,
)
from search_queries import WORKLOADS, measure_queries, recommended_faiss_min
from search_storage import measure_storage
from workloads import (
    DEFAULT_WORK_DIR,
    quiet_libraries,
)


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
