"""XLS-R (wav2vec 2.0) as a SENSE student encoder: the SAMU-XLSR baseline.

SAMU-XLSR (Khurana et al., 2022) trains an XLS-R encoder, attentive pooling
and a Linear + tanh so that the utterance embedding matches the frozen LaBSE
embedding of the transcript. SENSE is the same procedure with w2v-BERT 2.0
and BGE-M3. :class:`SenseXLSR` lets the SENSE recipe run that baseline
under the same procedure (``hparams/samu_xlsr.yaml``). It wraps SpeechBrain's
``Wav2Vec2`` lobe, with two of its steps changed so that an utterance
embeds the same alone and in a padded batch:

* The lobe layer-normalises the padded waveform tensor, so an utterance's
  statistics would include its neighbours' padding. Here
  :class:`XLSRFeatures` normalises each waveform over its own samples in
  the DataLoader workers, as HuggingFace's ``Wav2Vec2FeatureExtractor``
  does, and the lobe's own normalisation is off.
* The lobe's ``output_norm`` normalises over time and features together,
  padded frames included. Here ``output_norm`` normalises each frame over
  its features only.

Padding is then invisible, as long as the model's convolutional feature
encoder uses layer norm (``feat_extract_norm="layer"``, as XLS-R does). The
group norm of wav2vec2-base normalises over time and would leak padding,
so such a model is refused.

The "features" of an utterance are its normalised samples, ``[T, 1]``, and
``frame_counts`` are sample counts: :meth:`SenseXLSR.output_frame_counts`
maps them to encoder frames (20 ms, a 400-sample receptive field every 320
samples). On raw padded waveforms (inference), :meth:`SenseXLSR.forward`
normalises each utterance over its own samples exactly as
:class:`XLSRFeatures` does, so an exported model
(:class:`speechbrain_sense.encoders.pretrained.XLSRFromConfig`) embeds what the
student embedded in training.

Authors
 * speechbrain-sense developers 2026
"""

import torch
from speechbrain.integrations.huggingface.wav2vec2 import Wav2Vec2

from speechbrain_sense.encoders.w2v_bert import (
    check_waveform_batch,
    frame_mask,
    sample_counts,
)


def normalized_waveform(waveform, eps=1e-7):
    """Zero-mean, unit-variance samples, as ``Wav2Vec2FeatureExtractor``.

    Arguments
    ---------
    waveform : torch.Tensor
        ``[T]`` samples of one utterance.
    eps : float
        Added to the variance (the extractor's 1e-7).

    Returns
    -------
    torch.Tensor
        ``[T]`` float32.

    Example
    -------
    >>> x = normalized_waveform(torch.tensor([1.0, 2.0, 3.0]))
    >>> [round(v, 4) for v in x.tolist()]
    [-1.2247, 0.0, 1.2247]
    """
    waveform = waveform.float()
    mean = waveform.mean()
    # The extractor's np.var: the biased variance.
    return (waveform - mean) / torch.sqrt(waveform.var(unbiased=False) + eps)


class XLSRFeatures:
    """Per-utterance XLS-R input, for DataLoader workers.

    Arguments
    ---------
    source : str
        Hub id or local directory of the wav2vec 2.0 / XLS-R model (its
        feature extractor's settings).
    cache_dir : str, optional
        HuggingFace cache directory.
    sample_rate : int
        Rate of the waveforms passed in (the extractor's, 16 kHz).

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_xls_r
    >>> features = XLSRFeatures(save_tiny_xls_r(tempfile.mkdtemp()))
    >>> features(torch.randn(16000)).shape
    torch.Size([16000, 1])
    """

    def __init__(self, source, cache_dir=None, sample_rate=16000):
        from transformers import AutoFeatureExtractor

        self.extractor = AutoFeatureExtractor.from_pretrained(
            str(source), cache_dir=cache_dir
        )
        if sample_rate != self.extractor.sampling_rate:
            raise ValueError(
                f"{source}'s feature extractor expects "
                f"{self.extractor.sampling_rate} Hz, got {sample_rate} Hz"
            )
        self.normalize = bool(self.extractor.do_normalize)

    def __call__(self, waveform):
        """Input of one waveform.

        Arguments
        ---------
        waveform : torch.Tensor
            ``[T]`` float samples.

        Returns
        -------
        torch.Tensor
            ``[T, 1]`` float32 (normalised when the extractor says so).
        """
        waveform = torch.as_tensor(waveform).float()
        if xls_r_frame_count(waveform.shape[-1]) == 0:
            raise ValueError(
                f"waveform of {waveform.shape[-1]} samples is shorter than "
                f"one XLS-R frame ({RECEPTIVE_FIELD} samples)"
            )
        if self.normalize:
            waveform = normalized_waveform(waveform)
        # [T] -> [T, 1]: one "feature" per sample, padded by the batch.
        return waveform[:, None]


