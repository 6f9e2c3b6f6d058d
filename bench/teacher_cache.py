#!/usr/bin/env python3
"""Teacher cache: embed every transcript once, or again every epoch?

The upstream SENSE recipe runs the frozen teacher (BGE-M3) on the
transcripts of every batch, every epoch. This recipe embeds each unique
transcript once into a :class:`~speechbrain_sense.teachers.cache.
TeacherEmbeddingCache` and looks the vectors up afterwards. For ``N``
transcripts and ``E`` epochs this benchmark measures:

* **cache**: building the store once (batched teacher passes, checksums,
  atomic write), then ``E`` epochs of per-utterance lookups, as the
  recipe's data pipeline does them (random order, ``cache[text]``);
* **recompute**: ``E`` epochs of teacher passes on batches of
  ``--batch-size`` transcripts (2, the upstream recipe's batch), and, as
  the most favourable case for recomputing, batches of 64;
* the disk taken by the store (float32 and float16).

Recomputation is timed for ``--measured-epochs`` epochs and scaled to
``E`` (every epoch does identical work); the cache's lookups are timed for
all ``E`` epochs.

Command lines::

    python bench/teacher_cache.py                      # tiny XLM-R and USE
    python bench/teacher_cache.py --teachers xlmr --config full --device cuda

The last line printed is ``cache_speedup: X`` (BGE-M3-architecture
teacher, upstream batch size: recompute time over cache time).

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch
from measurement import (
    device_description,
    load_average,
    markdown_table,
    mib,
    synchronize,
)
from workloads import DEFAULT_WORK_DIR, TEACHERS, load_teacher, quiet_libraries


def transcripts(count, languages=("en", "fr", "de", "es"), seed=0):
    """``count`` distinct synthetic transcripts, languages interleaved.

    Arguments
    ---------
    count : int
        Number of transcripts (at most 2016 per language).
    languages : tuple of str
        Languages of :mod:`speechbrain_sense.synthetic.phrase_grammar`.
    seed : int
        Shuffling seed.

    Returns
    -------
    list of str
        Sentences.
    """
    from speechbrain_sense.synthetic.phrase_grammar import grammar_sentences

    pools = [grammar_sentences(lang) for lang in languages]
    texts = [text for group in zip(*pools) for text in group][:count]
    if len(texts) < count:
        raise ValueError(f"only {len(texts)} synthetic transcripts available")
    random.Random(seed).shuffle(texts)
    return texts


def recompute_epoch(teacher, texts, batch_size, device):
    """One epoch of teacher passes, the upstream way; returns seconds.

    Arguments
    ---------
    teacher : object
        The teacher.
    texts : list of str
        The epoch's transcripts, in training order.
    batch_size : int
        Transcripts per pass (per training step).
    device : str
        Where the teacher runs.

    Returns
    -------
    float
        Wall seconds.
    """
    synchronize(device)
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        teacher.encode(texts[i : i + batch_size], batch_size=batch_size)
    synchronize(device)
    return time.perf_counter() - start


def store_bytes(path):
    """Bytes of every file in a cache store folder.

    Arguments
    ---------
    path : Path
        Store folder.

    Returns
    -------
    int
        Total size.
    """
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


def measure_teacher(kind, options, texts):
    """Cache and recompute costs of one teacher.

    Arguments
    ---------
    kind : str
        ``"xlmr"`` or ``"use"``.
    options : argparse.Namespace
        Benchmark options.
    texts : list of str
        Transcripts.

    Returns
    -------
    dict
        Seconds and bytes.
    """
    from speechbrain_sense.teachers.cache import TeacherEmbeddingCache

    device = options.device
    teacher = load_teacher(
        kind, options.work_dir, options.config, options.threads or 2
    )
    if hasattr(teacher, "model"):
        teacher.model.to(device)
    teacher.encode(texts[:64], batch_size=64)  # warm-up
    folder = Path(tempfile.mkdtemp(prefix="teacher-cache-bench-"))
    try:
        out = {"teacher": kind, "dim": teacher.dim}
        for dtype in ("float32", "float16"):
            cache = TeacherEmbeddingCache(folder / dtype, teacher, dtype=dtype)
            synchronize(device)
            start = time.perf_counter()
            # Length-sorted batches (the teacher's encode), as train.py
            # builds it with teacher_batch_size.
            cache.build(
                texts, batch_size=options.build_batch_size, device=device
            )
            out[f"build_{dtype}"] = time.perf_counter() - start
            out[f"bytes_{dtype}"] = store_bytes(cache.path)

        # A fresh reader, as a DataLoader worker opens it.
        reader = TeacherEmbeddingCache(
            folder / options.dtype, teacher, dtype=options.dtype
        )
        rng = random.Random(0)
        start = time.perf_counter()
        for _ in range(options.epochs):
            order = texts[:]
            rng.shuffle(order)
            for text in order:
                reader[text]
        out["lookups"] = time.perf_counter() - start

        measured = max(1, min(options.measured_epochs, options.epochs))
        for batch_size in (options.batch_size, 64):
            seconds = sum(
                recompute_epoch(teacher, texts, batch_size, device)
                for _ in range(measured)
            )
            out[f"recompute_b{batch_size}"] = seconds / measured
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parse_arguments(argv=None):
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--teachers",
        default="xlmr,use",
        help=f"comma-separated, from {TEACHERS}",
    )
    parser.add_argument("--config", choices=("tiny", "full"), default="tiny")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cuda" if torch.cuda.is_available() else "cpu",
    )
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument(
        "--build-batch-size",
        type=int,
        default=256,
        help="cache: transcripts per teacher pass (sense_cv.yaml's)",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--measured-epochs", type=int, default=2)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=2,
        help="recompute: transcripts per teacher pass (upstream: 2)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="store read by the lookup epochs",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's; 1 is steadier on a shared CPU)",
    )
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the benchmark; returns the cache speedup of the first teacher."""
    options = parse_arguments(argv)
    quiet_libraries()
    if options.threads:
        torch.set_num_threads(options.threads)
    print(
        f"device: {device_description(options.device)}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    print(f"load average at start: {load_average()}")
    texts = transcripts(options.texts)
    epochs = options.epochs
    rows, speedups = [], []
    for kind in options.teachers.split(","):
        r = measure_teacher(kind, options, texts)
        cached = r[f"build_{options.dtype}"] + r["lookups"]
        recompute = r[f"recompute_b{options.batch_size}"] * epochs
        recompute_64 = r["recompute_b64"] * epochs
        speedups.append(recompute / cached)
        rows.append(
            [
                kind,
                r["dim"],
                f"{r['build_float32']:.2f}",
                f"{len(texts) / r['build_float32']:.0f}",
                f"{1e6 * r['lookups'] / (epochs * len(texts)):.1f}",
                f"{cached:.2f}",
                f"{recompute:.2f}",
                f"{recompute_64:.2f}",
                f"{recompute / cached:.1f}x",
                f"{recompute_64 / cached:.1f}x",
                f"{mib(r['bytes_float32'])} / {mib(r['bytes_float16'])}",
            ]
        )
    print(
        f"\n{len(texts)} transcripts, {epochs} epochs "
        f"(recompute timed over {options.measured_epochs} and scaled):"
    )
    print(
        markdown_table(
            [
                "teacher",
                "dim",
                "build s",
                "build transcripts/s",
                "lookup us/utt",
                "cache total s",
                f"recompute s (batch {options.batch_size})",
                "recompute s (batch 64)",
                f"speedup (batch {options.batch_size})",
                "speedup (batch 64)",
                "store MiB fp32 / fp16",
            ],
            rows,
        )
    )
    print(f"load average at end: {load_average()}")
    print(f"cache_speedup: {speedups[0]:.1f}")
    return speedups[0]


if __name__ == "__main__":
    main()
