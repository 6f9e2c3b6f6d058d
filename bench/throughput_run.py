"""One measured training run of ``bench/train_throughput.py`` (a child process).

Builds one pipeline, warms it up, times one epoch (or ``--steps`` steps)
with data loading included, and counts the step FLOPs; also the CPU cost of
the DataLoader work per audio-second and the FLOP/s reference that model
FLOPs utilisation is measured against.

Authors
 * speechbrain-sense developers 2026
"""

import csv
import time
from collections import defaultdict

import torch
from measurement import (
    PeakMemory,
    load_average,
    matmul_flops_per_second,
    peak_bf16_flops,
    synchronize,
)
from recipe_pipeline import build_ours
from training_setup import SAMPLE_RATE
from upstream_baseline import build_upstream
from workloads import (
    student_source,
)

PIPELINES = ("ours", "upstream")


# Timed batches whose FLOPs are counted (then scaled to all timed steps).
FLOP_COUNT_BATCHES = 8


def _time_methods(brain, clock, device, names):
    """Replaces ``brain.<name>`` by a timed (synchronised) version."""
    for name in names:
        method = getattr(brain, name)

        def timed(*args, _method=method, _name=name, **kwargs):
            """Calls the method between device syncs and adds its wall time."""
            synchronize(device)
            start = time.perf_counter()
            out = _method(*args, **kwargs)
            synchronize(device)
            clock[_name] += time.perf_counter() - start
            return out

        setattr(brain, name, timed)


def _batch_seconds(batch, durations):
    """Real and padded audio seconds of a batch."""
    seconds = [durations[utt] for utt in batch.id]
    return sum(seconds), len(seconds) * max(seconds)


def count_step_flops(brain, batches):
    """FLOPs of forward + backward over ``batches`` (no optimiser step).

    Arguments
    ---------
    brain : speechbrain.Brain
        The pipeline.
    batches : list
        Batches as the loader yielded them.

    Returns
    -------
    int
        Matmul/convolution/attention FLOPs counted by
        ``torch.utils.flop_counter.FlopCounterMode``.
    """
    import speechbrain as sb
    from torch.utils.flop_counter import FlopCounterMode

    total = 0
    for batch in batches:
        with FlopCounterMode(display=False) as counter:
            with brain.training_ctx:
                outputs = brain.compute_forward(batch, sb.Stage.TRAIN)
                loss = brain.compute_objectives(outputs, batch, sb.Stage.TRAIN)
            loss.backward()
        brain.zero_grad(set_to_none=True)
        total += counter.get_total_flops()
    return total


def batch_stream(loader, sampler, first_epoch=0):
    """Batches of ``loader`` over consecutive epochs, without end.

    Each epoch is a new iterator over the same loader: with persistent
    workers the processes survive, as in ``Brain.fit``, so a run can warm
    up and then time any number of steps in steady state.

    Arguments
    ---------
    loader : iterable
        The training loader.
    sampler : object
        Its batch sampler (``set_epoch`` is called when it has one).
    first_epoch : int
        Epoch of the first batch.

    Yields
    ------
    batch
    """
    epoch = first_epoch
    while True:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise RuntimeError("the training loader yields no batch")
        epoch += 1


def _run_steps(brain, stream, durations, steps, keep=False):
    """Trains on ``steps`` batches of ``stream``; returns what was done.

    The wall time includes waiting for the DataLoader; ``data_wait`` is
    that part, ``first_batch_wait`` its share spent on the first batch
    (worker start-up, in the warm-up).
    """
    totals = defaultdict(float)
    kept = []
    start = time.perf_counter()
    while totals["steps"] < steps:
        wait = time.perf_counter()
        batch = next(stream)
        waited = time.perf_counter() - wait
        totals["data_wait"] += waited
        if not totals["steps"]:
            totals["first_batch_wait"] = waited
        brain.fit_batch(batch)
        real, padded = _batch_seconds(batch, durations)
        totals["steps"] += 1
        totals["utterances"] += len(batch.id)
        totals["audio_seconds"] += real
        totals["padded_seconds"] += padded
        totals["largest_batch_seconds"] = max(
            totals["largest_batch_seconds"], real
        )
        if keep and len(kept) < FLOP_COUNT_BATCHES:
            kept.append(batch)
    synchronize(brain.device)
    totals["wall_seconds"] = time.perf_counter() - start
    return totals, kept


