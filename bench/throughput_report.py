"""The tables and the plot of ``bench/train_throughput.py``.

Authors
 * speechbrain-sense developers 2026
"""

from pathlib import Path

from measurement import (
    markdown_table,
    median,
    mib,
)
from throughput_run import PIPELINES

SWEEP_VARIANTS = {
    False: "ours: decode + fbank in the worker every epoch",
    True: "ours: features kept in worker memory (sense_tiny.yaml)",
}


def summarize(options, results):
    """Prints the per-run, summary and breakdown tables.

    Arguments
    ---------
    options : dict
        Benchmark options.
    results : dict
        Pipeline -> list of run results.

    Returns
    -------
    float or None
        Median throughput of ours over that of upstream (``None`` when
        only one pipeline ran).
    """
    pipelines = [p for p in PIPELINES if results.get(p)]
    per_run = []
    for pipeline in pipelines:
        for i, run in enumerate(results[pipeline]):
            per_run.append(
                [
                    pipeline,
                    i + 1,
                    run["steps"],
                    run["utterances"],
                    f"{run['audio_seconds']:.1f}",
                    f"{run['wall_seconds']:.2f}",
                    f"{run['audio_per_second']:.1f}",
                    mib(run["peak_bytes"]),
                    mib(run["peak_delta_bytes"]),
                    f"{run['setup_seconds']:.1f}",
                    run["load_average"],
                ]
            )
    print("\nRuns (each in its own process; rounds alternate the order):")
    print(
        markdown_table(
            [
                "pipeline",
                "round",
                "steps",
                "utterances",
                "audio s",
                "wall s",
                "audio-s/s",
                "peak MiB",
                "step peak MiB",
                "setup+warm-up s",
                "load avg",
            ],
            per_run,
        )
    )

    peak, reference = options["peak_flops"], options["peak_reference"]
    rows, speed = [], {}
    for pipeline in pipelines:
        runs = results[pipeline]
        speed[pipeline] = median([r["audio_per_second"] for r in runs])
        steps = median([r["steps"] for r in runs])
        audio = median([r["audio_seconds"] for r in runs])
        padded = median([r["padded_seconds"] for r in runs])
        utterances = median([r["utterances"] for r in runs])
        delta = median([r["peak_delta_bytes"] for r in runs])
        largest = median([r["largest_batch_seconds"] for r in runs])
        flops = [r["flops"] / r["wall_seconds"] for r in runs if r["flops"]]
        achieved = median(flops) if flops else None
        # The step alone: wall time less the wait for the DataLoader.
        step_flops = [
            r["flops"] / (r["wall_seconds"] - r["data_wait_seconds"])
            for r in runs
            if r["flops"]
        ]
        step_achieved = median(step_flops) if step_flops else None
        wait = median(
            [r["data_wait_seconds"] / r["wall_seconds"] for r in runs]
        )
        rows.append(
            [
                pipeline,
                f"{speed[pipeline]:.1f}",
                f"{utterances / steps:.1f}",
                f"{audio / steps:.1f}",
                f"{100 * (1 - audio / padded):.0f}%",
                mib(median([r["peak_bytes"] for r in runs])),
                mib(delta),
                f"{delta / 2**20 / largest:.2f}",
                f"{100 * wait:.1f}%",
                f"{achieved / 1e9:.1f}" if achieved else "-",
                f"{100 * achieved / peak:.1f}%" if achieved and peak else "n/a",
                f"{100 * step_achieved / peak:.1f}%"
                if step_achieved and peak
                else "n/a",
            ]
        )
    print(f"\nSummary (medians over {options['rounds']} rounds):")
    print(
        markdown_table(
            [
                "pipeline",
                "audio-s/s",
                "utt/step",
                "audio s/step",
                "padding",
                "peak MiB",
                "step peak MiB",
                "step MiB per batch audio-s",
                "data wait",
                "model GFLOP/s",
                "MFU",
                "MFU of the step alone",
            ],
            rows,
        )
    )
    rows = []
    for pipeline in pipelines:
        runs = results[pipeline]
        rows.append(
            [
                pipeline,
                f"{median([r['build_seconds'] for r in runs]):.1f}",
                int(median([r["warmup_steps"] for r in runs])),
                f"{median([r['warmup_seconds'] for r in runs]):.1f}",
                f"{median([r['first_batch_wait'] for r in runs]):.2f}",
            ]
        )
    print("\nStart-up, not in the timed steps (medians):")
    print(
        markdown_table(
            [
                "pipeline",
                "build s",
                "warm-up steps",
                "warm-up s",
                "first batch wait s",
            ],
            rows,
        )
    )
    if peak:
        print(f"peak reference: {reference} = {peak / 1e12:.3f} TFLOP/s")
    else:
        print(f"MFU: n/a ({reference})")

    stages = []
    for pipeline in pipelines:
        for stage in results[pipeline][0]["breakdown"]:
            if stage not in stages:
                stages.append(stage)
    rows = []
    for stage in stages:
        row = [stage]
        for pipeline in pipelines:
            runs = results[pipeline]
            seconds = median([r["breakdown"].get(stage, 0.0) for r in runs])
            per_step = seconds / median([r["steps"] for r in runs])
            share = seconds / median([r["wall_seconds"] for r in runs])
            row.append(f"{1000 * per_step:.1f} ms ({100 * share:.0f}%)")
        rows.append(row)
    print("\nWhere the wall time goes (per step, share of the epoch):")
    print(markdown_table(["stage", *pipelines], rows))
    if len(pipelines) < len(PIPELINES):
        return None
    return speed["ours"] / speed["upstream"]


def plot_sweep(path, sweeps, upstream, title):
    """Writes the throughput-vs-batch-duration plot (PNG).

    Arguments
    ---------
    path : str
        Output file.
    sweeps : dict
        Feature mode -> sweep results of ours (:func:`sweep`).
    upstream : list of dict
        Runs of the upstream baseline (a reference point).
    title : str
        Plot title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for variant, runs in sweeps.items():
        axis.plot(
            [r["max_batch_seconds"] for r in runs],
            [r["audio_per_second"] for r in runs],
            "o-" if variant else "^--",
            label=SWEEP_VARIANTS[variant],
        )
    if upstream:
        padded = median([r["padded_seconds"] / r["steps"] for r in upstream])
        axis.plot(
            [padded],
            [median([r["audio_per_second"] for r in upstream])],
            "s",
            color="tab:red",
            label="upstream-style (2 utterances per batch)",
        )
    axis.set_xscale("log")
    axis.set_xlabel("padded audio per batch, s (ours: max_batch_seconds)")
    axis.set_ylabel("audio-seconds per wall-second")
    axis.set_ylim(bottom=0)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
