#!/usr/bin/env python3
"""Recipe for SENSIA: adapting an English Backpack LM to a new language.

An English Backpack (the pretrain recipe's export) is fine-tuned on
parallel sentences so that a sentence and its translation get the same
*context view* (L2-normalised hidden state of the last real token) and the
same *sense view* (senses pooled over the sentence with per-token mixture
weights from the per-sense contribution norms), with symmetric InfoNCE on
each view, while a label-smoothed LM loss teaches the target language. The
three loss weights follow the paper's curriculum: align (20%), joint (30%),
polish (50%), with cosine ramps between phases; the sense network can be
frozen in polish.

The same recipe runs the paper's baselines (see hparams/):

* ``scratch.yaml``: a target-language Backpack of the same shape trained
  from random weights on the same target sentences (LM loss only);
* ``dense.yaml``: dense alignment, InfoNCE on mean-pooled hidden states
  instead of the two SENSIA views.

``sensia_paper.yaml`` is SENSIA with the authors' published settings
(``stanfordnlp/backpack-gpt2`` and its GPT-2 BPE, 150k steps, fp16, linear
LR decay, InfoNCE negatives gathered across GPUs).

Every ``log_interval`` steps the three losses, the sense entropy (nats) and
bitext retrieval R@1 (both directions, held-out pairs) are logged. Each
epoch is validated on dev (perplexity, R@1, entropy); the last checkpoint is
tested (LASER Tatoeba by default), exported in the backpack-gpt2 layout and
analysed (:mod:`speechbrain_sense.sensia.analysis`): sense entropy, local
topology rho (the paper's), sense-similarity correlation (ours), Procrustes
cosine, sense-mixture ablations.

To run this recipe, do the following:
> python train.py hparams/sensia.yaml --data_folder=/path/to/data \\
>     --pretrained_path=../pretrain/results/backpack_micro/1234/backpack_en

Authors
 * speechbrain-sense developers 2026
"""

import json
import math
import sys
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain.utils.logger import get_logger

from speechbrain_sense.backpack.language_modeling import (
    lengths_to_mask,
    next_token_loss,
    next_token_nll,
    warmup_cosine,
    warmup_linear,
)
from speechbrain_sense.backpack.model import BackpackLM
from speechbrain_sense.backpack.tokenizer import BackpackTokenizer
from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.sensia.analysis import analyze
from speechbrain_sense.sensia.bitext_retrieval import bitext_recall
from speechbrain_sense.sensia.losses import (
    curriculum_weights,
    gathered_info_nce,
    info_nce,
    sense_entropy,
    sentence_views,
)
from speechbrain_sense.training.distributed import ddp_destroy_group

logger = get_logger(__name__)

VIEWS = ("context", "sense", "mean")
ALIGNMENTS = ("sensia", "dense", "none")
# LR multiplier of training progress: warm-up, then decay.
LR_SCHEDULES = {"cosine": warmup_cosine, "linear": warmup_linear}
# The keys each alignment reads (the LM-only baseline reads none of them).
CURRICULUM_KEYS = (
    "symmetric",
    "curriculum_phases",
    "align_weights",
    "joint_weights",
    "polish_weights",
)
ALIGNMENT_KEYS = {
    "sensia": CURRICULUM_KEYS
    + (
        "context_temperature",
        "sense_temperature",
        "freeze_senses_in_polish",
        "gather_negatives",
    ),
    "dense": CURRICULUM_KEYS + ("dense_temperature", "gather_negatives"),
    "none": (),
}


