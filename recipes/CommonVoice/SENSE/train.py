#!/usr/bin/env python3
"""Recipe for training a SENSE speech encoder on Common Voice.

A w2v-BERT 2.0 encoder with length-masked attentive pooling learns to map
an utterance onto the frozen sentence embedding (BGE-M3 in the paper) of
its transcript, with a cosine loss, on many languages at once. Languages
are re-balanced with the SAMU-XLSR rule and batches are built by total
audio duration. The teacher embeds every transcript once, before training,
into an on-disk cache. Each epoch is validated with speech-to-text
retrieval Recall@1/5 per language; the best R@1 checkpoint is tested.

To run this recipe, do the following:
> python train.py hparams/sense_cv.yaml --data_folder=/path/to/cv

Multi-GPU:
> torchrun --nproc_per_node=8 train.py hparams/sense_cv.yaml --data_folder=...

CPU demo on a synthetic corpus (generated when data_folder is empty):
> python train.py hparams/sense_tiny.yaml

Authors
 * speechbrain-sense developers 2026
"""

import json
import os
import sys
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain.utils.logger import get_logger

from speechbrain_sense.data.dataio import (
    LOAD_ERROR_KEY,
    LoadFailureGuard,
    LoadTolerantBatch,
    audio_feature_pipeline,
    loader_options,
    manifest_datasets,
)
from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.data.sampling import (
    load_language_ratios,
    utterance_weights,
)
from speechbrain_sense.data.shards import (
    INDEX_FILE,
    build_shards,
    check_fingerprint,
    check_manifests,
    load_index,
)
from speechbrain_sense.data.streaming import ShardStream, StreamLoader
from speechbrain_sense.encoders.w2v_bert import W2VBertFeatures
from speechbrain_sense.retrieval import chance_recall, speech_to_text_recall
from speechbrain_sense.synthetic import synthesize_if_empty
from speechbrain_sense.teachers.cache import TeacherEmbeddingCache
from speechbrain_sense.training.arguments import parse_arguments
from speechbrain_sense.training.distributed import ddp_destroy_group
from speechbrain_sense.training.losses import cosine_alignment_loss, info_nce

logger = get_logger(__name__)


