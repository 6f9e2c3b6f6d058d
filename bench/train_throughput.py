#!/usr/bin/env python3
"""SENSE training throughput: this recipe against the upstream recipe.

Measures audio-seconds processed per wall-second and peak memory of the
SENSE training step for two pipelines, on the same synthetic corpus, with
the same model sizes and the same utterances:

* **ours**: the recipe's real path (``recipes/CommonVoice/SENSE/train.py``):
  its ``dataio_prepare`` (MP3 decoding, 16 kHz resampling and w2v-BERT
  fbank features in the DataLoader workers), the
  ``LanguageBalancedDynamicBatchSampler`` (batches of at most
  ``--max-batch-seconds`` of padded audio), ``SenseStudent`` with
  length-masked pooling, targets looked up in the ``TeacherEmbeddingCache``
  (built once, beforehand), the recipe's ``SENSEBrain`` (cosine loss, Adam
  for the encoder, Adadelta for the head, both stepped), bf16 autocast on a
  GPU.
* **upstream**: the upstream SpeechBrain SENSE recipe's choices, from stock
  SpeechBrain parts: the DataLoader workers only decode and resample; a
  fixed batch of 2 utterances in random order, zero-padded; SpeechBrain's
  ``W2VBert`` (which runs the HuggingFace fbank extractor on the CPU inside
  ``forward``), SpeechBrain's unmasked ``AttentionPooling`` (+ the same
  Linear+tanh projection when teacher and encoder widths differ), the
  teacher embedding each batch's transcripts inside the step (in fp16 on a
  GPU, as upstream's ``use_fp16: True``), summed cosine loss, fp32, and
  only the encoder's optimiser stepped (upstream never steps the head's).

Each (pipeline, round) runs in its own process, so peak memories never
mix; rounds alternate the order of the two pipelines and the table gives
medians. A run warms up for ``--warmup-steps`` steps, then times one epoch
over the training utterances (or ``--steps`` steps), data loading
included. Audio-seconds count the real, unpadded audio.

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
import csv
import functools
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from measurement import (
    PeakMemory,
    device_description,
    load_average,
    markdown_table,
    matmul_flops_per_second,
    median,
    mib,
    peak_bf16_flops,
    synchronize,
)
from workloads import (
    DEFAULT_WORK_DIR,
    TEACHERS,
    load_recipe_module,
    load_teacher,
    quiet_libraries,
    recipe_head,
    student_source,
    synthetic_corpus,
)

PIPELINES = ("ours", "upstream")
SAMPLE_RATE = 16000
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
# Timed batches whose FLOPs are counted (then scaled to all timed steps).
FLOP_COUNT_BATCHES = 8


# --------------------------------------------------------------------------
# The upstream recipe's training step, from stock SpeechBrain parts
# --------------------------------------------------------------------------


def _upstream_brain_class():
    """``UpstreamSenseBrain``, defined lazily (SpeechBrain imports slowly)."""
    import speechbrain as sb
    import torch.nn.functional as F

    class UpstreamSenseBrain(sb.Brain):
        """The upstream SENSE recipe's ``compute_forward`` and objective.

        The teacher encodes the batch's transcripts inside the step and
        returns CPU vectors, as upstream's ``BGEM3SentenceEmbeddings``
        (NumPy output) does; they are copied to the device.
        """

        def compute_forward(self, batch, stage):
            """Speech and teacher embeddings of one batch."""
            batch = batch.to(self.device)
            wavs, wav_lens = batch.sig
            # [B, samples] -> [B, T, D]; fbank on the CPU inside forward
            feats = self.modules.wav2vec2(wavs, wav_lens)
            # [B, T, D] -> [B, D], softmax over every frame, padding too
            embeddings = self.modules.attn_pooling(feats)
            if "projection" in self.modules:
                embeddings = self.modules.projection(embeddings)
            embeddings = F.normalize(embeddings, p=2, dim=-1)
            start = time.perf_counter()
            targets = self.hparams.teacher.encode(
                list(batch.sentence), batch_size=12
            ).to(self.device)
            self.hparams.clock["teacher"] += time.perf_counter() - start
            return embeddings, targets

        def compute_objectives(self, predictions, batch, stage):
            """Summed cosine distance, scaled (upstream: ``loss_scale``)."""
            speech, text = predictions
            cosine = torch.sum(speech.float() * text.float(), dim=-1)
            return (1.0 - cosine).sum() * self.hparams.loss_scale

        def init_optimizers(self):
            """Adadelta for the head, Adam for the encoder (upstream)."""
            head = [
                p
                for name, module in self.modules.items()
                if name != "wav2vec2"
                for p in module.parameters()
            ]
            self.optimizers_dict = {
                "model_optimizer": self.hparams.head_opt_class(head),
                "wav2vec_optimizer": self.hparams.encoder_opt_class(
                    self.modules.wav2vec2.parameters()
                ),
            }

        def freeze_optimizers(self, optimizers):
            """Upstream steps only the encoder's optimiser."""
            return {"wav2vec_optimizer": optimizers["wav2vec_optimizer"]}

    return UpstreamSenseBrain


