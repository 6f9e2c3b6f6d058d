#!/usr/bin/env python3
"""SENSE training throughput: this recipe against the upstream recipe.

Measures audio-seconds processed per wall-second and peak memory of the
SENSE training step for two pipelines, on the same synthetic corpus, with
the same model sizes and the same utterances:

* **ours** (``recipe_pipeline.py``): the recipe's real path
  (``recipes/CommonVoice/SENSE/train.py``): its ``dataio_prepare`` (MP3
  decoding, 16 kHz resampling and w2v-BERT fbank features in the
  DataLoader workers), the ``LanguageBalancedDynamicBatchSampler``
  (batches of at most ``--max-batch-seconds`` of padded audio),
  ``SenseStudent`` with length-masked pooling, targets looked up in the
  ``TeacherEmbeddingCache`` (built once, beforehand), the recipe's
  ``SENSEBrain`` (cosine loss, Adam for the encoder, Adadelta for the
  head, both stepped), bf16 autocast on a GPU.
* **upstream** (``upstream_baseline.py``): the upstream SpeechBrain SENSE
  recipe's choices, from stock SpeechBrain parts: the DataLoader workers
  only decode and resample; a fixed batch of 2 utterances in random order,
  zero-padded; SpeechBrain's ``W2VBert`` (which runs the HuggingFace fbank
  extractor on the CPU inside ``forward``), SpeechBrain's unmasked
  ``AttentionPooling`` (+ the same Linear+tanh projection when teacher and
  encoder widths differ), the teacher embedding each batch's transcripts
  inside the step (in fp16 on a GPU, as upstream's ``use_fp16: True``),
  summed cosine loss, fp32, and only the encoder's optimiser stepped
  (upstream never steps the head's).

Each (pipeline, round) runs in its own process, so peak memories never
mix; rounds alternate the order of the two pipelines and the table gives
medians. A run warms up for ``--warmup-steps`` steps, then times one epoch
over the training utterances (or ``--steps`` steps), data loading
included. Audio-seconds count the real, unpadded audio.

This file is the driver; ``throughput_run.py`` is one measured run (a
child process), ``throughput_report.py`` prints the tables and draws the
plot, and ``training_setup.py`` holds what both pipelines share.

Command lines::

    python bench/train_throughput.py --config tiny             # CPU, minutes
    python bench/train_throughput.py --config tiny --sweep 15,30,60,120,240 \\
        --plot docs/figures/throughput_vs_batch_seconds.png
    python bench/train_throughput.py --config full --device cuda --steps 30
    python bench/train_throughput.py --config full --device cpu --steps 1 \\
        --per-language 4 --max-batch-seconds 8 --rounds 1   # CPU smoke run

The last line printed is ``speedup_vs_upstream: X.XX`` (with
``--pipelines ours``: ``ours_audio_per_second: X``).

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from measurement import (
    device_description,
    load_average,
    markdown_table,
    median,
    mib,
)
from recipe_pipeline import shards_folder, teacher_cache
from throughput_report import SWEEP_VARIANTS, plot_sweep, summarize
from throughput_run import (
    PIPELINES,
    data_pipeline_costs,
    measure_pipeline,
    peak_reference,
)
from workloads import (
    DEFAULT_WORK_DIR,
    TEACHERS,
    load_teacher,
    quiet_libraries,
    student_source,
    synthetic_corpus,
)

# Per-config defaults: sense_tiny.yaml / sense_cv.yaml.
DEFAULTS = {
    "tiny": {
        "per_language": 160,
        "max_batch_seconds": 60.0,
        "max_batch_size": 32,
        "lr_encoder": 1e-3,
        "cache_dtype": "float32",
        "spec_augment": False,
    },
    "full": {
        "per_language": 400,
        "max_batch_seconds": 400.0,
        "max_batch_size": 128,
        "lr_encoder": 1e-5,
        "cache_dtype": "float16",
        "spec_augment": True,
    },
}


RESULT_PREFIX = "THROUGHPUT_RESULT "


def run_child(options, pipeline, **overrides):
    """Runs :func:`measure_pipeline` in a fresh Python process.

    Arguments
    ---------
    options : dict
        Benchmark options.
    pipeline : str
        ``"ours"`` or ``"upstream"``.
    **overrides
        Options to change for this run (e.g. ``max_batch_seconds``).

    Returns
    -------
    dict
        The child's result.
    """
    child_options = {**options, **overrides}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        pipeline,
        "--child-options",
        json.dumps(child_options),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
    raise RuntimeError(f"{pipeline} run failed (exit code {done.returncode})")


def prepare(options):
    """Corpus, models and the teacher cache, before any timed run.

    Arguments
    ---------
    options : dict
        Benchmark options; ``corpus`` and ``cache_build_seconds`` are
        added.
    """
    languages = options["languages"].split(",")
    options["corpus"] = synthetic_corpus(
        options["work_dir"], languages, options["per_language"], options["seed"]
    )
    student_source(options["work_dir"], options["config"])
    teacher = load_teacher(
        options["teacher"], options["work_dir"], options["config"]
    )
    start = time.perf_counter()
    teacher_cache(options, options["corpus"], teacher)
    options["cache_build_seconds"] = time.perf_counter() - start
    del teacher
    if options["data_format"] == "shards":
        from speechbrain_sense.data.shards import INDEX_FILE, build_shards

        folder = shards_folder(options)
        start = time.perf_counter()
        if not (Path(folder) / INDEX_FILE).is_file():
            corpus = options["corpus"]
            build_shards(
                {"train": corpus["train_csv"]},
                folder,
                student_source(options["work_dir"], options["config"]),
                data_root=corpus["data_folder"],
                samples_per_shard=100,
                progress=False,
            )
        options["shard_build_seconds"] = time.perf_counter() - start
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # leave the GPU to the measured runs


def sweep(options, values):
    """Throughput of ours for several ``max_batch_seconds``.

    Both feature modes are swept: computed every epoch (real corpora) and
    kept in the workers' memory after the first epoch (the tiny demo).

    Arguments
    ---------
    options : dict
        Benchmark options.
    values : list of float
        ``max_batch_seconds`` values.

    Returns
    -------
    dict
        Feature mode (bool) -> one run result per value (the median run
        over ``--sweep-rounds``).
    """
    out = {variant: [] for variant in SWEEP_VARIANTS}
    for value in values:
        for variant in SWEEP_VARIANTS:
            runs = [
                run_child(
                    options,
                    "ours",
                    max_batch_seconds=value,
                    cache_features_in_memory=variant,
                    count_flops=False,
                )
                for _ in range(options["sweep_rounds"])
            ]
            runs.sort(key=lambda r: r["audio_per_second"])
            out[variant].append(runs[len(runs) // 2])
    rows = [
        [
            f"{r['max_batch_seconds']:g}",
            "in memory" if variant else "every epoch",
            r["steps"],
            f"{r['utterances'] / r['steps']:.1f}",
            f"{r['audio_per_second']:.1f}",
            mib(r["peak_delta_bytes"]),
            r["load_average"],
        ]
        for variant, runs in out.items()
        for r in runs
    ]
    print("\nSweep of ours over max_batch_seconds:")
    print(
        markdown_table(
            [
                "max_batch_seconds",
                "features",
                "steps",
                "utt/step",
                "audio-s/s",
                "step peak MiB",
                "load avg",
            ],
            rows,
        )
    )
    return out


def parse_arguments(argv=None):
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", choices=("tiny", "full"), default="tiny")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cuda" if torch.cuda.is_available() else "cpu",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps per run, after the warm-up and from the same "
        "workers, across epochs if need be (default: one epoch's worth)",
    )
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--teacher", choices=TEACHERS, default="xlmr")
    parser.add_argument("--languages", default="en,fr")
    parser.add_argument(
        "--per-language",
        type=int,
        default=None,
        help="clips per language, 80%% train (default: 160 tiny, 400 full)",
    )
    parser.add_argument(
        "--max-batch-seconds",
        type=float,
        default=None,
        help="ours: padded seconds per batch (default: 60 tiny, 400 full)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="ours: utterances per batch (default: 32 tiny, 128 full)",
    )
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument(
        "--data-format",
        choices=("manifests", "shards"),
        default="manifests",
        help="ours: decode the clips every epoch, or stream feature shards "
        "(built once before the timed runs, not timed)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the training process (default on the CPU: "
        "the cores the DataLoader workers leave free, at least 1)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="ours (auto: bf16 on a GPU, fp32 on the CPU); upstream: fp32",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="ours: torch.compile the student (dynamic shapes)",
    )
    parser.add_argument(
        "--no-fused-optimizer",
        dest="fused_optimizer",
        action="store_false",
        help="ours: the encoder's Adam per tensor, not fused (upstream's)",
    )
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="ours: recompute the Conformer layers in the backward pass",
    )
    parser.add_argument(
        "--cache-features-in-memory",
        action="store_true",
        help="ours: workers keep computed features (sense_tiny.yaml does); "
        "ours then warms up for a whole epoch",
    )
    parser.add_argument(
        "--no-flops",
        dest="count_flops",
        action="store_false",
        help="skip counting FLOPs (a second, untimed pass over the batches)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="GPU: synchronise around stages to time them (always on CPU)",
    )
    parser.add_argument(
        "--sweep",
        default=None,
        help="comma-separated max_batch_seconds values to sweep (ours)",
    )
    parser.add_argument("--sweep-rounds", type=int, default=1)
    parser.add_argument("--plot", default=None, help="PNG of the sweep")
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    parser.add_argument("--seed", type=int, default=1986)
    parser.add_argument(
        "--pipelines",
        default=",".join(PIPELINES),
        help="which to run (ours alone for one-at-a-time ablations)",
    )
    parser.add_argument("--child", choices=PIPELINES, help=argparse.SUPPRESS)
    parser.add_argument("--child-options", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    options = vars(args)
    for key, value in DEFAULTS[args.config].items():
        if options.get(key) is None:
            options[key] = value
    if options["threads"] is None and args.device == "cpu":
        # More busy threads than cores stalls OpenMP's barriers: keep the
        # training process off the workers' cores.
        options["threads"] = max(1, (os.cpu_count() or 1) - args.num_workers)
    if options["precision"] == "auto":
        options["precision"] = "bf16" if args.device == "cuda" else "fp32"
    return args


def main(argv=None):
    """Runs the benchmark; returns the speedup of ours over upstream."""
    args = parse_arguments(argv)
    quiet_libraries()
    if args.child:
        result = measure_pipeline(json.loads(args.child_options), args.child)
        print(RESULT_PREFIX + json.dumps(result))
        return None
    options = {
        key: value
        for key, value in vars(args).items()
        if key not in ("child", "child_options")
    }
    print(f"device: {device_description(options['device'])}")
    print(f"load average at start: {load_average()}")
    prepare(options)
    options["peak_flops"], options["peak_reference"] = peak_reference(options)
    print(
        f"config {options['config']}, teacher {options['teacher']}, "
        f"{options['languages']} x {options['per_language']} clips, "
        f"ours: max_batch_seconds {options['max_batch_seconds']:g}, "
        f"max_batch_size {options['max_batch_size']}, "
        f"{options['precision']}, compile {options['compile']}, fused "
        f"Adam {options['fused_optimizer']}, gradient checkpointing "
        f"{options['gradient_checkpointing']}; "
        f"{options['num_workers']} DataLoader worker(s) and "
        f"{options['threads'] or 'default'} torch thread(s) each"
    )
    print(
        "teacher cache (ours, once, before training): "
        f"{options['cache_build_seconds']:.2f} s"
    )
    if torch.device(options["device"]).type == "cpu":
        costs = data_pipeline_costs(options)
        print(
            "DataLoader work per audio-second (one core): decode+resample "
            f"{1000 * costs['decode+resample']:.1f} ms, w2v-BERT fbank "
            f"{1000 * costs['fbank']:.2f} ms (the HuggingFace extractor: "
            f"{1000 * costs['hf fbank']:.2f} ms)"
        )
    pipelines = [p for p in PIPELINES if p in options["pipelines"].split(",")]
    results = {pipeline: [] for pipeline in pipelines}
    for round_index in range(options["rounds"]):
        order = pipelines if round_index % 2 == 0 else pipelines[::-1]
        for pipeline in order:
            results[pipeline].append(run_child(options, pipeline))
    speedup = summarize(options, results)
    if options["sweep"]:
        values = [float(v) for v in options["sweep"].split(",")]
        runs = sweep(options, values)
        if options["plot"]:
            title = (
                f"SENSE {options['config']} training, "
                f"{device_description(options['device']).split(';')[0]}; "
                f"{options['num_workers']} worker + "
                f"{options['threads'] or 'default'} thread(s) per pipeline"
            )
            plot_sweep(options["plot"], runs, results["upstream"], title)
            print(f"plot: {options['plot']}")
    print(f"load average at end: {load_average()}")
    if speedup is None:
        ours = results["ours"]
        print(
            f"ours_audio_per_second: {median([r['audio_per_second'] for r in ours]):.1f}"
        )
    else:
        print(f"speedup_vs_upstream: {speedup:.2f}")
    return speedup


if __name__ == "__main__":
    main()
