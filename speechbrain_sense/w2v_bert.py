"""w2v-BERT 2.0 as a SENSE student: features off the training thread.

SpeechBrain's ``W2VBert`` computes the 160-d stacked fbank features inside
``forward``: it copies the batch back to the CPU, runs the NumPy feature
extractor on the training thread, and copies the result to the GPU again,
every step. :class:`W2VBertFeatures` runs that same HuggingFace feature
extractor inside the DataLoader workers, one utterance at a time, and
:class:`SenseW2VBert` (a ``W2VBert`` subclass, so hub ids, local directories
and SpeechBrain checkpoints load the same way) consumes the features with an
explicit frame count per utterance. The raw-waveform ``forward`` of the
parent class keeps working, for inference from files.

Frame arithmetic (``SeamlessM4TFeatureExtractor``): fbank frames use a
25 ms window and a 10 ms hop without centring, so ``n`` samples give
``F = 1 + (n - 400) // 160`` frames; pairs of frames are stacked, and a
half-filled last pair is masked, so the encoder sees ``F // 2`` frames
(50 Hz). :func:`w2v_bert_frame_count` implements exactly that.

Authors
 * speechbrain-sense developers 2026
"""

import numpy as np
import torch
from speechbrain.integrations.huggingface.w2v_bert import W2VBert

FBANK_WINDOW = 400  # samples at 16 kHz: 25 ms
FBANK_HOP = 160  # samples at 16 kHz: 10 ms
FRAME_STACK = 2  # fbank frames per encoder frame