def _scaled_flops(brain, kept, totals, durations):
    """Step FLOPs of the timed steps, counted on the first batches kept.

    Counting replays each batch untimed; the first
    ``FLOP_COUNT_BATCHES`` are counted and scaled by padded audio seconds
    (FLOPs grow with padded frames), so that a 200-step run is not
    replayed 200 times.
    """
    if not kept:
        return None
    padded = sum(_batch_seconds(batch, durations)[1] for batch in kept)
    return count_step_flops(brain, kept) * totals["padded_seconds"] / padded


def _epoch_steps(loader):
    """Batches in one epoch of ``loader``."""
    try:
        return len(loader)
    except TypeError as error:
        raise SystemExit(
            "this loader has no length: give --steps (and --warmup-steps)"
        ) from error


def measure_pipeline(options, pipeline):
    """Builds one pipeline, warms it up and times one epoch.

    Peak memory covers the warm-up steps too, so that optimiser states
    (allocated at the first step) and the allocator's caches count as
    training memory; ``start_bytes`` is the memory after building the
    models and the loader.

    Arguments
    ---------
    options : dict
        Benchmark options (see :func:`parse_arguments`).
    pipeline : str
        ``"ours"`` or ``"upstream"``.

    Returns
    -------
    dict
        Counts, seconds, memory and FLOPs of the timed part.
    """
    if options["threads"]:
        torch.set_num_threads(options["threads"])
    device = torch.device(options["device"])
    setup_start = time.perf_counter()
    corpus = options["corpus"]
    build = build_ours if pipeline == "ours" else build_upstream
    brain, loader, clock = build(options, corpus)
    with open(corpus["train_csv"], encoding="utf-8", newline="") as f:
        durations = {
            row["ID"]: float(row["duration"]) for row in csv.DictReader(f)
        }
    # What Brain.fit does before the first epoch.
    brain._compile()
    brain.init_optimizers()
    brain.modules.train()
    brain.zero_grad()
    timers = device.type == "cpu" or options["breakdown"]
    if timers:
        _time_methods(
            brain,
            clock,
            device,
            ("compute_forward", "compute_objectives", "optimizers_step"),
        )
    sampler = getattr(brain, "train_sampler", None)
    sampler = sampler or getattr(loader, "batch_sampler", None)
    stream = batch_stream(loader, sampler)
    build_seconds = time.perf_counter() - setup_start
    with PeakMemory(device) as memory:
        warmup_steps = options["warmup_steps"]
        if pipeline == "ours" and options["cache_features_in_memory"]:
            # one epoch fills the workers' caches
            warmup_steps = _epoch_steps(loader)
        warmup, _ = _run_steps(brain, stream, durations, warmup_steps)
        setup_seconds = time.perf_counter() - setup_start
        clock.clear()
        # Timed from the same stream: the workers are running, their
        # queues full; epoch boundaries inside the timed steps count.
        totals, kept = _run_steps(
            brain,
            stream,
            durations,
            options["steps"] or _epoch_steps(loader),
            options["count_flops"],
        )
    stream.close()

    breakdown = {"data wait": totals["data_wait"]}
    if timers:
        forward = clock["compute_forward"]
        for inner in ("in-step fbank", "teacher"):
            if inner in clock:
                breakdown[inner] = clock[inner]
                forward -= clock[inner]
        breakdown["encoder+pooling forward"] = forward
        breakdown["loss"] = clock["compute_objectives"]
        breakdown["optimizer step"] = clock["optimizers_step"]
        # fit_batch minus the above: backward, loss checks, bookkeeping.
        breakdown["backward+rest"] = totals["wall_seconds"] - sum(
            (
                totals["data_wait"],
                clock["compute_forward"],
                clock["compute_objectives"],
                clock["optimizers_step"],
            )
        )
    largest = max(
        totals["largest_batch_seconds"], warmup["largest_batch_seconds"]
    )
    return {
        "pipeline": pipeline,
        "max_batch_seconds": options["max_batch_seconds"],
        "steps": int(totals["steps"]),
        "utterances": int(totals["utterances"]),
        "audio_seconds": totals["audio_seconds"],
        "padded_seconds": totals["padded_seconds"],
        "wall_seconds": totals["wall_seconds"],
        "audio_per_second": totals["audio_seconds"] / totals["wall_seconds"],
        "largest_batch_seconds": largest,
        "start_bytes": memory.start_bytes,
        "peak_bytes": memory.peak_bytes,
        "peak_delta_bytes": memory.delta_bytes,
        "breakdown": breakdown,
        # FLOPs of the kept batches, scaled to all timed steps by audio.
        "flops": _scaled_flops(brain, kept, totals, durations),
        "setup_seconds": setup_seconds,
        "build_seconds": build_seconds,
        "warmup_steps": int(warmup["steps"]),
        "warmup_seconds": warmup["wall_seconds"],
        "first_batch_wait": warmup["first_batch_wait"],
        "data_wait_seconds": totals["data_wait"],
        "load_average": load_average(),
    }