#: Samples seen by one output frame, and samples between frames, of the
#: standard wav2vec 2.0 convolutional encoder (kernels 10,3,3,3,3,2,2;
#: strides 5,2,2,2,2,2,2).
RECEPTIVE_FIELD = 400
HOP = 320


def padded_samples(wav, wav_lens=None, normalize=True):
    """XLS-R input of padded waveforms: each cut to its real samples.

    With ``normalize`` (the extractor's ``do_normalize``), each utterance
    is normalised over its own samples (:func:`normalized_waveform`), so
    its input does not depend on the batch's padding.

    Arguments
    ---------
    wav : torch.Tensor
        ``[B, T]`` padded 16 kHz waveforms.
    wav_lens : torch.Tensor, optional
        ``[B]`` lengths relative to ``T`` (default: all 1).
    normalize : bool
        Normalise each utterance.

    Returns
    -------
    features : torch.Tensor
        ``[B, T', 1]`` zero-padded samples.
    sample_counts : torch.Tensor
        ``[B]`` real samples per utterance.

    Example
    -------
    >>> x, n = padded_samples(torch.randn(2, 800), torch.tensor([1.0, 0.5]))
    >>> x.shape, n.tolist(), round(float(x[1, :400].std(unbiased=False)), 3)
    (torch.Size([2, 800, 1]), [800, 400], 1.0)
    """
    if wav_lens is None:
        wav_lens = torch.ones(len(wav))
    samples = sample_counts(wav_lens, wav.shape[1])
    waveforms = []
    for w, n in zip(wav, samples):
        w = w[: int(n)].float()
        waveforms.append(normalized_waveform(w) if normalize else w)
    # [B] x [T_i] -> [B, T'] -> [B, T', 1]
    padded = torch.nn.utils.rnn.pad_sequence(waveforms, batch_first=True)
    return padded[..., None], samples


def xls_r_frame_count(num_samples):
    """Encoder frames of an utterance of ``num_samples`` samples.

    Arguments
    ---------
    num_samples : int
        Samples at 16 kHz.

    Returns
    -------
    int
        ``floor((num_samples - 400) / 320) + 1``, or 0 when shorter than
        400 samples.

    Example
    -------
    >>> xls_r_frame_count(16000), xls_r_frame_count(399)
    (49, 0)
    """
    if num_samples < RECEPTIVE_FIELD:
        return 0
    return (num_samples - RECEPTIVE_FIELD) // HOP + 1


def check_xls_r_config(config, source):
    """Refuses a wav2vec 2.0 model whose batched frames depend on padding.

    Arguments
    ---------
    config : transformers.Wav2Vec2Config
        The model's config.
    source : str
        Where it came from (for the message).

    Raises
    ------
    ValueError
        For group norm in the convolutional encoder (wav2vec2-base), or a
        convolutional encoder other than the standard one (whose frame
        counts :func:`xls_r_frame_count` would get wrong).

    Example
    -------
    >>> from transformers import Wav2Vec2Config
    >>> check_xls_r_config(Wav2Vec2Config(feat_extract_norm="layer"), "m")
    >>> check_xls_r_config(Wav2Vec2Config(), "base")
    Traceback (most recent call last):
      ...
    ValueError: base: feat_extract_norm='group' normalises over the padded batch's time axis, so batched embeddings would depend on padding; use a model with layer norm (XLS-R)
    """
    if config.feat_extract_norm != "layer":
        raise ValueError(
            f"{source}: feat_extract_norm={config.feat_extract_norm!r} "
            "normalises over the padded batch's time axis, so batched "
            "embeddings would depend on padding; use a model with layer "
            "norm (XLS-R)"
        )
    if (
        list(config.conv_kernel),
        list(config.conv_stride),
    ) != ([10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2]):
        raise ValueError(
            f"{source}: not the standard wav2vec 2.0 convolutional "
            f"encoder (kernels {config.conv_kernel}, strides "
            f"{config.conv_stride})"
        )


