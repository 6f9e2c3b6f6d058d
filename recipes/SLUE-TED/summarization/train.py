#!/usr/bin/env python3
"""Recipe for speech summarization of TED talks (SLUE-TED) on SENSE frames.

A talk (minutes of audio) is encoded window by window by a SENSE encoder
(the w2v-BERT 2.0 encoder of an exported SENSE model, frozen by default;
a plain w2v-BERT 2.0 is the non-semantic baseline), the stitched 50 Hz
frames are averaged and shortened by strided convolutions, and a text
decoder writes the summary while cross-attending to them: the decoder of
a pretrained BART (``facebook/bart-large``) or a Transformer decoder
trained from scratch (``speechbrain_sense.tasks.seq2seq``). Training minimises
the label-smoothed NLL of the reference summary; the dev loss selects the
checkpoint. The test set is decoded with beam search and scored with
ROUGE-1/2/L and BERTScore F1, raw (``bertscore_f1``) and rescaled with
bert-score's baseline (``bertscore_f1_rescaled``, the paper-comparable
one); the report labels each with its exact settings (model, layer,
baseline file), and the hypotheses are written next to it.

To run this recipe:
> python train.py hparams/summarization.yaml --data_folder=/data/slue-ted \\
      --encoder_source=/models/sense

Multi-GPU:
> torchrun --nproc_per_node=4 train.py hparams/summarization.yaml ...

CPU demo on a synthetic corpus (generated when data_folder is empty):
> python train.py hparams/summarization_tiny.yaml

Authors
 * speechbrain-sense developers 2026
"""

import csv
import json
import sys
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain.utils.logger import get_logger

from speechbrain_sense.data.dataio import (
    audio_feature_pipeline,
    encoder_features_class,
    manifest_datasets,
)
from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.metrics.summarization import (
    rouge_description,
    rouge_scores,
)
from speechbrain_sense.synthetic import synthesize_if_empty
from speechbrain_sense.tasks.seq2seq import TransformerTextDecoder
from speechbrain_sense.training.distributed import ddp_destroy_group

logger = get_logger(__name__)