def data_pipeline_costs(options, count=32):
    """CPU cost of the DataLoader work per second of audio (one thread).

    Arguments
    ---------
    options : dict
        Benchmark options (after :func:`prepare`).
    count : int
        Utterances timed.

    Returns
    -------
    dict
        Seconds of compute per second of audio for MP3 decoding +
        resampling and for w2v-BERT fbank extraction (ours and the
        HuggingFace extractor's).
    """
    from speechbrain_sense.audio import load_audio
    from speechbrain_sense.encoders.w2v_bert import W2VBertFeatures

    corpus = options["corpus"]
    with open(corpus["train_csv"], encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))[:count]
    source = student_source(options["work_dir"], options["config"])
    features = W2VBertFeatures(source)
    # The HuggingFace extractor itself: what upstream runs in the step.
    hf_features = W2VBertFeatures(source, vectorized=False)
    decode, fbank, hf_fbank, seconds = 0.0, 0.0, 0.0, 0.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    # Steady state, as in a worker after its first batch: the resampler's
    # kernel, the extractors and the page cache are warm.
    for row in rows[:4]:
        wav = load_audio(
            row["wav"].replace("$data_root", corpus["data_folder"]),
            SAMPLE_RATE,
        )
        features(wav)
        hf_features(wav)
    for row in rows:
        path = row["wav"].replace("$data_root", corpus["data_folder"])
        start = time.perf_counter()
        wav = load_audio(path, SAMPLE_RATE)
        middle = time.perf_counter()
        features(wav)
        end = time.perf_counter()
        hf_features(wav)
        hf_fbank += time.perf_counter() - end
        fbank += end - middle
        decode += middle - start
        seconds += len(wav) / SAMPLE_RATE
    torch.set_num_threads(threads)
    return {
        "decode+resample": decode / seconds,
        "fbank": fbank / seconds,
        "hf fbank": hf_fbank / seconds,
    }


def peak_reference(options):
    """The FLOP/s that model FLOPs utilisation is measured against.

    GPU: the data-sheet dense bf16 peak (:data:`measurement.
    PEAK_BF16_FLOPS`); CPU: a plain fp32 matmul measured here with the
    training process's number of threads (there is no data-sheet figure
    for a shared virtual CPU).

    Arguments
    ---------
    options : dict
        Benchmark options.

    Returns
    -------
    tuple
        ``(flops_per_second or None, description)``.
    """
    device = options["device"]
    if torch.device(device).type == "cuda":
        peak, name = peak_bf16_flops(device)
        if peak is None:
            return None, "GPU not in the bf16 peak table"
        return peak, f"dense bf16 peak of {name} (data sheet)"
    threads = torch.get_num_threads()
    torch.set_num_threads(options["threads"] or threads)
    bf16 = options["precision"] == "bf16"
    dtype = torch.bfloat16 if bf16 else torch.float32
    peak = matmul_flops_per_second(device, dtype, size=2048)
    torch.set_num_threads(threads)
    return peak, (
        f"{'bf16' if bf16 else 'fp32'} 2048^3 matmul measured on this CPU "
        f"with {options['threads'] or threads} thread(s)"
    )