class SENSEBrain(sb.Brain):
    """Teacher-student alignment of utterance and sentence embeddings."""

    def fit_batch(self, batch):
        """Reports clips that failed to load, then trains on the others."""
        self._load_failures().check(batch, sb.Stage.TRAIN)
        return super().fit_batch(batch)

    def evaluate_batch(self, batch, stage):
        """Reports clips that failed to load, then evaluates the others."""
        self._load_failures().check(batch, stage)
        return super().evaluate_batch(batch, stage)

    def _load_failures(self):
        """The run's :class:`LoadFailureGuard` (``max_load_failures``)."""
        if not hasattr(self, "load_failure_guard"):
            self.load_failure_guard = LoadFailureGuard(
                self.hparams.max_load_failures
            )
        return self.load_failure_guard

    def compute_forward(self, batch, stage):
        """Utterance embeddings ``[B, D]`` of a batch of features."""
        batch = batch.to(self.device)
        features, _ = batch.features
        return self.modules.student(features, batch.num_frames)

    def compute_objectives(self, predictions, batch, stage):
        """Cosine distance to the cached teacher embeddings (+ InfoNCE)."""
        targets = batch.teacher_embedding.data
        loss = cosine_alignment_loss(
            predictions,
            targets,
            scale=self.hparams.loss_scale,
            reduction=self.hparams.loss_reduction,
        )
        if self.hparams.contrastive_weight > 0 and len(predictions) > 1:
            loss = loss + self.hparams.contrastive_weight * info_nce(
                predictions, targets, self.hparams.contrastive_temperature
            )
        if stage != sb.Stage.TRAIN:
            self.collected["ids"].extend(batch.id)
            self.collected["embeddings"].append(predictions.detach().cpu())
            self.collected["sentences"].extend(batch.sentence)
            self.collected["languages"].extend(batch.lang)
        return loss

    def init_optimizers(self):
        """Separate optimisers for the encoder and the pooling head.

        The upstream recipe built a head optimiser that was never stepped;
        here both sit in ``optimizers_dict``, which ``fit_batch`` steps,
        and both are checkpointed.
        """
        student = getattr(self.modules.student, "module", self.modules.student)
        encoder_params = [
            p for p in student.encoder.parameters() if p.requires_grad
        ]
        self.optimizers_dict = {
            "head_optimizer": self.hparams.head_opt_class(
                student.head.parameters()
            )
        }
        if encoder_params:
            self.optimizers_dict["encoder_optimizer"] = (
                self.hparams.encoder_opt_class(encoder_params)
            )
        self.optimizer = self.optimizers_dict["head_optimizer"]
        if self.checkpointer is not None:
            for name, optimizer in self.optimizers_dict.items():
                self.checkpointer.add_recoverable(name, optimizer)

    def on_stage_start(self, stage, epoch=None):
        """Resets the buffers of evaluation embeddings."""
        self.collected = {
            "ids": [],
            "embeddings": [],
            "sentences": [],
            "languages": [],
        }

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Retrieval metrics, LR annealing, checkpointing, metric tables."""
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        metrics = self._retrieval_metrics()
        stats.update(
            {
                "cosine": metrics["cosine"],
                "R@1": metrics["mean"]["R@1"],
                "R@5": metrics["mean"]["R@5"],
                "R@1_all_languages": metrics["all"]["R@1"],
            }
        )
        name = "dev" if stage == sb.Stage.VALID else "test"
        if if_main_process():
            write_metric_tables(metrics, self.hparams.output_folder, name)
        if stage == sb.Stage.VALID:
            # NewBob anneals when this stops falling: 1 - dev R@1 (ours) or
            # the dev loss (the authors').
            if self.hparams.annealing_metric == "loss":
                annealed = stats["loss"]
            else:
                annealed = 1.0 - stats["R@1"]
            lrs = {}
            for key, optimizer in self.optimizers_dict.items():
                annealing = self.hparams.lr_annealing[key]
                old, new = annealing(annealed)
                sb.nnet.schedulers.update_learning_rate(optimizer, new)
                lrs[f"lr_{key.split('_')[0]}"] = old
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, **lrs},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"R@1": stats["R@1"], "epoch": epoch},
                max_keys=["R@1"],
                num_to_keep=self.hparams.checkpoints_to_keep,
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )

    def _retrieval_metrics(self):
        """Gathers embeddings from every rank and scores retrieval."""
        local = {
            "ids": self.collected["ids"],
            "embeddings": torch.cat(self.collected["embeddings"]),
            "sentences": self.collected["sentences"],
            "languages": self.collected["languages"],
        }
        shards = [local]
        if torch.distributed.is_initialized():
            shards = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(shards, local)
        # Deduplicate by utterance id and sort, so every rank computes
        # identical metrics whatever the sharding was.
        seen = {}
        for shard in shards:
            for i, utt_id in enumerate(shard["ids"]):
                seen[utt_id] = (
                    shard["embeddings"][i],
                    shard["sentences"][i],
                    shard["languages"][i],
                )
        ids = sorted(seen)
        embeddings = torch.stack([seen[i][0] for i in ids])
        sentences = [seen[i][1] for i in ids]
        languages = [seen[i][2] for i in ids]
        cache = self.teacher_cache
        keys = {text: cache[text] for text in set(sentences)}
        metrics = speech_to_text_recall(
            embeddings, keys, sentences, languages, ks=(1, 5, 10)
        )
        targets = torch.stack([keys[text] for text in sentences])
        metrics["cosine"] = (
            torch.nn.functional.cosine_similarity(embeddings, targets)
            .mean()
            .item()
        )
        return metrics


def write_metric_tables(metrics, output_folder, name):
    """Writes ``<name>_metrics.json`` and a markdown table of retrieval.

    Arguments
    ---------
    metrics : dict
        Output of ``speech_to_text_recall`` plus ``"cosine"``.
    output_folder : str
        Experiment folder.
    name : str
        ``"dev"`` or ``"test"``.

    Returns
    -------
    str
        The markdown table.
    """
    lines = [
        f"Speech-to-text retrieval on {name} "
        f"(mean cosine to teacher: {metrics['cosine']:.3f})",
        "",
        "| language | utterances | candidates | R@1 | R@5 | R@10 | chance R@1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for lang, row in metrics.items():
        if lang == "cosine":
            continue
        chance = chance_recall(row["candidates"]) if lang != "mean" else None
        lines.append(
            f"| {lang} | {row['count']} | {row['candidates']} | "
            f"{100 * row['R@1']:.1f} | {100 * row['R@5']:.1f} | "
            f"{100 * row['R@10']:.1f} | "
            + (f"{100 * chance:.1f} |" if chance is not None else "- |")
        )
    table = "\n".join(lines) + "\n"
    out = Path(output_folder)
    (out / f"{name}_metrics.md").write_text(table, encoding="utf-8")
    (out / f"{name}_metrics.json").write_text(json.dumps(metrics, indent=1))
    return table


def manifest_files(hparams, splits=("train", "dev", "test")):
    """The manifest CSV file of each split.

    Arguments
    ---------
    hparams : dict
        The hyperparameters (``train_csv``, ``dev_csv``, ``test_csv``).
    splits : sequence of str
        The splits wanted, in order.

    Returns
    -------
    dict
        Split name -> manifest CSV file.
    """
    files = {
        "train": hparams["train_csv"],
        "dev": hparams["dev_csv"],
        "test": hparams["test_csv"],
    }
    return {split: files[split] for split in splits}


def prepared_splits(hparams):
    """The splits whose manifests hold utterances (train and dev must).

    A release without any ``test.tsv`` trains and validates, and is not
    tested; without dev data there is no model selection.
    """
    splits = []
    for split, csv_file in manifest_files(hparams).items():
        with open(csv_file, encoding="utf-8") as f:
            if sum(1 for _ in zip(range(2), f)) > 1:
                splits.append(split)
            elif split != "test":
                raise ValueError(
                    f"{csv_file} holds no utterance: the "
                    f"recipe needs {split} data (see prepare_report.json)"
                )
            else:
                logger.warning(
                    "no test utterance in any language: the model is "
                    "trained and validated, not tested"
                )
    return splits


def loader_generator(seed):
    """A DataLoader's own generator (its workers' seeds).

    Without one, creating each epoch's iterator draws from the global
    generator, whose state the checkpoints restore (``RandomState``): a
    resumed run would then draw once more than the interrupted one and
    drift from it.
    """
    return torch.Generator().manual_seed(int(seed))


def dataio_prepare(hparams, teacher_cache, splits=("train", "dev", "test")):
    """Data loaders of the splits, from the manifests' audio.

    Audio decoding, 16 kHz resampling and w2v-BERT feature extraction run
    in the DataLoader workers; the teacher target is a cache lookup.
    """
    datasets = manifest_datasets(
        manifest_files(hparams, splits), hparams["data_folder"]
    )
    audio_pipeline = audio_feature_pipeline(
        hparams["encoder_source"],
        sample_rate=hparams["sample_rate"],
        cache_dir=hparams["pretrained_cache"],
        cache_in_memory=hparams["cache_features_in_memory"],
        tolerate_load_errors=True,
        features_class=hparams["encoder_features"],
    )

    @sb.utils.data_pipeline.takes("sentence")
    @sb.utils.data_pipeline.provides("teacher_embedding")
    def teacher_pipeline(sentence):
        """The cached teacher embedding of the transcript."""
        return teacher_cache[sentence]

    keys = ["id", "features", "num_frames", "teacher_embedding"]
    keys += ["sentence", "lang", LOAD_ERROR_KEY]
    for dataset in datasets.values():
        dataset.add_dynamic_item(audio_pipeline)
        dataset.add_dynamic_item(teacher_pipeline)
        dataset.set_output_keys(keys)

    options = loader_options(hparams["dataloader_options"])
    loaders = {}
    for split, dataset in datasets.items():
        rows = dataset.data
        durations = [float(rows[i]["duration"]) for i in dataset.data_ids]
        if split == "train":
            ratios = load_language_ratios(hparams["language_ratios_file"])
            languages = [rows[i]["lang"] for i in dataset.data_ids]
            sampler = hparams["train_sampler"](
                durations, utterance_weights(languages, ratios)
            )
        else:
            # Evaluation: every utterance once, sharded across DDP ranks.
            sampler = hparams["eval_sampler"](durations, None)
        # A clip that fails to load is left out of its batch and reported
        # by SENSEBrain (LoadFailureGuard), not raised inside a worker.
        loaders[split] = make_dataloader(
            dataset,
            batch_sampler=sampler,
            collate_fn=LoadTolerantBatch,
            generator=loader_generator(hparams["seed"]),
            **options,
        )
    # Brain.fit calls set_epoch on it every epoch (with or without DDP);
    # mid-epoch checkpoints resume at the right batch: the sampler's plan
    # is a pure function of (seed, epoch).
    return loaders, loaders["train"].batch_sampler


class TeacherTargets:
    """Adds the cached teacher embedding of a streamed clip's transcript.

    Arguments
    ---------
    cache : TeacherEmbeddingCache
        The built cache.
    """

    def __init__(self, cache):
        self.cache = cache

    def __call__(self, sample):
        """Adds the cached teacher embedding of the sample's sentence."""
        return {"teacher_embedding": self.cache[sample["sentence"]]}


