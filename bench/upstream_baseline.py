"""The upstream SpeechBrain SENSE recipe's training step, from stock parts.

The baseline every speed figure of ``bench/train_throughput.py`` is a ratio
against. It reproduces the upstream recipe's choices with SpeechBrain's own
classes: the DataLoader workers only decode and resample; a fixed batch of
2 utterances in random order, zero-padded; SpeechBrain's ``W2VBert`` (which
runs the HuggingFace fbank extractor on the CPU inside ``forward``), its
unmasked ``AttentionPooling`` (+ a Linear+tanh projection when teacher and
encoder widths differ), the teacher embedding each batch's transcripts
inside the step (in fp16 on a GPU, as upstream's ``use_fp16: True``),
summed cosine loss, fp32, and only the encoder's optimiser stepped
(upstream never steps the head's).

Authors
 * speechbrain-sense developers 2026
"""

import time
from collections import defaultdict
from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from training_setup import SAMPLE_RATE, optimizer_classes, run_opts
from workloads import (
    load_teacher,
    student_source,
)


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
    brain = UpstreamSenseBrain(
        modules=modules,
        hparams={
            "teacher": teacher,
            "loss_scale": 50.0,
            "clock": clock,
            **optimizer_classes(options, fused=False),
        },
        run_opts=run_opts(options, "fp32", compile=False),
        checkpointer=None,
    )
    return brain, loader, clock