class TimedCall:
    """Wraps a callable and adds its wall time to ``clock[key]``.

    Arguments
    ---------
    function : callable
        What to time (attribute access is forwarded to it).
    clock : dict
        Accumulates seconds.
    key : str
        Entry of ``clock``.
    """

    def __init__(self, function, clock, key):
        self.function = function
        self.clock = clock
        self.key = key

    def __call__(self, *args, **kwargs):
        """Calls the function, timing it."""
        start = time.perf_counter()
        out = self.function(*args, **kwargs)
        self.clock[self.key] += time.perf_counter() - start
        return out

    def __getattr__(self, name):
        """Forwards attribute access to the wrapped function."""
        return getattr(self.function, name)


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


# --------------------------------------------------------------------------
# Building the two pipelines
# --------------------------------------------------------------------------


def _optimizer_classes(options, fused):
    """The optimisers of both recipes (encoder: Adam; head: Adadelta).

    ``fused``: the encoder's Adam as one multi-tensor kernel (ours, as
    sense_cv.yaml sets it) or per tensor (upstream).
    """
    return {
        "head_opt_class": functools.partial(
            torch.optim.Adadelta, lr=1.0, rho=0.95, eps=1e-8
        ),
        "encoder_opt_class": functools.partial(
            torch.optim.Adam, lr=options["lr_encoder"], fused=fused
        ),
    }


def recipe_hparams(options, corpus):
    """The hyperparameters ``train.py``'s data functions read.

    Arguments
    ---------
    options : dict
        Benchmark options.
    corpus : dict
        Paths from :func:`workloads.synthetic_corpus`.

    Returns
    -------
    dict
        Like the recipe's loaded yaml, restricted to what is used.
    """
    from speechbrain_sense.data.sampling import (
        LanguageBalancedDynamicBatchSampler,
    )
    from speechbrain_sense.encoders.w2v_bert import W2VBertFeatures

    work_dir = Path(options["work_dir"])
    cuda = torch.device(options["device"]).type == "cuda"
    workers = options["num_workers"]
    sampler = functools.partial(
        LanguageBalancedDynamicBatchSampler,
        max_batch_seconds=options["max_batch_seconds"],
        max_batch_size=options["max_batch_size"],
        seed=options["seed"],
    )
    return {
        **corpus,
        "encoder_source": student_source(work_dir, options["config"]),
        "pretrained_cache": str(work_dir / "hf-cache"),
        "sample_rate": SAMPLE_RATE,
        # The same utterances as the upstream epoch: a weighted draw of
        # all of them, without replacement (the recipe draws with).
        "train_sampler": functools.partial(sampler, replacement=False),
        "eval_sampler": functools.partial(
            sampler, replacement=False, shuffle=False
        ),
        # Real corpora do not fit in RAM (sense_cv.yaml: False); the tiny
        # demo may keep every utterance's features in its workers.
        "cache_features_in_memory": options["cache_features_in_memory"],
        # The w2v-BERT student's input, as in sense_cv.yaml.
        "encoder_features": W2VBertFeatures,
        "dataloader_options": {
            "num_workers": workers,
            "persistent_workers": workers > 0,
            "pin_memory": cuda,
            # sense_cv.yaml's: 4 batches ahead per worker
            **({"prefetch_factor": 4} if workers else {}),
        },
        # --data-format shards: the recipe's stream_prepare, one pass over
        # the training audio per epoch, shards built by prepare().
        "shards_folder": shards_folder(options),
        "max_batch_seconds": options["max_batch_seconds"],
        "max_batch_size": options["max_batch_size"],
        "stream_sort_window": 512,
        "seed": options["seed"],
        "shard_errors": "raise",
        "epoch_audio_hours": None,
    }


def shards_folder(options):
    """Where prepare() writes the corpus's feature shards (one per corpus)."""
    import hashlib

    manifest = Path(options["corpus"]["train_csv"]).read_bytes()
    digest = hashlib.sha256(manifest).hexdigest()[:12]
    return str(
        Path(options["work_dir"]) / f"shards-{options['config']}-{digest}"
    )


def teacher_cache(options, corpus, teacher):
    """The recipe's teacher cache: every transcript of every split, once.

    What ``train.py``'s ``build_teacher_cache`` does, with the library's
    :class:`~speechbrain_sense.teachers.cache.TeacherEmbeddingCache`; a
    store that is already complete is only opened.

    Arguments
    ---------
    options : dict
        Benchmark options.
    corpus : dict
        Corpus paths.
    teacher : object
        The teacher.

    Returns
    -------
    TeacherEmbeddingCache
        The opened cache (its teacher dropped, as the recipe does).
    """
    from speechbrain_sense.teachers.cache import TeacherEmbeddingCache

    cache = TeacherEmbeddingCache(
        Path(options["work_dir"]) / f"teacher-cache-{options['config']}",
        teacher,
        dtype=options["cache_dtype"],
    )
    texts = []
    for split in ("train", "dev", "test"):
        with open(corpus[f"{split}_csv"], encoding="utf-8", newline="") as f:
            texts.extend(row["sentence"] for row in csv.DictReader(f))
    cache.build(texts, batch_size=64, device=options["device"])
    cache.teacher = None
    return cache