def shards_prepare(hparams, splits):
    """Builds the shards on the main process when none are verified yet.

    On a cluster, build them beforehand with
    ``python -m speechbrain_sense.data.shards build`` (one job per node).
    """
    if (Path(hparams["shards_folder"]) / INDEX_FILE).is_file():
        return
    build_shards(
        manifest_files(hparams, splits),
        hparams["shards_folder"],
        hparams["encoder_source"],
        data_root=hparams["data_folder"],
        store=hparams["shard_store"],
        samples_per_shard=hparams["samples_per_shard"],
        min_duration=hparams["min_duration"],
        max_duration=hparams["max_duration"],
        max_bad_fraction=hparams["max_bad_fraction"],
        seed=hparams["seed"],
        progress=False,
    )


def stream_prepare(hparams, teacher_cache, splits=("train", "dev", "test")):
    """Data loaders of the splits, streamed from the shards.

    Training batches mix the languages with the SAMU-XLSR ratios and an
    epoch is ``epoch_audio_hours`` of speech; dev and test yield every
    clip once.
    """
    features = W2VBertFeatures(
        hparams["encoder_source"], cache_dir=hparams["pretrained_cache"]
    )
    check_fingerprint(
        load_index(hparams["shards_folder"]),
        features.extractor,
        hparams["shards_folder"],
    )
    check_manifests(
        hparams["shards_folder"],
        manifest_files(hparams, splits),
    )
    options = loader_options(hparams["dataloader_options"])
    common = {
        "max_batch_seconds": hparams["max_batch_seconds"],
        "max_batch_size": hparams["max_batch_size"],
        "sort_window": hparams["stream_sort_window"],
        "seed": hparams["seed"],
        "num_workers": options.get("num_workers", 0),
        "on_error": hparams["shard_errors"],
        "features": features,
        "extra_items": TeacherTargets(teacher_cache),
    }
    streams = {
        "train": ShardStream(
            hparams["shards_folder"],
            "train",
            language_ratios=load_language_ratios(
                hparams["language_ratios_file"]
            ),
            epoch_audio_hours=hparams["epoch_audio_hours"],
            **common,
        )
    }
    for split in splits[1:]:
        streams[split] = ShardStream(hparams["shards_folder"], split, **common)
    loaders = {
        split: StreamLoader(
            stream, generator=loader_generator(hparams["seed"]), **options
        )
        for split, stream in streams.items()
    }
    # Brain.fit calls set_epoch on the stream every epoch; the loader
    # checkpoints the batches yielded, for mid-epoch resumption.
    return loaders, streams["train"]


