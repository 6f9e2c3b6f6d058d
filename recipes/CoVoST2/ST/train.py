#!/usr/bin/env python3
"""Recipe for speech translation (CoVoST 2 X->En) on a SENSE encoder.

The frames of a SENSE speech encoder (frozen or fine-tuned; a plain
w2v-BERT 2.0 gives the non-semantic baseline) are shortened by a strided
convolutional length adaptor and read by an autoregressive text decoder:
a Transformer trained from scratch on a SentencePiece English vocabulary
(``st.yaml``), or the decoder of a pretrained mBART-50 (``st_mbart.yaml``).
Training minimises the label-smoothed NLL of the reference translation
under teacher forcing; dev is beam-searched every ``valid_search_interval``
epochs and test with the checkpoint of best dev token accuracy. BLEU and
chrF (sacreBLEU, corpus level) per source language, pooled over all
utterances, and averaged over the language pairs (all of them, and per
CoVoST 2 resource group: high, mid, low) go to
``<output_folder>/{dev,test}_bleu.{json,md}`` with their sacreBLEU
signatures, the hypotheses to ``{dev,test}_translations.tsv``.
``st_x_en.yaml`` trains on all 21 CoVoST 2 X->En pairs.

To run this recipe, do the following:
> python train.py hparams/st.yaml --data_folder=/path/to/cv4 \
>     --covost_folder=/path/to/covost_tsvs --encoder_source=/path/to/sense

Multi-GPU:
> torchrun --nproc_per_node=4 train.py hparams/st.yaml --data_folder=...

CPU demo on a synthetic corpus (generated when data_folder is empty):
> python train.py hparams/st_tiny.yaml

Authors
 * speechbrain-sense developers 2026
"""

import csv
import json
import sys
from pathlib import Path

import speechbrain as sb
import torch
from covost2_prepare import COVOST2_X_EN_RESOURCE_GROUPS, prepare_covost2
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain.utils.logger import get_logger

from speechbrain_sense.data.dataio import (
    audio_feature_pipeline,
    loader_options,
    manifest_datasets,
)
from speechbrain_sense.encoders.w2v_bert import frame_mask
from speechbrain_sense.metrics.translation import translation_scores
from speechbrain_sense.synthetic import synthesize_if_empty
from speechbrain_sense.tasks.seq2seq import label_smoothed_nll
from speechbrain_sense.training.distributed import ddp_destroy_group

logger = get_logger(__name__)


def _unwrap(module):
    """The module inside a DDP wrapper (for its non-forward methods)."""
    return getattr(module, "module", module)


