"""w2v-BERT 2.0 as a SENSE student: features off the training thread.

SpeechBrain's ``W2VBert`` computes the 160-d stacked fbank features inside
``forward``: it copies the batch back to the CPU, runs the NumPy feature
extractor on the training thread, and copies the result to the GPU again,
every step. :class:`W2VBertFeatures` computes the same features inside the
DataLoader workers, one utterance at a time, and :class:`SenseW2VBert` (a
``W2VBert`` subclass, so hub ids, local directories and SpeechBrain
checkpoints load the same way) consumes the features with an explicit frame
count per utterance. Its raw-waveform ``forward`` (inference from files)
computes the features the same way, so training and inference see the
same numbers.

The features are those of HuggingFace's ``SeamlessM4TFeatureExtractor``
(Kaldi-style log-mel fbank, per-utterance mean/variance normalisation,
pairs of frames stacked), computed by :func:`w2v_bert_fbank` with the
extractor's own window and mel filters but vectorised in PyTorch: the
extractor's NumPy code loops over frames in Python and costs ~2 ms per
second of audio on one core, the vectorised version ~0.3 ms, and agrees
with it to ~1e-4 on the unit-variance features.

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


# SeamlessM4TFeatureExtractor's fixed Kaldi settings.
PREEMPHASIS = 0.97
MEL_FLOOR = 1.192092955078125e-07  # float32 epsilon
INT16_SCALE = 2**15  # Kaldi works on 16-bit integer sample values
FFT_LENGTH = 512
FBANK_BLOCK = 256  # frames per block in W2VBertFbank


class W2VBertFbank(torch.nn.Module):
    """Vectorised ``SeamlessM4TFeatureExtractor`` features of one waveform.

    Same computation as the extractor (Kaldi fbank: per-frame DC removal,
    pre-emphasis, Povey window, 512-point power spectrum, Kaldi mel
    filters, log; mean/variance normalisation per mel bin with the
    unbiased variance; pairs of frames stacked), with the extractor's own
    window and filters, but every frame at once and on any device.

    Arguments
    ---------
    extractor : transformers.SeamlessM4TFeatureExtractor
        The model's feature extractor (``window``, ``mel_filters``,
        ``stride``).

    Example
    -------
    >>> import tempfile
    >>> from transformers import AutoFeatureExtractor
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> d = save_tiny_w2v_bert(tempfile.mkdtemp())
    >>> extractor = AutoFeatureExtractor.from_pretrained(str(d))
    >>> W2VBertFbank(extractor)(torch.randn(16000)).shape
    torch.Size([49, 160])
    """

    def __init__(self, extractor):
        super().__init__()
        if not self.supports(extractor):
            raise ValueError(
                f"{type(extractor).__name__} is not a w2v-BERT "
                "(SeamlessM4T) feature extractor with stride 2"
            )
        # Not persistent: they come from the extractor's config, and
        # checkpoints of the encoder stay those of the HuggingFace model.
        self.register_buffer(
            "window",
            torch.tensor(extractor.window, dtype=torch.float32),
            persistent=False,
        )
        # [257, n_mels]
        self.register_buffer(
            "mel_filters",
            torch.tensor(extractor.mel_filters, dtype=torch.float32),
            persistent=False,
        )

    @staticmethod
    def supports(extractor):
        """Whether ``extractor`` computes the features this class does.

        Arguments
        ---------
        extractor : object
            A HuggingFace feature extractor.

        Returns
        -------
        bool
        """
        return (
            type(extractor).__name__ == "SeamlessM4TFeatureExtractor"
            and getattr(extractor, "stride", None) == FRAME_STACK
            and len(getattr(extractor, "window", ())) == FBANK_WINDOW
            and np.shape(getattr(extractor, "mel_filters", None))[:1]
            == (FFT_LENGTH // 2 + 1,)
        )

    def _log_mel(self, frames):
        """Kaldi log-mel energies of ``[F, 400]`` float64 frames."""
        frames = frames - frames.mean(dim=1, keepdim=True)
        frames = torch.cat(
            (
                frames[:, :1] * (1 - PREEMPHASIS),
                frames[:, 1:] - PREEMPHASIS * frames[:, :-1],
            ),
            dim=1,
        )
        # [F, 400] -> [F, 257] -> [F, n_mels]
        spectrum = torch.fft.rfft(frames * self.window.double(), n=FFT_LENGTH)
        # |X|^2 without complex abs (a square root, then a square: 5x the
        # time); float32 is exact enough from here: all terms are positive.
        power = (spectrum.real**2 + spectrum.imag**2).float()
        return torch.log(torch.clamp(power @ self.mel_filters, MEL_FLOOR))

    def forward(self, waveform):
        """Features of one waveform.

        Arguments
        ---------
        waveform : torch.Tensor
            ``[time]`` 16 kHz samples in [-1, 1].

        Returns
        -------
        torch.Tensor
            ``[frames, 160]`` float32, ``frames`` equal to
            :func:`w2v_bert_frame_count` of the length.
        """
        num_frames = w2v_bert_frame_count(waveform.shape[-1])
        if num_frames == 0:
            raise ValueError(
                f"waveform of {waveform.shape[-1]} samples is shorter than "
                f"one w2v-BERT frame ({FBANK_WINDOW + FBANK_HOP} samples)"
            )
        # float64 as the extractor: float32 spectra lose the weak high
        # bins of band-limited speech (errors up to 1e-2 after the
        # per-bin normalisation).
        wav = waveform.to(self.window.device, torch.float64) * INT16_SCALE
        # [time] -> [F, 400] -> [F, n_mels], in blocks of frames that stay
        # in the CPU cache (2x faster than all frames at once for 10 s).
        frames = wav.unfold(0, FBANK_WINDOW, FBANK_HOP)
        logmel = torch.cat(
            [
                self._log_mel(frames[i : i + FBANK_BLOCK])
                for i in range(0, len(frames), FBANK_BLOCK)
            ]
        )
        # Statistics over all F frames, as the extractor (the odd last
        # frame included); unbiased variance, as its NumPy ddof=1.
        mean = logmel.mean(dim=0, keepdim=True)
        std = torch.sqrt(logmel.var(dim=0, keepdim=True) + 1e-7)
        normalised = (logmel - mean) / std
        # [2F', n_mels] -> [F', 2 * n_mels]
        return normalised[: num_frames * FRAME_STACK].reshape(num_frames, -1)


class W2VBertFeatures:
    """Per-utterance w2v-BERT input features, for DataLoader workers.

    Built from the model's own HuggingFace feature extractor (loaded from
    the same hub id or directory as the model) and returns only the valid
    frames of one utterance; padding and masks are built later by the
    batch collation.

    Arguments
    ---------
    source : str
        Hub id or local directory of the w2v-BERT model.
    cache_dir : str, optional
        HuggingFace cache directory.
    sample_rate : int
        Rate of the waveforms passed in (the extractor's rate, 16 kHz).
    vectorized : bool
        Compute with :class:`W2VBertFbank` (default), else call the
        HuggingFace extractor itself (NumPy, a Python loop over frames).

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> features = W2VBertFeatures(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> features(torch.randn(16000)).shape
    torch.Size([49, 160])
    """

    def __init__(
        self, source, cache_dir=None, sample_rate=16000, vectorized=True
    ):
        from transformers import AutoFeatureExtractor

        self.extractor = AutoFeatureExtractor.from_pretrained(
            str(source), cache_dir=cache_dir
        )
        if sample_rate != self.extractor.sampling_rate:
            raise ValueError(
                f"{source}'s feature extractor expects "
                f"{self.extractor.sampling_rate} Hz, got {sample_rate} Hz"
            )
        self.sample_rate = sample_rate
        self.fbank = None
        if vectorized and W2VBertFbank.supports(self.extractor):
            self.fbank = W2VBertFbank(self.extractor)

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
        if self.fbank is not None:
            with torch.no_grad():
                return self.fbank(torch.as_tensor(waveform))
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


def check_waveform_batch(wav, wav_lens=None):
    """Refuses a waveform batch that would give a silently wrong embedding.

    Arguments
    ---------
    wav : torch.Tensor
        ``[B, T]`` padded waveforms.
    wav_lens : torch.Tensor, optional
        ``[B]`` lengths relative to ``T``, in ``(0, 1]``.

    Raises
    ------
    ValueError
        Naming the problem: rank, dtype, a ``wav_lens`` that does not match
        the batch or lies outside ``(0, 1]``, or NaN/inf samples (whose
        utterances it names by index).

    Example
    -------
    >>> check_waveform_batch(torch.zeros(2, 8000), torch.tensor([1.0, 0.5]))
    >>> check_waveform_batch(torch.zeros(2, 8000), torch.tensor([1.0]))
    Traceback (most recent call last):
    ...
    ValueError: wav_lens has 1 entries for a batch of 2 waveforms
    """
    if not isinstance(wav, torch.Tensor) or wav.dim() != 2:
        shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav)
        raise ValueError(
            f"expected a [batch, time] waveform tensor, got {shape}"
        )
    if not wav.is_floating_point():
        raise ValueError(f"expected floating-point waveforms, got {wav.dtype}")
    if wav_lens is not None:
        wav_lens = torch.as_tensor(wav_lens)
        if wav_lens.dim() != 1 or len(wav_lens) != len(wav):
            raise ValueError(
                f"wav_lens has {wav_lens.numel()} entries for a batch of "
                f"{len(wav)} waveforms"
            )
        if not bool(((wav_lens > 0) & (wav_lens <= 1 + 1e-6)).all()):
            raise ValueError(
                f"wav_lens must be relative lengths in (0, 1], got "
                f"{wav_lens.tolist()}"
            )
    finite = torch.isfinite(wav).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten().tolist()
        raise ValueError(f"waveforms {bad} of the batch contain NaN or inf")


def sample_counts(wav_lens, padded_length):
    """Real samples of padded waveforms from SpeechBrain relative lengths.

    Rounded exactly as SpeechBrain's ``undo_padding`` cuts the waveforms.

    Arguments
    ---------
    wav_lens : torch.Tensor
        ``[B]`` lengths relative to ``padded_length``.
    padded_length : int
        ``T``, the padded number of samples.

    Returns
    -------
    torch.Tensor
        ``[B]`` long sample counts, on the CPU.

    Example
    -------
    >>> sample_counts(torch.tensor([1.0, 0.5]), 16001).tolist()
    [16001, 8000]
    """
    return torch.round(wav_lens.detach().cpu().float() * padded_length).long()


def vectorized_fbank(extractor):
    """:class:`W2VBertFbank` of ``extractor``, or None if it is another kind.

    Arguments
    ---------
    extractor : object
        A HuggingFace feature extractor.

    Returns
    -------
    W2VBertFbank or None
    """
    return W2VBertFbank(extractor) if W2VBertFbank.supports(extractor) else None


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
        self.fbank = vectorized_fbank(self.feature_extractor)

    @property
    def output_dim(self):
        """Width of the encoder's output frames."""
        return self.model.config.hidden_size

    def forward(self, wav, wav_lens=None):
        """Encodes raw, padded waveforms (inference from files).

        Features are computed per utterance with the same code as
        :class:`W2VBertFeatures` in training (on the waveforms' device),
        then encoded by :meth:`forward_features`.

        Arguments
        ---------
        wav : torch.Tensor
            ``[B, T]`` padded 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` lengths relative to ``T`` (default: all 1).

        Returns
        -------
        torch.Tensor
            ``[B, T', D]`` frames; those past an utterance's
            :func:`w2v_bert_frame_count` are padding.
        """
        if self.fbank is None:
            return super().forward(wav, wav_lens)
        features, counts = self.waveform_features(wav, wav_lens)
        return self.forward_features(features, counts)

    def waveform_features(self, wav, wav_lens=None):
        """Padded features and frame counts of padded waveforms.

        Arguments
        ---------
        wav : torch.Tensor
            ``[B, T]`` padded 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` lengths relative to ``T``.

        Returns
        -------
        features : torch.Tensor
            ``[B, T', 160]`` zero-padded features.
        frame_counts : torch.Tensor
            ``[B]`` real frames.
        """
        check_waveform_batch(wav, wav_lens)
        if wav_lens is None:
            wav_lens = torch.ones(len(wav))
        samples = sample_counts(wav_lens, wav.shape[1])
        with torch.no_grad():
            features = [
                self.fbank(w[: int(n)].detach().float())
                for w, n in zip(wav, samples)
            ]
        counts = torch.tensor([len(f) for f in features])
        # [B] x [T_i, 160] -> [B, T', 160]
        padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
        return padded, counts

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
            # A constant width, not hidden.shape[-1:]: the ONNX tracer
            # cannot take a traced size as normalized_shape.
            hidden = torch.nn.functional.layer_norm(hidden, (self.output_dim,))
        return hidden