def local_device():
    """This process's GPU (``LOCAL_RANK`` under torchrun) or the CPU."""
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"


def build_teacher_cache(hparams):
    """Embeds every transcript of every split once (all ranks share)."""
    cache = TeacherEmbeddingCache(
        hparams["teacher_cache_folder"],
        hparams["teacher"],
        dtype=hparams["teacher_cache_dtype"],
    )
    texts = []
    for csv_file in manifest_files(hparams).values():
        manifest = read_manifest(csv_file, path_columns=())
        texts.extend(row["sentence"] for row in manifest.values())
    cache.build(
        texts, batch_size=hparams["teacher_batch_size"], device=local_device()
    )
    # The teacher is no longer needed: free its (GPU) memory.
    cache.teacher = None
    hparams["teacher"] = None
    torch.cuda.empty_cache()
    return cache


if __name__ == "__main__":
    # SpeechBrain's, with a fractional --ckpt_interval_minutes accepted.
    hparams_file, run_opts, overrides = parse_arguments(sys.argv[1:])
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    # Demo configuration: synthesise a corpus into an empty data_folder.
    if hparams["synthetic_corpus"]:
        from speechbrain_sense.synthetic.common_voice import make_synthetic_cv

        run_on_main(
            synthesize_if_empty,
            args=[hparams["data_folder"], make_synthetic_cv],
            kwargs=hparams["synthetic_corpus"],
        )

    from common_voice_sense_prepare import prepare_common_voice  # noqa: E402

    run_on_main(
        prepare_common_voice,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "languages": hparams["languages"],
            "min_duration": hparams["min_duration"],
            "max_duration": hparams["max_duration"],
            "language_alpha": hparams["language_alpha"],
            "allow_empty_languages": hparams["allow_empty_languages"],
            "skip_bad_rows": hparams["skip_bad_rows"],
            "verify_clips": hparams["verify_clips"],
            "max_bad_fraction": hparams["max_bad_fraction"],
            "num_workers": hparams["prepare_workers"],
            "language_filter": hparams["language_filter"],
            "common_voice_release": hparams["common_voice_release"],
        },
    )

    if hparams["annealing_metric"] not in ("retrieval", "loss"):
        raise ValueError(
            "annealing_metric must be retrieval (1 - dev R@1) or loss, not "
            f"{hparams['annealing_metric']!r}"
        )
    if (
        hparams["data_format"] == "shards"
        and hparams["encoder_features"] is not W2VBertFeatures
    ):
        raise ValueError(
            "data_format: shards stores w2v-BERT features; train an encoder "
            "with other input (encoder_features) from the manifests"
        )
    if hparams["data_format"] not in ("manifests", "shards"):
        raise ValueError(
            f"data_format must be manifests or shards: {hparams['data_format']}"
        )
    splits = prepared_splits(hparams)
    if hparams["data_format"] == "shards":
        run_on_main(shards_prepare, args=[hparams, splits])

    teacher_cache = build_teacher_cache(hparams)
    if hparams["data_format"] == "shards":
        loaders, train_sampler = stream_prepare(hparams, teacher_cache, splits)
    else:
        loaders, train_sampler = dataio_prepare(hparams, teacher_cache, splits)
    hparams["checkpointer"].add_recoverable("train_loader", loaders["train"])
    brain = SENSEBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    # Brain.fit calls train_sampler.set_epoch(epoch) every epoch (with or
    # without DDP); the sampler or stream re-draws from it.
    brain.train_sampler = train_sampler
    brain.teacher_cache = teacher_cache
    brain.fit(
        brain.hparams.epoch_counter,
        loaders["train"],
        loaders["dev"],
    )
    if "test" in loaders:
        brain.evaluate(loaders["test"], max_key="R@1")
    if if_main_process() and "test" in loaders:
        table = (Path(hparams["output_folder"]) / "test_metrics.md").read_text()
        best = brain.checkpointer.find_checkpoint(max_key="R@1")
        print(f"\n{table}\nTrained model (best dev R@1): {best.path}")
    ddp_destroy_group()
