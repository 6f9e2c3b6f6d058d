#!/usr/bin/env python3
"""Recipe for pretraining an English Backpack language model.

A Backpack LM (Hewitt et al., 2023; ``speechbrain_sense.backpack``) learns
next-token prediction on English running text packed into fixed-length
blocks. The tokenizer is GPT-2's BPE when ``tokenizer_source`` names a local
directory, else a SentencePiece model trained here on the English training
text *plus* the target side of the bitext, so that the SENSIA recipe can
later adapt this model to that language without touching its vocabulary.
Each epoch is validated with dev perplexity; the best checkpoint is tested
and exported, with its tokenizer, in the ``stanfordnlp/backpack-gpt2``
layout (``export_folder``), which the SENSIA recipe loads.

To run this recipe, do the following:
> python train.py hparams/backpack_micro.yaml --data_folder=/path/to/data

where ``data_folder`` holds ``wikitext-2/``, ``tatoeba-fra-eng/`` and
``laser-tatoeba/`` (see the README for the CPU demo settings).

Multi-GPU:
> torchrun --nproc_per_node=4 train.py hparams/backpack_micro.yaml ...

Authors
 * speechbrain-sense developers 2026
"""

import json
import math
import sys
from pathlib import Path

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain.utils.logger import get_logger

from speechbrain_sense.backpack.language_modeling import (
    next_token_loss,
    next_token_nll,
    pack_blocks,
    warmup_cosine,
)
from speechbrain_sense.backpack.tokenizer import build_tokenizer
from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.training.distributed import ddp_destroy_group

logger = get_logger(__name__)


class BackpackLMBrain(sb.Brain):
    """Next-token training of a Backpack on packed blocks."""

    def compute_forward(self, batch, stage):
        """Logits ``[B, T, V]`` of a batch of blocks (no padding)."""
        batch = batch.to(self.device)
        tokens = batch.tokens.data  # [B, T]
        return self.modules.model(tokens).logits

    def compute_objectives(self, predictions, batch, stage):
        """Next-token cross-entropy; sums NLL for perplexity off-train."""
        tokens = batch.tokens.data
        smoothing = self.hparams.label_smoothing
        if stage != sb.Stage.TRAIN:
            total, count = next_token_nll(predictions, tokens)
            self.nll_total += total
            self.nll_count += count
            smoothing = 0.0
        return next_token_loss(predictions, tokens, smoothing=smoothing)

    def on_fit_batch_start(self, batch, should_step):
        """Warm-up + cosine LR as a function of the optimizer step."""
        progress = self.optimizer_step / max(self.total_steps, 1)
        scale = warmup_cosine(
            progress, self.hparams.warmup, self.hparams.final_lr_scale
        )
        for group in self.optimizer.param_groups:
            group["lr"] = self.hparams.lr * scale

    def on_stage_start(self, stage, epoch=None):
        """Resets the NLL sums behind perplexity."""
        self.nll_total, self.nll_count = 0.0, 0

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Perplexity, logging, checkpointing, test metrics."""
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        stats["ppl"] = math.exp(self.nll_total / max(self.nll_count, 1))
        stats["tokens"] = self.nll_count
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": epoch,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "steps": self.optimizer_step,
                },
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"ppl": stats["ppl"], "epoch": epoch},
                min_keys=["ppl"],
                num_to_keep=self.hparams.checkpoints_to_keep,
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            self.test_stats = stats


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


def dataio_prepare(hparams, tokenizer):
    """Packed-block datasets of the three splits.

    Every line of a manifest becomes ``[bos] pieces [eos]``; the frames of
    a split are concatenated and cut into ``block_size`` blocks (the tail
    is dropped), so batches carry no padding.
    """
    datasets = {}
    for split, csv_file in manifest_files(hparams).items():
        frames = (
            tokenizer.encode_sentence(row["text"])
            for row in read_manifest(csv_file).values()
        )
        blocks = pack_blocks(frames, hparams["block_size"])  # [N, block_size]
        if len(blocks) == 0:
            raise ValueError(
                f"{split} text is shorter than one block of "
                f"{hparams['block_size']} tokens"
            )
        logger.info(
            f"{split}: {len(blocks)} blocks of {blocks.shape[1]} tokens"
        )
        dataset = sb.dataio.dataset.DynamicItemDataset(
            {f"{split}-{i:07d}": {"block": i} for i in range(len(blocks))}
        )
        dataset.add_dynamic_item(_block_pipeline(blocks))
        dataset.set_output_keys(["id", "tokens"])
        datasets[split] = dataset
    return datasets


def _block_pipeline(blocks):
    """Dynamic-item pipeline mapping a block index to its token ids."""

    @sb.utils.data_pipeline.takes("block")
    @sb.utils.data_pipeline.provides("tokens")
    def block_pipeline(block):
        """Token ids of block ``block``."""
        return blocks[block]

    return block_pipeline


def export_model(hparams, brain, tokenizer):
    """Writes the model, its tokenizer and the metrics to export_folder."""
    folder = Path(hparams["export_folder"])
    model = brain.modules.model
    model = getattr(model, "module", model)  # DDP
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    metrics = {
        "test": brain.test_stats,
        "tokenizer": tokenizer.kind,
        "tokenizer_vocab_size": tokenizer.vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": hparams["epoch_counter"].current,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


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

    from text_prepare import prepare_text_corpus  # noqa: E402

    run_on_main(
        prepare_text_corpus,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "train_files": hparams["train_files"],
            "test_files": hparams["test_files"],
            "parallel_file": hparams["parallel_file"],
            "parallel_format": hparams["parallel_format"],
            "exclude_files": hparams["exclude_files"],
            "dev_ratio": hparams["dev_ratio"],
            "wikitext": hparams["wikitext"],
            "seed": hparams["seed"],
        },
    )
    tokenizer_kwargs = {
        "save_dir": hparams["tokenizer_folder"],
        "source": hparams["tokenizer_source"],
        "text_file": hparams["tokenizer_text"],
        "vocab_size": hparams["vocab_size"],
        "model_type": hparams["sentencepiece_type"],
        "seed": hparams["seed"],
    }
    run_on_main(build_tokenizer, kwargs=tokenizer_kwargs)
    tokenizer = build_tokenizer(**tokenizer_kwargs)
    if tokenizer.vocab_size > hparams["vocab_size"]:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model "
            f"only vocab_size={hparams['vocab_size']}; raise vocab_size"
        )
    if hparams["block_size"] > hparams["n_positions"]:
        raise ValueError("block_size must not exceed n_positions")

    datasets = dataio_prepare(hparams, tokenizer)
    brain = BackpackLMBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    batches_per_epoch = math.ceil(
        len(datasets["train"]) / hparams["batch_size"]
    )
    brain.total_steps = (
        hparams["number_of_epochs"]
        * batches_per_epoch
        // hparams["grad_accumulation_factor"]
    )
    if brain.optimizer_step_limit is not None:
        # SpeechBrain's command line hands this run option over as a string.
        brain.optimizer_step_limit = int(brain.optimizer_step_limit)
        brain.total_steps = min(brain.total_steps, brain.optimizer_step_limit)
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["dev"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["eval_dataloader_opts"],
    )
    brain.evaluate(
        datasets["test"],
        min_key="ppl",
        test_loader_kwargs=hparams["eval_dataloader_opts"],
    )
    if if_main_process():
        metrics = export_model(hparams, brain, tokenizer)
        print(json.dumps(metrics["test"]))
        print(f"English Backpack and tokenizer: {hparams['export_folder']}")
    ddp_destroy_group()