def build_ours(options, corpus):
    """Brain and training loader of this recipe.

    Arguments
    ---------
    options : dict
        Benchmark options.
    corpus : dict
        Corpus paths.

    Returns
    -------
    tuple
        ``(brain, loader, clock)``.
    """
    from speechbrain_sense.encoders.student import SenseStudent
    from speechbrain_sense.encoders.w2v_bert import SenseW2VBert

    recipe = load_recipe_module("train")
    teacher = load_teacher(
        options["teacher"], options["work_dir"], options["config"]
    )
    teacher_dim = teacher.dim
    hparams = recipe_hparams(options, corpus)
    cache = teacher_cache(options, corpus, teacher)  # built beforehand
    del teacher
    if options["data_format"] == "shards":
        loaders, sampler = recipe.stream_prepare(hparams, cache, ("train",))
    else:
        loaders, sampler = recipe.dataio_prepare(hparams, cache)
    loader = loaders["train"]
    torch.manual_seed(options["seed"])
    encoder = SenseW2VBert(
        hparams["encoder_source"],
        save_path=hparams["pretrained_cache"],
        freeze=False,
        apply_spec_augment=options["spec_augment"],
        gradient_checkpointing=options["gradient_checkpointing"],
    )
    head = recipe_head(encoder.output_dim, teacher_dim)
    brain = recipe.SENSEBrain(
        modules={"student": SenseStudent(encoder, head)},
        hparams={
            "loss_scale": 1.0,
            "loss_reduction": "mean",
            "contrastive_weight": 0.0,
            "contrastive_temperature": 0.05,
            "max_load_failures": 0,
            **_optimizer_classes(options, options["fused_optimizer"]),
        },
        run_opts=_run_opts(options, options["precision"], compile=True),
        checkpointer=None,
    )
    brain.train_sampler = sampler
    return brain, loader, defaultdict(float)


def build_upstream(options, corpus):
    """Brain and training loader of the upstream-style baseline.

    Arguments
    ---------
    options : dict
        Benchmark options.
    corpus : dict
        Corpus paths.

    Returns
    -------
    tuple
        ``(brain, loader, clock)``.
    """
    import speechbrain as sb
    from speechbrain.dataio.dataloader import make_dataloader
    from speechbrain.integrations.huggingface.w2v_bert import W2VBert
    from speechbrain.nnet.pooling import AttentionPooling

    from speechbrain_sense.audio import load_audio

    device = torch.device(options["device"])
    teacher = load_teacher(
        options["teacher"],
        options["work_dir"],
        options["config"],
        threads=options["threads"] or 2,
    )
    if hasattr(teacher, "model"):
        teacher.model.to(device)
        if device.type == "cuda":
            teacher.model.half()  # upstream: BGE-M3 with use_fp16: True

    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(
        corpus["train_csv"], replacements={"data_root": corpus["data_folder"]}
    )

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        """Reads a clip at the model's rate, as the upstream recipe does."""
        return load_audio(wav, SAMPLE_RATE)

    dataset.add_dynamic_item(audio_pipeline)
    dataset.set_output_keys(["id", "sig", "sentence"])
    workers = options["num_workers"]
    loader = make_dataloader(
        dataset,
        batch_size=2,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )

    work_dir = Path(options["work_dir"])
    torch.manual_seed(options["seed"])
    encoder = W2VBert(
        student_source(work_dir, options["config"]),
        save_path=str(work_dir / "hf-cache"),
        freeze=False,
    )
    clock = defaultdict(float)
    # Time the fbank extraction that W2VBert runs inside forward.
    encoder.feature_extractor = TimedCall(
        encoder.feature_extractor, clock, "in-step fbank"
    )
    width = encoder.model.config.hidden_size
    modules = {"wav2vec2": encoder, "attn_pooling": AttentionPooling(width)}
    if teacher.dim != width:
        modules["projection"] = torch.nn.Sequential(
            torch.nn.Linear(width, teacher.dim), torch.nn.Tanh()
        )
    brain = _upstream_brain_class()(
        modules=modules,
        hparams={
            "teacher": teacher,
            "loss_scale": 50.0,
            "clock": clock,
            **_optimizer_classes(options, fused=False),
        },
        run_opts=_run_opts(options, "fp32", compile=False),
        checkpointer=None,
    )
    return brain, loader, clock


def _run_opts(options, precision, compile):
    """Brain ``run_opts`` for one precision, with torch.compile if asked."""
    run_opts = {
        "device": options["device"],
        "precision": precision,
        "max_grad_norm": 5.0,
        "grad_accumulation_factor": 1,
    }
    if compile and options["compile"]:
        run_opts.update(
            compile=True,
            compile_module_keys=["student"],
            compile_using_dynamic_shape_tracing=True,
        )
    return run_opts


# --------------------------------------------------------------------------
# One measured run (child process)
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


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


SWEEP_VARIANTS = {
    False: "ours: decode + fbank in the worker every epoch",
    True: "ours: features kept in worker memory (sense_tiny.yaml)",
}


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