class STBrain(sb.Brain):
    """Speech encoder -> length adaptor -> text decoder."""

    def compute_forward(self, batch, stage):
        """Adapted speech frames ``[B, S, D]`` and their counts ``[B]``."""
        batch = batch.to(self.device)
        features, _ = batch.features
        frames, counts = self.modules.encoder(features, batch.num_frames)
        return self.modules.adaptor(frames, counts)

    def compute_objectives(self, predictions, batch, stage):
        """Label-smoothed NLL; beam search on evaluation epochs."""
        memory, counts = predictions
        decoder = _unwrap(self.modules.decoder)
        targets, target_counts = decoder.encode_targets(batch.translation)
        targets = targets.to(self.device)
        target_counts = target_counts.to(self.device)
        # Through the (DDP-wrapped) forward, so gradients synchronise.
        log_probs = self.modules.decoder(
            memory, counts, decoder.decoder_inputs(targets)
        )
        loss = label_smoothed_nll(
            log_probs, targets, target_counts, decoder.label_smoothing
        )
        if stage != sb.Stage.TRAIN:
            mask = frame_mask(target_counts, targets.shape[1])
            correct = (log_probs.argmax(-1) == targets) & mask
            self.token_counts[0] += int(correct.sum())
            self.token_counts[1] += int(mask.sum())
            if self.decode_this_stage:
                self.collected["ids"].extend(batch.id)
                self.collected["languages"].extend(batch.lang)
                self.collected["references"].extend(batch.translation)
                self.collected["hypotheses"].extend(
                    decoder.decode(memory, counts)
                )
        return loss

    def init_optimizers(self):
        """One optimiser for adaptor + decoder, one for a trained encoder."""
        encoder_params = [
            p for p in self.modules.encoder.parameters() if p.requires_grad
        ]
        model_params = [
            p
            for name in ("adaptor", "decoder")
            for p in self.modules[name].parameters()
            if p.requires_grad
        ]
        self.optimizers_dict = {
            "model_optimizer": self.hparams.model_opt_class(model_params)
        }
        if encoder_params:
            self.optimizers_dict["encoder_optimizer"] = (
                self.hparams.encoder_opt_class(encoder_params)
            )
        self.optimizer = self.optimizers_dict["model_optimizer"]
        if self.checkpointer is not None:
            for name, optimizer in self.optimizers_dict.items():
                self.checkpointer.add_recoverable(name, optimizer)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Warm-up (Noam) learning rate of the decoder, per update."""
        if should_step:
            self.hparams.lr_scheduler(self.optimizers_dict["model_optimizer"])

    def on_stage_start(self, stage, epoch=None):
        """Resets the buffers; decides whether this stage beam-searches."""
        self.collected = {
            "ids": [],
            "languages": [],
            "references": [],
            "hypotheses": [],
        }
        self.token_counts = [0, 0]
        last = epoch == self.hparams.epoch_counter.limit
        self.decode_this_stage = stage == sb.Stage.TEST or (
            stage == sb.Stage.VALID
            and (epoch % self.hparams.valid_search_interval == 0 or last)
        )

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Token accuracy, BLEU/chrF reports, checkpointing."""
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        stats["ACC"] = self._accuracy()
        name = "dev" if stage == sb.Stage.VALID else "test"
        if self.decode_this_stage:
            scores = self._translation_scores(name)
            stats["BLEU"] = scores["all"]["BLEU"]
            stats["chrF"] = scores["all"]["chrF"]
            stats["BLEU_pair_avg"] = scores["averages"]["all_pairs"]["BLEU"]
        if stage == sb.Stage.VALID:
            lr = self.optimizers_dict["model_optimizer"].param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"ACC": stats["ACC"], "epoch": epoch},
                max_keys=["ACC"],
                num_to_keep=self.hparams.checkpoints_to_keep,
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )

    def _accuracy(self):
        """Teacher-forced next-token accuracy over every rank's tokens."""
        counts = torch.tensor(self.token_counts, dtype=torch.float64)
        if torch.distributed.is_initialized():
            counts = counts.to(self.device)
            torch.distributed.all_reduce(counts)
        return float(counts[0] / counts[1].clamp(min=1))

    def _translation_scores(self, name):
        """Gathers every rank's hypotheses, scores and writes the report."""
        shards = [self.collected]
        if torch.distributed.is_initialized():
            shards = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(shards, self.collected)
        # Deduplicated by utterance id and sorted: every rank computes the
        # same scores whatever the sharding was.
        rows = {}
        for shard in shards:
            for i, utt_id in enumerate(shard["ids"]):
                rows[utt_id] = (
                    shard["languages"][i],
                    shard["references"][i],
                    shard["hypotheses"][i],
                )
        ids = sorted(rows)
        languages = [rows[i][0] for i in ids]
        references = [rows[i][1] for i in ids]
        hypotheses = [rows[i][2] for i in ids]
        scores = translation_scores(hypotheses, references, languages)
        scores["averages"] = pair_averages(
            scores, COVOST2_X_EN_RESOURCE_GROUPS, self.hparams.languages
        )
        if if_main_process():
            write_translation_report(
                self.hparams.output_folder,
                name,
                ids,
                languages,
                references,
                hypotheses,
                scores,
            )
        return scores