def w2v_bert_frame_count(num_samples):
    """Number of encoder frames w2v-BERT 2.0 produces for a waveform.

    Arguments
    ---------
    num_samples : int or torch.Tensor
        Waveform length(s) in samples at 16 kHz.

    Returns
    -------
    int or torch.Tensor
        Encoder frames (``0`` for inputs shorter than one fbank window).

    Example
    -------
    >>> w2v_bert_frame_count(16000)
    49
    >>> w2v_bert_frame_count(torch.tensor([399, 400, 720]))
    tensor([0, 0, 1])
    """
    if isinstance(num_samples, torch.Tensor):
        # Integer floor division: float32 would round lengths above 2**24
        # samples (17 minutes) to the wrong frame.
        samples = num_samples.long()
        fbank = torch.div(
            samples - FBANK_WINDOW, FBANK_HOP, rounding_mode="floor"
        )
        return torch.div(fbank + 1, FRAME_STACK, rounding_mode="floor").clamp(
            min=0
        )
    if num_samples < FBANK_WINDOW:
        return 0
    return (1 + (num_samples - FBANK_WINDOW) // FBANK_HOP) // FRAME_STACK


class W2VBertFeatures:
    """Per-utterance w2v-BERT input features, for DataLoader workers.

    Wraps the model's own HuggingFace feature extractor (loaded from the
    same hub id or directory as the model, so the features are exactly the
    ones the model was trained on) and returns only the valid frames of one
    utterance; padding and masks are built later by the batch collation.

    Arguments
    ---------
    source : str
        Hub id or local directory of the w2v-BERT model.
    cache_dir : str, optional
        HuggingFace cache directory.
    sample_rate : int
        Rate of the waveforms passed in (the extractor's rate, 16 kHz).

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> features = W2VBertFeatures(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> features(torch.randn(16000)).shape
    torch.Size([49, 160])
    """

    def __init__(self, source, cache_dir=None, sample_rate=16000):
        from transformers import AutoFeatureExtractor

        self.extractor = AutoFeatureExtractor.from_pretrained(
            str(source), cache_dir=cache_dir
        )
        self.sample_rate = sample_rate

    def __call__(self, waveform):
        """Features of one waveform.

        Arguments
        ---------
        waveform : torch.Tensor
            ``[time]`` float samples at ``sample_rate``.

        Returns
        -------
        torch.Tensor
            ``[frames, 160]`` float32 features, ``frames`` equal to
            :func:`w2v_bert_frame_count` of the waveform length.
        """
        num_frames = w2v_bert_frame_count(waveform.shape[-1])
        if num_frames == 0:
            raise ValueError(
                f"waveform of {waveform.shape[-1]} samples is shorter than "
                f"one w2v-BERT frame ({FBANK_WINDOW + FBANK_HOP} samples)"
            )
        inputs = self.extractor(
            np.asarray(waveform, dtype=np.float32),
            sampling_rate=self.sample_rate,
            return_tensors="np",
        )
        # [1, T', 160] -> [T, 160]: drop the masked, half-padded last pair.
        return torch.from_numpy(inputs["input_features"][0, :num_frames])


def frame_mask(frame_counts, max_frames):
    """Boolean ``[B, T]`` mask, True on the real frames of each utterance.

    Arguments
    ---------
    frame_counts : torch.Tensor
        ``[B]`` integer frame counts.
    max_frames : int
        Padded length ``T``.

    Returns
    -------
    torch.Tensor
        ``[B, T]`` bool.

    Example
    -------
    >>> frame_mask(torch.tensor([1, 3]), 3)
    tensor([[ True, False, False],
            [ True,  True,  True]])
    """
    positions = torch.arange(max_frames, device=frame_counts.device)
    return positions.unsqueeze(0) < frame_counts.unsqueeze(1)


class SenseW2VBert(W2VBert):
    """SpeechBrain's ``W2VBert`` that also consumes precomputed features.

    Arguments
    ---------
    source : str
        Hub id (``facebook/w2v-bert-2.0``) or local directory.
    save_path : str
        Cache directory for hub downloads.
    freeze : bool
        Freeze the whole encoder (feature extraction for a frozen probe).
    freeze_feature_projection : bool
        Keep the input feature projection fixed while fine-tuning the rest.
    freeze_first_layers : int
        Keep the first N Conformer layers fixed while fine-tuning the rest.
    gradient_checkpointing : bool
        Recompute layer activations in the backward pass to save memory.
    **kwargs
        Passed to ``W2VBert`` (``output_norm``, ``apply_spec_augment``...).

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> encoder = SenseW2VBert(d, save_path=d, freeze=False)
    >>> feats = torch.randn(2, 7, 160)
    >>> encoder.forward_features(feats, torch.tensor([7, 4])).shape
    torch.Size([2, 7, 32])
    """

    def __init__(
        self,
        source,
        save_path,
        freeze=False,
        freeze_feature_projection=False,
        freeze_first_layers=0,
        gradient_checkpointing=False,
        **kwargs,
    ):
        super().__init__(source, save_path=save_path, freeze=freeze, **kwargs)
        layers = self.model.encoder.layers
        if freeze_first_layers > len(layers):
            raise ValueError(
                f"freeze_first_layers={freeze_first_layers} but the encoder "
                f"has {len(layers)} layers"
            )
        frozen = list(layers[:freeze_first_layers])
        if freeze_feature_projection:
            frozen.append(self.model.feature_projection)
        for module in frozen:
            for param in module.parameters():
                param.requires_grad = False
        # Without SpecAugment the mask embedding is never used: keep it out
        # of the optimiser (and out of DDP's unused-parameter check).
        masked_spec_embed = getattr(self.model, "masked_spec_embed", None)
        if (
            masked_spec_embed is not None
            and not self.model.config.apply_spec_augment
        ):
            masked_spec_embed.requires_grad = False
        if gradient_checkpointing and not freeze:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )

    @property
    def output_dim(self):
        """Width of the encoder's output frames."""
        return self.model.config.hidden_size

    def forward_features(self, features, frame_counts):
        """Encodes precomputed, right-padded features.

        Arguments
        ---------
        features : torch.Tensor
            ``[B, T, 160]`` stacked fbank features (:class:`W2VBertFeatures`).
        frame_counts : torch.Tensor
            ``[B]`` number of real frames per utterance.

        Returns
        -------
        torch.Tensor
            ``[B, T, D]`` frame representations; padded frames are
            garbage and must be masked by the consumer.
        """
        mask = frame_mask(frame_counts.to(features.device), features.shape[1])
        with torch.set_grad_enabled(
            not self.freeze and torch.is_grad_enabled()
        ):
            out = self.model(
                input_features=features,
                attention_mask=mask.long(),
                output_hidden_states=self.output_all_hiddens,
            )
        if self.output_all_hiddens:
            # [L+1, B, T, D]
            hidden = torch.stack(list(out.hidden_states), dim=0)
        else:
            hidden = out.last_hidden_state
        if self.output_norm:
            hidden = torch.nn.functional.layer_norm(hidden, hidden.shape[-1:])
        return hidden
