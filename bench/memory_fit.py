#!/usr/bin/env python3
"""The largest SENSE batch that fits: ``max_batch_seconds`` for a memory.

``max_batch_seconds`` bounds the padded audio of a training batch, and so
its activation memory. This benchmark finds the largest value whose
training step (forward, backward and the Adam step, bf16 autocast on a
GPU, as ``sense_cv.yaml`` trains) fits in a memory budget, with and
without activation checkpointing (``gradient_checkpointing: True``
recomputes each Conformer layer in the backward pass).

A batch is ``round(S / L)`` utterances of ``--utterance-seconds`` ``L``
(the worst case for a given ``S``: every utterance as long as the
longest, so padding adds nothing the bound does not count), as w2v-BERT
features (50 frames of 160 values per second). Two steps run per try: the
first allocates Adam's states.

* **CUDA**: the device's memory (or ``--budget-gib``) is the budget and
  the search is real: ``S`` doubles until a step runs out of memory, then
  is bisected to ``--resolution`` seconds.
* **CPU**: the step's peak resident memory is measured at a few sizes
  and the budget's ``S`` is extrapolated from a straight line through
  them (activation memory grows linearly with ``S`` at a fixed ``L``).

Command lines::

    python bench/memory_fit.py                    # tiny model, CPU
    python bench/memory_fit.py --config full --device cuda

The last line printed is ``max_batch_seconds: X without checkpointing,
Y with``.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from measurement import (
    PeakMemory,
    device_description,
    load_average,
    markdown_table,
    synchronize,
)
from workloads import (
    DEFAULT_WORK_DIR,
    quiet_libraries,
    recipe_head,
    student_source,
)

FEATURE_FRAMES_PER_SECOND = 50  # 100 fbank frames/s, stacked in pairs
FEATURE_DIM = 160
GIB = 2**30


def build_student(options, checkpointing):
    """Student and its Adam optimiser, as ``sense_cv.yaml`` builds them.

    Arguments
    ---------
    options : argparse.Namespace
        Benchmark options.
    checkpointing : bool
        Activation checkpointing of the Conformer layers.

    Returns
    -------
    tuple
        ``(student, optimizer, teacher_dim)``.
    """
    from speechbrain_sense.encoders.student import SenseStudent
    from speechbrain_sense.encoders.w2v_bert import SenseW2VBert

    source = student_source(options.work_dir, options.config)
    torch.manual_seed(0)
    encoder = SenseW2VBert(
        source,
        save_path=source,
        freeze=False,
        apply_spec_augment=False,
        gradient_checkpointing=checkpointing,
    )
    head = recipe_head(encoder.output_dim, encoder.output_dim)
    student = SenseStudent(encoder, head).to(options.device).train()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-5, fused=True)
    return student, optimizer, encoder.output_dim


def step_peak(student, optimizer, dim, seconds, options):
    """Peak memory of two training steps on ``seconds`` of batch audio.

    Arguments
    ---------
    student : torch.nn.Module
        The student.
    optimizer : torch.optim.Optimizer
        Its optimiser.
    dim : int
        Embedding width.
    seconds : float
        Padded audio seconds of the batch.
    options : argparse.Namespace
        Benchmark options.

    Returns
    -------
    dict
        ``utterances``, ``peak_bytes`` and ``step_seconds``.
    """
    device = torch.device(options.device)
    count = max(1, round(seconds / options.utterance_seconds))
    frames = int(options.utterance_seconds * FEATURE_FRAMES_PER_SECOND)
    features = torch.randn(count, frames, FEATURE_DIM, device=device)
    frame_counts = torch.full((count,), frames, device=device)
    targets = F.normalize(torch.randn(count, dim, device=device), dim=-1)
    autocast = torch.autocast(
        device.type, torch.bfloat16, enabled=device.type == "cuda"
    )
    with PeakMemory(device) as memory:
        for _ in range(2):
            optimizer.zero_grad(set_to_none=True)
            start = time.perf_counter()
            with autocast:
                embeddings = student(features, frame_counts)
            loss = (1 - F.cosine_similarity(embeddings.float(), targets)).sum()
            loss.backward()
            optimizer.step()
            synchronize(device)
    optimizer.zero_grad(set_to_none=True)
    return {
        "utterances": count,
        "peak_bytes": memory.peak_bytes,
        "step_seconds": time.perf_counter() - start,
    }


def _fits(student, optimizer, dim, seconds, options, budget, tries):
    """Runs one try; records it; whether it fitted in ``budget`` bytes."""
    try:
        result = step_peak(student, optimizer, dim, seconds, options)
    except torch.cuda.OutOfMemoryError:
        result = {"utterances": None, "peak_bytes": None, "step_seconds": 0}
    finally:
        optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    fits = result["peak_bytes"] is not None and result["peak_bytes"] <= budget
    tries.append({"seconds": seconds, "fits": fits, **result})
    return fits


def search_cuda(student, optimizer, dim, options, budget):
    """Largest fitting ``S`` by doubling, then bisection (real steps).

    Returns
    -------
    tuple
        ``(largest fitting seconds or 0, tries)``.
    """
    tries = []
    low, high = 0.0, options.start_seconds
    while high <= options.max_seconds:
        if not _fits(student, optimizer, dim, high, options, budget, tries):
            break
        low, high = high, 2 * high
    else:
        return low, tries  # fits up to --max-seconds
    while high - low > options.resolution:
        middle = (low + high) / 2
        if _fits(student, optimizer, dim, middle, options, budget, tries):
            low = middle
        else:
            high = middle
    return low, tries


def extrapolate_cpu(student, optimizer, dim, options, budget):
    """``S`` at the budget from a line through measured peaks.

    Returns
    -------
    tuple
        ``(extrapolated seconds, tries)``.
    """
    tries = []
    sizes = [options.start_seconds * 2**i for i in range(options.cpu_points)]
    for seconds in sizes:  # smallest first: the RSS high-water mark only
        _fits(student, optimizer, dim, seconds, options, float("inf"), tries)
    xs = [t["seconds"] for t in tries]
    ys = [t["peak_bytes"] for t in tries]
    slope = (ys[-1] - ys[0]) / (xs[-1] - xs[0])
    if slope <= 0:
        raise SystemExit(
            f"peak memory did not grow with the batch ({ys}): use larger "
            "--start-seconds"
        )
    return xs[0] + (budget - ys[0]) / slope, tries


def parse_arguments(argv=None):
    """Command-line options (see the module docstring)."""
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", choices=("tiny", "full"), default="tiny")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if cuda else "cpu"
    )
    parser.add_argument(
        "--budget-gib",
        type=float,
        default=None,
        help="memory budget (default: the GPU's memory; CPU: 140)",
    )
    parser.add_argument("--utterance-seconds", type=float, default=10.0)
    parser.add_argument("--start-seconds", type=float, default=None)
    parser.add_argument("--max-seconds", type=float, default=12800.0)
    parser.add_argument("--resolution", type=float, default=25.0)
    parser.add_argument(
        "--cpu-points", type=int, default=3, help="CPU: sizes measured"
    )
    parser.add_argument(
        "--modes",
        default="off,on",
        help="activation checkpointing off and/or on",
    )
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    options = parser.parse_args(argv)
    if options.start_seconds is None:
        options.start_seconds = 100.0 if options.device == "cuda" else 20.0
    return options


def _each_mode_in_its_process(argv, modes):
    """CPU: each mode measured by a fresh process of this script.

    The resident-memory high-water mark is per process, and memory freed
    by one mode's larger steps stays resident: measured after it, the next
    mode's peaks would not grow with the batch.

    Returns
    -------
    dict
        ``{checkpointing: max_batch_seconds}``.
    """
    argv = [a for a in argv if not a.startswith("--modes")]
    found = {}
    for mode in modes:
        done = subprocess.run(
            [sys.executable, __file__, *argv, f"--modes={mode}"],
            capture_output=True,
            text=True,
        )
        print(done.stdout, end="")
        if done.returncode:
            sys.stderr.write(done.stderr)
            raise SystemExit(done.returncode)
        last = done.stdout.strip().splitlines()[-1]
        found[mode == "on"] = float(last.split(": ")[1].split()[0])
    parts = [
        f"{found[mode]:.0f} {'with' if mode else 'without'} checkpointing"
        for mode in found
    ]
    print("max_batch_seconds: " + ", ".join(parts))
    return found


def main(argv=None):
    """Runs the search; returns ``{checkpointing: max_batch_seconds}``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    options = parse_arguments(argv)
    modes = options.modes.split(",")
    if options.device == "cpu" and len(modes) > 1:
        return _each_mode_in_its_process(argv, modes)
    quiet_libraries()
    device = torch.device(options.device)
    if options.budget_gib is not None:
        budget = options.budget_gib * GIB
    elif device.type == "cuda":
        budget = torch.cuda.get_device_properties(device).total_memory
    else:
        budget = 140 * GIB
    print(f"device: {device_description(options.device)}")
    print(f"load average at start: {load_average()}")
    print(
        f"config {options.config}, {options.utterance_seconds:g} s "
        f"utterances, budget {budget / GIB:.1f} GiB, "
        f"{'bf16 autocast' if device.type == 'cuda' else 'fp32'}"
    )
    found = {}
    for mode in modes:
        checkpointing = mode == "on"
        student, optimizer, dim = build_student(options, checkpointing)
        if device.type == "cuda":
            seconds, tries = search_cuda(
                student, optimizer, dim, options, budget
            )
            how = "searched"
        else:
            seconds, tries = extrapolate_cpu(
                student, optimizer, dim, options, budget
            )
            how = "extrapolated"
        found[checkpointing] = seconds
        print(f"\nActivation checkpointing {mode}:")
        print(
            markdown_table(
                ["batch s", "utterances", "peak GiB", "step s", "fits"],
                [
                    [
                        f"{t['seconds']:g}",
                        t["utterances"] or "-",
                        f"{t['peak_bytes'] / GIB:.2f}"
                        if t["peak_bytes"]
                        else "out of memory",
                        f"{t['step_seconds']:.2f}",
                        "yes" if t["fits"] else "no",
                    ]
                    for t in tries
                ],
            )
        )
        print(f"largest max_batch_seconds ({how}): {seconds:.0f}")
        del student, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"load average at end: {load_average()}")
    parts = [
        f"{found[mode]:.0f} {'with' if mode else 'without'} checkpointing"
        for mode in found
    ]
    print("max_batch_seconds: " + ", ".join(parts))
    return found


if __name__ == "__main__":
    main()