class SENSIABrain(sb.Brain):
    """Contrastive sense adaptation plus target-language modelling."""

    def compute_forward(self, batch, stage):
        """Backpack outputs and sentence views for the target side, and the
        source side whenever it is needed (alignment or evaluation)."""
        batch = batch.to(self.device)
        sides = ["tgt"]
        if stage != sb.Stage.TRAIN or self.hparams.alignment != "none":
            sides.append("src")
        return {side: self._encode(batch, side) for side in sides}

    def _encode(self, batch, side):
        """Sense and context views of the batch's ``src`` or ``tgt`` side."""
        ids, lengths = getattr(batch, f"{side}_tokens")  # [B, T]
        mask = lengths_to_mask(lengths, ids.shape[1])
        output = self.modules.model(
            ids, attention_mask=mask, return_senses=True
        )
        views = sentence_views(
            output,
            mask,
            self.hparams.sense_pool_temperature,
            self.hparams.context_states,
        )
        return {"ids": ids, "mask": mask, "logits": output.logits, **views}

    def compute_objectives(self, predictions, batch, stage):
        """Weighted InfoNCE views + LM loss; collects evaluation data."""
        tgt = predictions["tgt"]
        train = stage == sb.Stage.TRAIN
        smoothing = self.hparams.label_smoothing if train else 0.0
        losses = {
            "lm": next_token_loss(
                tgt["logits"], tgt["ids"], tgt["mask"], smoothing
            )
        }
        alignment = self.hparams.alignment
        if alignment != "none":
            src = predictions["src"]
            symmetric = getattr(self.hparams, "symmetric", None)
            # Under DDP, negatives from every GPU (training only: evaluation
            # runs the whole set on each rank, with no gradient).
            gather = train and getattr(self.hparams, "gather_negatives", None)
            contrastive = gathered_info_nce if gather else info_nce
            if alignment == "sensia":
                losses["context"] = contrastive(
                    src["context"],
                    tgt["context"],
                    getattr(self.hparams, "context_temperature", None),
                    symmetric,
                )
                losses["sense"] = contrastive(
                    src["sense"],
                    tgt["sense"],
                    getattr(self.hparams, "sense_temperature", None),
                    symmetric,
                )
            else:
                losses["dense"] = contrastive(
                    src["mean"],
                    tgt["mean"],
                    getattr(self.hparams, "dense_temperature", None),
                    symmetric,
                )
        weights = self.loss_weights()
        loss = sum(weights[name] * value for name, value in losses.items())
        entropy = sense_entropy(tgt["sense_weights"], tgt["mask"])

        if train:
            for name, value in losses.items():
                self.running[name] += value.item()
            self.running["entropy"] += entropy.item()
            self.running["batches"] += 1
        else:
            total, count = next_token_nll(
                tgt["logits"], tgt["ids"], tgt["mask"]
            )
            self.collected["nll"] += total
            self.collected["tokens"] += count
            n_real = float(tgt["mask"].sum())
            self.collected["entropy"] += entropy.item() * n_real
            self.collected["entropy_tokens"] += n_real
            for side in ("src", "tgt"):
                for view in VIEWS:
                    self.collected[side, view].append(
                        predictions[side][view].detach().cpu()
                    )
        return loss

    # ------------------------------------------------------------------
    # Schedules
    # ------------------------------------------------------------------

    @property
    def progress(self):
        """Fraction of training done, from the optimizer step."""
        return self.optimizer_step / max(self.total_steps, 1)

    def loss_weights(self):
        """Curriculum weights now (fixed {"lm": 1} for the LM baseline)."""
        alignment = self.hparams.alignment
        if alignment == "none":
            return {"lm": 1.0}
        weights = curriculum_weights(
            self.progress,
            phases=tuple(getattr(self.hparams, "curriculum_phases", None)),
            align=getattr(self.hparams, "align_weights", None),
            joint=getattr(self.hparams, "joint_weights", None),
            polish=getattr(self.hparams, "polish_weights", None),
        )
        if alignment == "dense":
            # One dense view takes the weight of SENSIA's two, so that the
            # alignment / LM balance is the same in both.
            return {
                "dense": weights["context"] + weights["sense"],
                "lm": weights["lm"],
            }
        return weights

    def on_fit_batch_start(self, batch, should_step):
        """LR warm-up + decay; sense network frozen in polish if asked."""
        progress = self.progress
        schedule = LR_SCHEDULES[self.hparams.lr_schedule]
        scale = schedule(
            progress, self.hparams.warmup, self.hparams.final_lr_scale
        )
        for group in self.optimizer.param_groups:
            group["lr"] = self.hparams.lr * scale
        if self.hparams.alignment == "sensia":
            # Keys of the alignment variants are read with getattr: the
            # LM-only yaml has none of them, and main() has checked that
            # this variant's yaml defines all of them.
            phases = getattr(self.hparams, "curriculum_phases", None)
            freeze = getattr(self.hparams, "freeze_senses_in_polish", None)
            frozen = freeze and progress >= sum(phases[:2])
            # Parameters without gradients are skipped by AdamW (weight
            # decay included), so the senses stay exactly as they are.
            for p in self._model().sense_network.parameters():
                p.requires_grad_(not frozen)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Every log_interval steps: losses, entropy and the R@1 probe."""
        interval = self.hparams.log_interval
        if not should_step or interval <= 0 or self.optimizer_step % interval:
            return
        n = max(self.running.pop("batches"), 1)
        # Means over the batches since the last probe.
        stats = {name: value / n for name, value in self.running.items()}
        probe = self.probe_retrieval()
        weights = self.loss_weights()
        meta = {
            "step": self.optimizer_step,
            "progress": round(self.progress, 4),
            "lr": self.optimizer.param_groups[0]["lr"],
            **{f"w_{name}": round(w, 4) for name, w in weights.items()},
        }
        # The probe pairs are held out: logged as "valid".
        self.hparams.train_logger.log_stats(
            stats_meta=meta, train_stats=stats, valid_stats=probe
        )
        if if_main_process():
            with open(self.hparams.step_log, "a", encoding="utf-8") as f:
                f.write(json.dumps({**meta, **stats, **probe}) + "\n")
        self._reset_running()

    @torch.no_grad()
    def probe_retrieval(self):
        """Bitext R@1 both ways on the probe pairs (headline view)."""
        model = self.modules.model
        model.eval()
        embeddings = {"src": [], "tgt": []}
        view = self.hparams.retrieval_view
        for batch in self.probe_loader:
            batch = batch.to(self.device)
            for side in embeddings:
                embeddings[side].append(self._encode(batch, side)[view].cpu())
        model.train()
        recall = bitext_recall(
            torch.cat(embeddings["src"]), torch.cat(embeddings["tgt"])
        )
        return {
            f"R@1_{self.direction('src2tgt')}": recall["src2tgt"]["R@1"],
            f"R@1_{self.direction('tgt2src')}": recall["tgt2src"]["R@1"],
        }

    def direction(self, key):
        """ "src2tgt" -> "en2fr" with the configured languages."""
        src, tgt = self.hparams.src_lang, self.hparams.tgt_lang
        return f"{src}2{tgt}" if key == "src2tgt" else f"{tgt}2{src}"

    def _model(self):
        """The Backpack itself, unwrapped from DDP."""
        model = self.modules.model
        return getattr(model, "module", model)  # DDP

    def _reset_running(self):
        """Zeroes the running loss sums of the losses this variant trains."""
        self.running = dict.fromkeys(
            ["lm", "context", "sense", "dense", "entropy", "batches"], 0.0
        )
        for name in ("context", "sense", "dense"):
            if name not in self.loss_weights():
                del self.running[name]

    # ------------------------------------------------------------------
    # Stages
    # ------------------------------------------------------------------

    def on_stage_start(self, stage, epoch=None):
        """Resets the running losses or the evaluation buffers."""
        if stage == sb.Stage.TRAIN:
            self._reset_running()
        self.collected = {
            "nll": 0.0,
            "tokens": 0,
            "entropy": 0.0,
            "entropy_tokens": 0.0,
        }
        for side in ("src", "tgt"):
            for view in VIEWS:
                self.collected[side, view] = []

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Metrics, logging, checkpointing."""
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        metrics = self.evaluation_metrics()
        headline = metrics["retrieval"][self.hparams.retrieval_view]
        stats.update(
            {
                "ppl": metrics["ppl"],
                "entropy": metrics["sense_entropy"],
                f"R@1_{self.direction('src2tgt')}": headline["src2tgt"]["R@1"],
                f"R@1_{self.direction('tgt2src')}": headline["tgt2src"]["R@1"],
            }
        )
        name = "dev" if stage == sb.Stage.VALID else "test"
        if if_main_process():
            path = Path(self.hparams.output_folder) / f"{name}_metrics.json"
            path.write_text(json.dumps(metrics, indent=1))
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "steps": self.optimizer_step},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            # The curriculum makes the loss incomparable across epochs, and
            # baselines have no R@1 to select on: keep the latest.
            self.checkpointer.save_and_keep_only(
                meta={"ppl": stats["ppl"], "epoch": epoch},
                num_to_keep=self.hparams.checkpoints_to_keep,
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            self.test_metrics = metrics

    def evaluation_metrics(self):
        """Perplexity, entropy and R@1 of every view on the collected set."""
        c = self.collected
        retrieval = {}
        for view in VIEWS:
            recall = bitext_recall(
                torch.cat(c["src", view]), torch.cat(c["tgt", view])
            )
            retrieval[view] = {
                key: recall[key] for key in ("src2tgt", "tgt2src", "mean")
            }
        return {
            "ppl": math.exp(c["nll"] / max(c["tokens"], 1)),
            "nll": c["nll"] / max(c["tokens"], 1),
            "tokens": c["tokens"],
            "sense_entropy": c["entropy"] / max(c["entropy_tokens"], 1.0),
            "pairs": len(torch.cat(c["src", "mean"])),
            "retrieval": retrieval,
            "directions": {
                "src2tgt": self.direction("src2tgt"),
                "tgt2src": self.direction("tgt2src"),
            },
        }


def load_tokenizer(hparams):
    """The English model's own tokenizer, checked against the model.

    French is read with the vocabulary the English model was pretrained
    with: the tokenizer travels with it in ``pretrained_path``. Nothing is
    retrained. ``tokenizer_kind`` (if the yaml sets it) pins the kind.

    Arguments
    ---------
    hparams : dict
        The hyperparameters (``pretrained_path``, ``backpack_config``,
        ``max_length``, optionally ``tokenizer_kind``).

    Returns
    -------
    BackpackTokenizer
        The tokenizer of ``pretrained_path``.
    """
    tokenizer = BackpackTokenizer.from_pretrained(hparams["pretrained_path"])
    kind = hparams.get("tokenizer_kind")
    if kind is not None and tokenizer.kind != kind:
        raise ValueError(
            f"tokenizer_kind: {kind}, but {hparams['pretrained_path']} holds "
            f"a {tokenizer.kind} tokenizer"
        )
    config = hparams["backpack_config"]
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(
            f"tokenizer ({tokenizer.vocab_size}) larger than the model "
            f"vocabulary ({config.vocab_size})"
        )
    if hparams["max_length"] > config.n_positions:
        raise ValueError("max_length must not exceed the model's n_positions")
    return tokenizer


def training_length(
    batches_per_epoch,
    number_of_epochs,
    grad_accumulation_factor=1,
    max_steps=None,
    optimizer_step_limit=None,
):
    """Epochs to run and optimizer steps in all (what progress is out of).

    Arguments
    ---------
    batches_per_epoch : int
        Batches of one rank's training loader per epoch.
    number_of_epochs : int
        Epochs to run when ``max_steps`` is None.
    grad_accumulation_factor : int
        Batches per optimizer step.
    max_steps : int, optional
        Train for exactly this many optimizer steps, with as many epochs as
        that takes (the last one stops part-way).
    optimizer_step_limit : int, optional
        SpeechBrain's run option: stop after this many steps.

    Returns
    -------
    epochs : int
        The epoch counter's limit.
    total_steps : int
        Optimizer steps of the run: the LR schedule and the curriculum
        span them.
    step_limit : int or None
        The optimizer step limit to give the Brain.

    Example
    -------
    >>> training_length(1139, 2)
    (2, 2278, None)
    >>> training_length(1139, 2, max_steps=150_000)
    (132, 150000, 150000)
    >>> training_length(1139, 2, max_steps=150_000, optimizer_step_limit=250)
    (132, 250, 250)
    """
    if max_steps is None:
        epochs = number_of_epochs
        total = number_of_epochs * batches_per_epoch // grad_accumulation_factor
    else:
        steps_per_epoch = max(batches_per_epoch // grad_accumulation_factor, 1)
        epochs = math.ceil(max_steps / steps_per_epoch)
        total = max_steps
        if optimizer_step_limit is None or optimizer_step_limit > max_steps:
            optimizer_step_limit = max_steps
    if optimizer_step_limit is not None:
        total = min(total, optimizer_step_limit)
    return epochs, total, optimizer_step_limit


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
    """Datasets of the three splits: ``[bos] sentence [eos]`` ids per side."""
    max_length = hparams["max_length"]

    @sb.utils.data_pipeline.takes("src")
    @sb.utils.data_pipeline.provides("src_tokens")
    def src_pipeline(src):
        """English sentence -> ``bos ... eos`` token ids."""
        return torch.LongTensor(tokenizer.encode_sentence(src, max_length))

    @sb.utils.data_pipeline.takes("tgt")
    @sb.utils.data_pipeline.provides("tgt_tokens")
    def tgt_pipeline(tgt):
        """Target-language sentence -> ``bos ... eos`` token ids."""
        return torch.LongTensor(tokenizer.encode_sentence(tgt, max_length))

    datasets = {}
    for split, csv_file in manifest_files(hparams).items():
        dataset = sb.dataio.dataset.DynamicItemDataset(read_manifest(csv_file))
        dataset.add_dynamic_item(src_pipeline)
        dataset.add_dynamic_item(tgt_pipeline)
        dataset.set_output_keys(["id", "src_tokens", "tgt_tokens"])
        datasets[split] = dataset
    probe_ids = set(list(datasets["dev"].data_ids)[: hparams["probe_size"]])
    datasets["probe"] = datasets["dev"].filtered_sorted(
        key_test={"id": lambda i: i in probe_ids}
    )
    return datasets


def run_analysis(hparams, model, tokenizer):
    """Sense analysis of the final model against the English one."""
    from parallel_prepare import read_lexicon  # noqa: E402

    english = BackpackLM.from_pretrained(hparams["pretrained_path"])
    lexicon = read_lexicon(hparams["lexicon_file"])
    test_rows = read_manifest(hparams["test_csv"]).values()
    if len(lexicon) < 3:
        logger.warning(f"only {len(lexicon)} lexicon pairs: no analysis")
        return {}
    return analyze(
        model,
        english,
        tokenizer,
        lexicon,
        [row["tgt"] for row in test_rows],
        # The authors' probes on the test pairs (theirs: FLORES-200 dev).
        anchor_pairs=[(row["src"], row["tgt"]) for row in test_rows],
        temperature=hparams["sense_pool_temperature"],
        heldout_fraction=hparams["procrustes_heldout"],
        batch_size=hparams["batch_size"],
        max_length=hparams["max_length"],
        seed=hparams["seed"],
    )


if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    if hparams["alignment"] not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}")
    missing = sorted(
        set(ALIGNMENT_KEYS[hparams["alignment"]]).difference(hparams)
    )
    if missing:
        raise ValueError(
            f"{hparams_file}: alignment: {hparams['alignment']} needs {missing}"
        )
    if hparams["retrieval_view"] not in VIEWS:
        raise ValueError(f"retrieval_view must be one of {VIEWS}")
    if hparams["lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {sorted(LR_SCHEDULES)}")

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    from parallel_prepare import prepare_parallel  # noqa: E402

    run_on_main(
        prepare_parallel,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "train_file": hparams["train_file"],
            "train_format": hparams["train_format"],
            "test_file": hparams["test_file"],
            "test_format": hparams["test_format"],
            "dev_size": hparams["dev_size"],
            "test_size": hparams["test_size"],
            "train_fraction": hparams["train_fraction"],
            "max_train_pairs": hparams["max_train_pairs"],
            "max_words": hparams["max_words"],
            "lexicon_min_count": hparams["lexicon_min_count"],
            "lexicon_max_pairs": hparams["lexicon_max_pairs"],
            "seed": hparams["seed"],
        },
    )

    # The tokenizer travels with the English model (the pretrain recipe's
    # joint SentencePiece, or backpack-gpt2's GPT-2 BPE).
    tokenizer = load_tokenizer(hparams)
    if hparams["init_from_pretrained"]:
        # Resumed runs overwrite these with their checkpoint in fit().
        english = BackpackLM.from_pretrained(hparams["pretrained_path"])
        hparams["model"].load_state_dict(english.state_dict())
        del english

    datasets = dataio_prepare(hparams, tokenizer)
    brain = SENSIABrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.probe_loader = make_dataloader(
        datasets["probe"], **hparams["eval_dataloader_opts"]
    )
    # Built here (fit() takes it as is) for its length: under DDP each rank
    # reads 1/world_size of the pairs.
    train_loader = brain.make_dataloader(
        datasets["train"],
        stage=sb.Stage.TRAIN,
        **hparams["train_dataloader_opts"],
    )
    step_limit = brain.optimizer_step_limit
    epochs, brain.total_steps, brain.optimizer_step_limit = training_length(
        len(train_loader),
        hparams["number_of_epochs"],
        hparams["grad_accumulation_factor"],
        hparams["max_steps"],
        # SpeechBrain's command line hands this run option over as a string.
        None if step_limit is None else int(step_limit),
    )
    hparams["epoch_counter"].limit = epochs
    brain.fit(
        brain.hparams.epoch_counter,
        train_loader,
        datasets["dev"],
        valid_loader_kwargs=hparams["eval_dataloader_opts"],
    )
    brain.evaluate(
        datasets["test"], test_loader_kwargs=hparams["eval_dataloader_opts"]
    )

    if if_main_process():
        model = brain._model().eval()
        model.save_pretrained(hparams["export_folder"])
        tokenizer.save_pretrained(hparams["export_folder"])
        results = {
            "experiment": hparams["experiment_name"],
            "alignment": hparams["alignment"],
            "init_from_pretrained": hparams["init_from_pretrained"],
            "retrieval_view": hparams["retrieval_view"],
            "train_pairs": len(datasets["train"]),
            "train_fraction": hparams["train_fraction"],
            "max_train_pairs": hparams["max_train_pairs"],
            "steps": brain.optimizer_step,
            "test": brain.test_metrics,
        }
        if hparams["run_analysis"]:
            results["analysis"] = run_analysis(hparams, model, tokenizer)
        path = Path(hparams["output_folder"]) / "results.json"
        path.write_text(json.dumps(results, indent=1))
        print(json.dumps(results, indent=1))
        print(f"Adapted Backpack and tokenizer: {hparams['export_folder']}")
    ddp_destroy_group()