class SummarizationBrain(sb.Brain):
    """Long-form SENSE encoder + text decoder, trained on summaries."""

    def compute_forward(self, batch, stage):
        """The decoder's memory: stitched, downsampled frames ``[B, S, D]``."""
        batch = batch.to(self.device)
        features, _ = batch.features  # [B, T, 160] (XLS-R: [B, T, 1])
        return self.modules.long_form(features, batch.num_frames)

    def compute_objectives(self, predictions, batch, stage):
        """Summary NLL; hypotheses on dev (every few epochs) and test."""
        memory, memory_counts = predictions
        decoder = self.modules.decoder
        targets, target_counts = decoder.encode_targets(batch.summary)
        loss = decoder.loss(memory, memory_counts, targets, target_counts)
        if stage == sb.Stage.TEST or (
            stage == sb.Stage.VALID and self._decode_this_epoch
        ):
            hypotheses = decoder.decode(memory, memory_counts)
            for utt_id, hyp, ref in zip(batch.id, hypotheses, batch.summary):
                self.hypotheses[utt_id] = (hyp.strip(), ref)
        return loss

    def init_optimizers(self):
        """One optimiser over the parameters that train (not a frozen
        encoder's), checkpointed."""
        params = [p for p in self.modules.parameters() if p.requires_grad]
        self.optimizer = self.opt_class(params)
        self.optimizers_dict = {"optimizer": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Per-step learning-rate schedule (warmup)."""
        if should_step:
            self.hparams.lr_scheduler(self.optimizer)

    def on_stage_start(self, stage, epoch=None):
        """Resets the hypotheses; decides whether dev is decoded."""
        self.hypotheses = {}
        interval = self.hparams.valid_search_interval
        self._decode_this_epoch = stage == sb.Stage.VALID and (
            epoch is None
            or epoch % interval == 0
            or epoch == self.hparams.number_of_epochs
        )

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """ROUGE on dev, full report on test, checkpoints by dev loss."""
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        hypotheses = gather_hypotheses(self.hypotheses)
        if hypotheses and all(ref for _, ref in hypotheses.values()):
            hyps = [hypotheses[i][0] for i in sorted(hypotheses)]
            refs = [hypotheses[i][1] for i in sorted(hypotheses)]
            rouge = rouge_scores(
                hyps, refs, use_stemmer=self.hparams.rouge_use_stemmer
            )
            stats.update(rouge)
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"loss": stage_loss, "epoch": epoch},
                min_keys=["loss"],
                num_to_keep=self.hparams.checkpoints_to_keep,
            )
            return
        report = None
        if if_main_process():
            report = write_test_report(self.hparams, hypotheses, stats)
        self.hparams.train_logger.log_stats(
            stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
            test_stats=(report or {}).get("metrics", stats),
        )


def gather_hypotheses(local):
    """``{id: (hypothesis, reference)}`` of every DDP rank, deduplicated."""
    if not torch.distributed.is_initialized():
        return dict(local)
    shards = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(shards, local)
    merged = {}
    for shard in shards:
        merged.update(shard)
    return merged


def write_test_report(hparams, hypotheses, stats):
    """Scores the test hypotheses and writes the report files.

    Writes ``test_hypotheses.tsv`` (``ID, hypothesis, reference``),
    ``test_metrics.json`` and ``test_metrics.md`` into ``output_folder``.

    BERTScore is computed once, raw, and with the scorer's
    ``rescale_with_baseline`` also rescaled (``bertscore_f1_rescaled``);
    each value's label is in ``settings``. Without rescaling, the report
    and a logged warning say so: a raw value is never labelled rescaled.

    Arguments
    ---------
    hparams : types.SimpleNamespace
        The recipe's hyperparameters (``Brain.hparams``).
    hypotheses : dict
        ``{id: (hypothesis, reference)}``.
    stats : dict
        Test loss and ROUGE computed in ``on_stage_end``.

    Returns
    -------
    dict
        The report (``metrics`` and ``settings``).
    """
    out = Path(hparams.output_folder)
    ids = sorted(hypotheses)
    with open(out / "test_hypotheses.tsv", "w", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["ID", "hypothesis", "reference"])
        for utt_id in ids:
            writer.writerow([utt_id, *hypotheses[utt_id]])
    metrics = {"loss": stats["loss"], "summaries": len(ids)}
    settings = {
        "rouge": rouge_description(hparams.rouge_use_stemmer),
        "decoding": describe_decoding(hparams.decoder),
    }
    blind = not all(ref for _, ref in hypotheses.values())
    if blind:
        settings["note"] = "blind test set: no references, hypotheses only"
    else:
        metrics.update({k: stats[k] for k in ("rouge1", "rouge2", "rougeL")})
        scorer = hparams.bertscore()
        # One forward pass: raw scores, and the rescaled ones derived from
        # them with the baseline file.
        bertscore = scorer(
            [hypotheses[i][0] for i in ids], [hypotheses[i][1] for i in ids]
        )
        metrics.update(bertscore)
        settings.update(scorer.descriptions)
        if not scorer.rescale_with_baseline:
            settings["bertscore_f1_rescaled"] = (
                "not computed: rescale_with_baseline is False"
            )
            logger.warning(
                "BERTScore is reported raw only (rescale_with_baseline is "
                "False): it is not on the baseline-rescaled scale"
            )
        for key in ("bertscore_f1_rescaled", "bertscore_f1"):
            if key in metrics:
                logger.info(f"{key} = {metrics[key]:.2f}: {settings[key]}")
    report = {"metrics": metrics, "settings": settings}
    (out / "test_metrics.json").write_text(json.dumps(report, indent=1))
    lines = [
        f"Summarization of {len(ids)} test talks",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    names = {
        "rouge1": "ROUGE-1",
        "rouge2": "ROUGE-2",
        "rougeL": "ROUGE-L",
        "bertscore_f1_rescaled": "BERTScore F1, rescaled",
        "bertscore_f1": "BERTScore F1, raw",
    }
    for key, name in names.items():
        if key in metrics:
            lines.append(f"| {name} | {metrics[key]:.2f} |")
    lines += [""] + [f"* {key}: {value}" for key, value in settings.items()]
    (out / "test_metrics.md").write_text("\n".join(lines) + "\n")
    return report


def describe_decoding(decoder):
    """How the hypotheses were searched, for the report."""
    search = "greedy" if decoder.greedy else f"beam {decoder.beam_size}"
    if isinstance(decoder, TransformerTextDecoder):
        return (
            f"from-scratch Transformer decoder, {search}, at most "
            f"{decoder.max_decode_steps} tokens"
        )
    return (
        f"pretrained decoder {decoder.model.config.name_or_path}, {search}, "
        f"at most {decoder.max_new_tokens} new tokens, length penalty "
        f"{decoder.length_penalty}"
    )


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
    """Datasets of the three splits; features are computed in workers."""
    # The encoder's input for the whole talk (w2v-BERT fbank features, or
    # XLS-R's normalised samples); long-form windows are cut from it on the
    # device.
    audio_pipeline = audio_feature_pipeline(
        hparams["encoder_source"],
        sample_rate=hparams["sample_rate"],
        cache_dir=hparams["pretrained_cache"],
        features_class=encoder_features_class(
            hparams["encoder_source"], hparams["pretrained_cache"]
        ),
    )
    datasets = manifest_datasets(
        manifest_files(hparams), hparams["data_folder"]
    )
    for split, dataset in datasets.items():
        dataset.add_dynamic_item(audio_pipeline)
        dataset.set_output_keys(["id", "features", "num_frames", "summary"])
        # Shortest talks first: less padding, and a failure on the longest
        # talks (memory) shows up at the end of the first epoch.
        datasets[split] = dataset.filtered_sorted(sort_key="duration")
    return datasets


def train_target_tokenizer(hparams, decoder):
    """SentencePiece model for a from-scratch decoder, on train summaries."""
    import sentencepiece as spm

    path = Path(hparams["target_tokenizer_file"])
    if path.is_file():
        return
    manifest = read_manifest(hparams["train_csv"], path_columns=())
    summaries = [row["summary"] for row in manifest.values()]
    path.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(summaries),
        model_prefix=str(path.with_suffix("")),
        vocab_size=decoder.vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        minloglevel=2,
    )


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

    # Demo configuration: synthesise talks into an empty data_folder.
    if hparams["synthetic_corpus"]:
        from speechbrain_sense.synthetic.slue_ted import (
            make_synthetic_slue_ted,
        )

        run_on_main(
            synthesize_if_empty,
            args=[hparams["data_folder"], make_synthetic_slue_ted],
            kwargs=hparams["synthetic_corpus"],
        )

    from slue_ted_prepare import prepare_slue_ted  # noqa: E402

    run_on_main(
        prepare_slue_ted,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "summary_target": hparams["summary_target"],
            "min_duration": hparams["min_duration"],
            "max_duration": hparams["max_duration"],
            "skip_bad_rows": hparams["skip_bad_rows"],
        },
    )
    decoder = hparams["decoder"]
    if isinstance(decoder, TransformerTextDecoder):
        run_on_main(train_target_tokenizer, args=[hparams, decoder])
    if not hparams["freeze_encoder"]:
        hparams["checkpointer"].add_recoverable(
            "frame_encoder", hparams["frame_encoder"]
        )
    datasets = dataio_prepare(hparams)

    brain = SummarizationBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["dev"],
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["eval_dataloader_options"],
    )
    brain.evaluate(
        datasets["test"],
        min_key="loss",
        test_loader_kwargs=hparams["eval_dataloader_options"],
    )
    if if_main_process():
        table = (Path(hparams["output_folder"]) / "test_metrics.md").read_text()
        print(f"\n{table}")
    ddp_destroy_group()