def pair_averages(scores, groups, languages):
    """BLEU and chrF averaged over language pairs: all, and per group.

    The mean of the per-pair corpus scores, each pair weighing the same
    (the "average" of multilingual ST papers), unlike the ``all`` row of
    ``translation_scores``, a corpus score over the pooled utterances.

    Arguments
    ---------
    scores : dict
        Output of ``translation_scores`` (``"all"``, ``"signatures"`` and
        one row per source language).
    groups : dict
        Group name -> its source languages
        (``COVOST2_X_EN_RESOURCE_GROUPS``).
    languages : list of str
        The source languages trained on (``hparams.languages``): one
        without a scored utterance is listed as missing, and logged.

    Returns
    -------
    dict
        ``"all_pairs"`` and one entry per group, each ``{"pairs": the
        scored languages, "of": how many there are (trained on, or in the
        group), "BLEU", "chrF"}`` (``None`` scores for a group with no
        scored pair); ``"all_pairs"`` also has ``"missing"``.
    """
    pairs = [lang for lang in scores if lang not in ("all", "signatures")]
    missing = [lang for lang in languages if lang not in pairs]
    if missing:
        logger.warning(f"no scored utterance for {missing}: not averaged")
    subsets = {"all_pairs": (pairs, len(languages))}
    for group, members in groups.items():
        subsets[group] = ([x for x in members if x in pairs], len(members))
    averages = {}
    for name, (subset, size) in subsets.items():
        row = {"pairs": subset, "of": size, "BLEU": None, "chrF": None}
        for metric in ("BLEU", "chrF") if subset else ():
            values = [scores[lang][metric] for lang in subset]
            row[metric] = sum(values) / len(values)
        averages[name] = row
    averages["all_pairs"]["missing"] = missing
    return averages


def write_translation_report(
    output_folder, name, ids, languages, references, hypotheses, scores
):
    """Writes the hypotheses and the BLEU/chrF tables of one split.

    Files: ``<name>_translations.tsv`` (``ID, lang, reference,
    hypothesis``; csv-quoted, so any text round-trips),
    ``<name>_bleu.json`` (``translation_scores`` output) and
    ``<name>_bleu.md`` (a table with the sacreBLEU signatures).

    Arguments
    ---------
    output_folder : str
        Experiment folder.
    name : str
        ``"dev"`` or ``"test"``.
    ids, languages, references, hypotheses : list of str
        One entry per utterance.
    scores : dict
        Output of ``translation_scores``, with ``"averages"`` from
        ``pair_averages``.

    Returns
    -------
    str
        The markdown tables.
    """
    out = Path(output_folder)
    with open(
        out / f"{name}_translations.tsv", "w", encoding="utf-8", newline=""
    ) as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["ID", "lang", "reference", "hypothesis"])
        writer.writerows(zip(ids, languages, references, hypotheses))
    lines = [
        f"Speech translation into English on {name}",
        "",
        "| source | utterances | BLEU | chrF |",
        "|---|---|---|---|",
    ]
    for lang, row in scores.items():
        if lang in ("signatures", "averages"):
            continue
        label = "all (pooled)" if lang == "all" else lang
        lines.append(
            f"| {label} | {row['count']} | {row['BLEU']:.2f} | "
            f"{row['chrF']:.2f} |"
        )
    lines += [
        "",
        "Mean over language pairs (CoVoST 2 resource groups):",
        "",
        "| pairs | scored | BLEU | chrF |",
        "|---|---|---|---|",
    ]
    for group, row in scores["averages"].items():
        label = "all pairs" if group == "all_pairs" else f"{group}-resource"
        scored = f"{len(row['pairs'])} of {row['of']}"
        if row["pairs"] and group != "all_pairs":
            scored += f" ({', '.join(row['pairs'])})"
        values = [
            "-" if row[metric] is None else f"{row[metric]:.2f}"
            for metric in ("BLEU", "chrF")
        ]
        lines.append(f"| {label} | {scored} | {values[0]} | {values[1]} |")
    lines += [
        "",
        f"BLEU signature: `{scores['signatures']['BLEU']}`",
        f"chrF signature: `{scores['signatures']['chrF']}`",
    ]
    table = "\n".join(lines) + "\n"
    (out / f"{name}_bleu.md").write_text(table, encoding="utf-8")
    (out / f"{name}_bleu.json").write_text(json.dumps(scores, indent=1))
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