class SenseXLSR(Wav2Vec2):
    """SpeechBrain's ``Wav2Vec2`` lobe on per-utterance normalised input.

    Arguments
    ---------
    source : str
        Hub id (``facebook/wav2vec2-xls-r-300m``, ``-1b``) or local
        directory.
    save_path : str
        Cache directory for hub downloads.
    freeze : bool
        Freeze the whole encoder.
    freeze_feature_extractor : bool
        Keep the convolutional feature encoder fixed (as SAMU-XLSR and
        most wav2vec 2.0 fine-tuning do).
    apply_spec_augment : bool
        wav2vec 2.0's time and feature masking while training.
    gradient_checkpointing : bool
        Recompute layer activations in the backward pass to save memory.
    output_norm : bool
        Layer-normalise each output frame over its features.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_xls_r
    >>> d = str(save_tiny_xls_r(tempfile.mkdtemp()))
    >>> encoder = SenseXLSR(d, save_path=d)
    >>> samples = torch.tensor([16000, 8000])
    >>> frames = encoder.forward_features(torch.randn(2, 16000, 1), samples)
    >>> frames.shape, encoder.output_frame_counts(samples).tolist()
    (torch.Size([2, 49, 32]), [49, 24])
    """

    # Input samples per output frame, and samples one frame reads: what
    # long-form windows need to cut the waveform between frames.
    input_hop = HOP
    input_receptive_field = RECEPTIVE_FIELD

    def __init__(
        self,
        source,
        save_path,
        freeze=False,
        freeze_feature_extractor=True,
        apply_spec_augment=False,
        gradient_checkpointing=False,
        output_norm=False,
    ):
        super().__init__(
            source,
            save_path=save_path,
            output_norm=False,
            freeze=freeze,
            freeze_feature_extractor=freeze_feature_extractor,
            apply_spec_augment=apply_spec_augment,
        )
        check_xls_r_config(self.model.config, source)
        self.normalize_input = bool(self.feature_extractor.do_normalize)
        self.sample_rate = self.feature_extractor.sampling_rate
        # XLSRFeatures normalised each utterance over its own samples.
        self.normalize_wav = False
        self.frame_norm = output_norm
        masked_spec_embed = getattr(self.model, "masked_spec_embed", None)
        if masked_spec_embed is not None and not apply_spec_augment:
            # Unused without SpecAugment: out of the optimiser and of DDP's
            # unused-parameter check.
            masked_spec_embed.requires_grad = False
        if gradient_checkpointing and not freeze:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )

    @property
    def output_dim(self):
        """Width of the encoder's output frames."""
        return self.model.config.hidden_size

    def output_frame_counts(self, sample_counts):
        """Encoder frames of utterances of ``sample_counts`` samples.

        Arguments
        ---------
        sample_counts : torch.Tensor
            ``[B]`` real samples per utterance.

        Returns
        -------
        torch.Tensor
            ``[B]`` real output frames (:func:`xls_r_frame_count`).
        """
        counts = sample_counts
        if not isinstance(counts, torch.Tensor):
            # as_tensor would be a constant of an ONNX trace
            counts = torch.as_tensor(counts)
        frames = (counts - RECEPTIVE_FIELD).div(HOP, rounding_mode="floor") + 1
        return frames.clamp(min=0)

    def waveform_features(self, wav, wav_lens=None):
        """Padded, per-utterance normalised input of padded waveforms.

        Each utterance is cut to its real samples and normalised over
        them alone (:func:`normalized_waveform`, as :class:`XLSRFeatures`
        in training), so its input does not depend on the batch's padding.

        Arguments
        ---------
        wav : torch.Tensor
            ``[B, T]`` padded 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` lengths relative to ``T`` (default: all 1).

        Returns
        -------
        features : torch.Tensor
            ``[B, T, 1]`` zero-padded samples.
        sample_counts : torch.Tensor
            ``[B]`` real samples per utterance.
        """
        check_waveform_batch(wav, wav_lens)
        return padded_samples(wav, wav_lens, self.normalize_input)

    def forward(self, wav, wav_lens=None):
        """Encodes raw, padded waveforms (inference).

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
            :func:`xls_r_frame_count` are padding.
        """
        features, samples = self.waveform_features(wav, wav_lens)
        return self.forward_features(features, samples)

    def forward_features(self, features, frame_counts):
        """Encodes right-padded, normalised waveforms.

        Arguments
        ---------
        features : torch.Tensor
            ``[B, T, 1]`` samples (:class:`XLSRFeatures`).
        frame_counts : torch.Tensor
            ``[B]`` real samples per utterance.

        Returns
        -------
        torch.Tensor
            ``[B, T', D]`` frames; those past
            :meth:`output_frame_counts` are garbage and must be masked by
            the consumer.
        """
        # [B, T, 1] -> [B, T]
        wav = features[..., 0]
        mask = frame_mask(frame_counts.to(wav.device), wav.shape[1])
        with torch.set_grad_enabled(
            not self.freeze and torch.is_grad_enabled()
        ):
            hidden = self.model(wav, attention_mask=mask.long())
        hidden = hidden.last_hidden_state
        if self.frame_norm:
            hidden = torch.nn.functional.layer_norm(hidden, (self.output_dim,))
        return hidden
