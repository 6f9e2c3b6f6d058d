"""This recipe's training pipeline, built as ``recipes/CommonVoice/SENSE`` does.

The recipe's own ``dataio_prepare`` / ``stream_prepare`` and ``SENSEBrain``
(loaded from its ``train.py``), fed with the hyperparameters its yaml would
give, and the teacher cache built once before any timed step.

Authors
 * speechbrain-sense developers 2026
"""

import csv
import functools
from collections import defaultdict
from pathlib import Path

import torch
from training_setup import SAMPLE_RATE, optimizer_classes, run_opts
from workloads import (
    load_recipe_module,
    load_teacher,
    recipe_head,
    student_source,
)


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
            **optimizer_classes(options, options["fused_optimizer"]),
        },
        run_opts=run_opts(options, options["precision"], compile=True),
        checkpointer=None,
    )
    brain.train_sampler = sampler
    return brain, loader, defaultdict(float)