def dataio_prepare(hparams):
    """Datasets and duration-batched data loaders of the three splits.

    Audio decoding, 16 kHz resampling and w2v-BERT feature extraction run
    in the DataLoader workers; the translations are tokenised by the
    decoder, per batch.
    """
    datasets = manifest_datasets(
        manifest_files(hparams), hparams["data_folder"]
    )
    audio_pipeline = audio_feature_pipeline(
        hparams["encoder_source"],
        sample_rate=hparams["sample_rate"],
        cache_dir=hparams["pretrained_cache"],
        cache_in_memory=hparams["cache_features_in_memory"],
    )

    for dataset in datasets.values():
        dataset.add_dynamic_item(audio_pipeline)
        dataset.set_output_keys(
            ["id", "features", "num_frames", "translation", "lang"]
        )

    options = loader_options(hparams["dataloader_options"])
    samplers = {
        "train": hparams["train_sampler"],
        "dev": hparams["eval_sampler"],
        "test": hparams["eval_sampler"],
    }
    loaders = {}
    for split, dataset in datasets.items():
        rows = dataset.data
        durations = [float(rows[i]["duration"]) for i in dataset.data_ids]
        sampler_class = samplers[split]
        loaders[split] = make_dataloader(
            dataset,
            batch_sampler=sampler_class(durations, None),
            **options,
        )
    return loaders


if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
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
        from speechbrain_sense.synthetic.covost import (
            make_synthetic_covost,
        )

        run_on_main(
            synthesize_if_empty,
            args=[hparams["data_folder"], make_synthetic_covost],
            kwargs=hparams["synthetic_corpus"],
        )

    # The target vocabulary is trained here for a decoder from scratch; a
    # pretrained decoder (st_mbart.yaml) brings its tokenizer.
    run_on_main(
        prepare_covost2,
        kwargs={
            "data_folder": hparams["data_folder"],
            "covost_folder": hparams["covost_folder"],
            "save_folder": hparams["save_folder"],
            "languages": hparams["languages"],
            "min_duration": hparams["min_duration"],
            "max_duration": hparams["max_duration"],
            "vocab_size": hparams.get("vocab_size"),
            "tokenizer_model_type": hparams.get(
                "tokenizer_model_type", "unigram"
            ),
            "tokenizer_file": hparams.get("tokenizer_file"),
            "skip_bad_rows": hparams["skip_bad_rows"],
        },
    )
    loaders = dataio_prepare(hparams)

    hparams["checkpointer"].add_recoverable("train_loader", loaders["train"])
    # A frozen encoder is the pretrained model itself: not re-saved with
    # every checkpoint.
    if any(p.requires_grad for p in hparams["encoder"].parameters()):
        hparams["checkpointer"].add_recoverable("encoder", hparams["encoder"])
    brain = STBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    # Brain.fit calls train_sampler.set_epoch(epoch) every epoch.
    brain.train_sampler = loaders["train"].batch_sampler
    brain.fit(
        brain.hparams.epoch_counter,
        loaders["train"],
        loaders["dev"],
    )
    brain.evaluate(loaders["test"], max_key="ACC")
    if if_main_process():
        table = (Path(hparams["output_folder"]) / "test_bleu.md").read_text()
        print(f"\n{table}")
    ddp_destroy_group()
