"""The modules an exported SENSE model folder builds, and its interface.

An exported model folder (:mod:`speechbrain_sense.encoders.export`) is meant to
load with nothing but SpeechBrain installed. Its ``hyperparams.yaml``
names its classes as ``custom.<Name>``, and its ``custom.py`` is this
module bundled with those it builds on (:mod:`speechbrain_sense.encoders.w2v_bert`,
:mod:`speechbrain_sense.encoders.xls_r`, :mod:`speechbrain_sense.encoders.long_form` and
:mod:`speechbrain_sense.encoders.pooling`, see
:func:`speechbrain_sense.encoders.export.custom_module_source`). These modules
therefore import only PyTorch, NumPy, transformers and SpeechBrain, and
each other.

Loading:

* without this package, through SpeechBrain's ``foreign_class``, which
  fetches ``custom.py`` next to ``hyperparams.yaml`` and puts its folder on
  ``sys.path``::

      from speechbrain.inference.interfaces import foreign_class

      model = foreign_class(
          source="org/sense-w2v-bert",
          pymodule_file="custom.py",
          classname="SenseEncoderInterface",
      )
      emb = model.encode_batch(wavs, wav_lens)  # [B, 1, D]

* with this package, through :meth:`SenseEncoderInterface.from_hparams`
  or :class:`speechbrain_sense.encoders.inference.SenseEncoder`, which resolve
  ``custom.<Name>`` to this module's classes: no code from the model
  folder runs, and ``custom.py`` is not even fetched.

SpeechBrain's ``Pretrained.from_hparams`` fetched ``custom.py`` itself up
to 1.0.3; from 1.1 on only ``foreign_class`` does, so a stock
``EncoderClassifier.from_hparams`` finds ``custom`` only when its folder is
on ``sys.path``.

The pieces:

* :class:`W2VBertFromConfig`: the w2v-BERT 2.0 encoder built from its
  HuggingFace config and feature-extractor settings, which the yaml holds
  inline; its raw-waveform ``forward`` computes the features with the same
  :class:`~speechbrain_sense.encoders.w2v_bert.W2VBertFbank` as the training
  DataLoader workers, so inference sees exactly the training inputs.
* :class:`XLSRFromConfig`: the same for an XLS-R (wav2vec 2.0) student,
  the SAMU-XLSR baseline: its raw-waveform ``forward`` normalises each
  utterance over its own samples, as
  :class:`~speechbrain_sense.encoders.xls_r.XLSRFeatures` did in training.
* :class:`SenseUtteranceEncoder`: encoder + :class:`SenseEmbeddingHead`,
  with the same parameter names as the training-time ``SenseStudent``, so
  a recipe's ``student.ckpt`` is its state dict as is. It maps padded
  waveforms and SpeechBrain relative lengths to ``[B, 1, D]`` embeddings.
* :class:`PassThrough` for the ``compute_features`` and ``mean_var_norm``
  slots that ``EncoderClassifier.encode_batch`` calls: both encoders
  compute (and normalise) their own input.
* :class:`SenseEncoderInterface`: ``EncoderClassifier`` plus
  ``encode_frames`` and ``attention_weights``.

Authors
 * speechbrain-sense developers 2026
"""

import contextlib
import sys
import types

import torch
from speechbrain.inference.classifiers import EncoderClassifier
from speechbrain.utils.checkpoints import (
    mark_as_transfer,
    register_checkpoint_hooks,
)
from torch import nn

# The yaml builds custom.SenseEmbeddingHead: it must be a name here.
from speechbrain_sense.encoders.long_form import (
    LongFormEncoder,
    seconds_to_frames,
)
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead  # noqa: F401
from speechbrain_sense.encoders.w2v_bert import (
    SenseW2VBert,
    check_waveform_batch,
    sample_counts,
    vectorized_fbank,
    w2v_bert_frame_count,
)
from speechbrain_sense.encoders.xls_r import SenseXLSR, check_xls_r_config

# The module name the exported hyperparams.yaml gives these classes.
CUSTOM_MODULE = "custom"


class PassThrough(nn.Module):
    """Returns its first input unchanged, whatever else it is given.

    Fills the ``compute_features(wavs)`` and ``mean_var_norm(feats,
    wav_lens)`` slots of ``EncoderClassifier.encode_batch``.

    Example
    -------
    >>> PassThrough()(torch.ones(2), torch.zeros(1)).shape
    torch.Size([2])
    """

    def forward(self, x, *args, **kwargs):
        """Returns ``x`` unchanged.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T]`` waveforms (``compute_features``) or whatever the
            previous slot returned (``mean_var_norm``).
        *args
            Ignored (``EncoderClassifier`` passes the relative lengths).
        **kwargs
            Ignored.

        Returns
        -------
        torch.Tensor
            ``x``.
        """
        return x


def _no_init_weights():
    """Skips random initialisation of weights that are loaded right after.

    Returns
    -------
    contextlib.AbstractContextManager
        transformers' ``no_init_weights()``, or a no-op on versions
        without it.
    """
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: initialise, only slower
        return contextlib.nullcontext()
    return no_init_weights()


def _model_from_configs(config, feature_extractor, model_type, init_weights):
    """A HuggingFace model and feature extractor from their config dicts.

    Arguments
    ---------
    config : dict
        ``config.json``, whose ``model_type`` must be ``model_type``.
    feature_extractor : dict
        ``preprocessor_config.json`` (with ``feature_extractor_type``).
    model_type : str
        The expected ``model_type``.
    init_weights : bool
        Randomly initialise the weights (off: they are loaded right after).

    Returns
    -------
    config : transformers.PretrainedConfig
    model : transformers.PreTrainedModel
    extractor : transformers.FeatureExtractionMixin
    """
    import transformers

    config = dict(config)
    found = config.pop("model_type", None)
    if found != model_type:
        raise ValueError(
            f"expected a config with model_type {model_type!r}, got "
            f"model_type {found!r}"
        )
    config = transformers.AutoConfig.for_model(model_type, **config)
    skip_init = contextlib.nullcontext() if init_weights else None
    with skip_init or _no_init_weights():
        model = transformers.AutoModel.from_config(config)
    extractor = dict(feature_extractor)
    extractor_class = getattr(
        transformers, extractor.pop("feature_extractor_type")
    )
    return config, model, extractor_class(**extractor)


class W2VBertFromConfig(SenseW2VBert):
    """A frozen :class:`SenseW2VBert` built from its HuggingFace configs.

    ``SenseW2VBert`` loads config *and weights* from a hub id or
    directory; an exported model carries the weights in its own checkpoint
    and the configs as dictionaries, so the module is built here from those
    alone, and the SpeechBrain pretrainer fills in the weights. Everything
    else (``forward`` on raw waveforms, ``forward_features``) is the
    training code.

    Arguments
    ---------
    config : dict
        The encoder's HuggingFace ``config.json`` (``model_type``
        ``"wav2vec2-bert"``).
    feature_extractor : dict
        Its ``preprocessor_config.json``.
    output_norm : bool
        Layer-normalise the output frames (as the training encoder did).
    init_weights : bool
        Randomly initialise the weights. Off by default: they are loaded
        from the checkpoint right after, and initialising 600M parameters
        takes seconds.

    Example
    -------
    >>> import json, tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> d = save_tiny_w2v_bert(tempfile.mkdtemp())
    >>> encoder = W2VBertFromConfig(
    ...     json.loads((d / "config.json").read_text()),
    ...     json.loads((d / "preprocessor_config.json").read_text()),
    ...     init_weights=True,
    ... )
    >>> encoder(torch.randn(2, 16000), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 49, 32])
    """

    def __init__(
        self, config, feature_extractor, output_norm=False, init_weights=False
    ):
        # W2VBert.__init__ would download/load weights by source: skip it
        # and set the attributes its forward methods read.
        nn.Module.__init__(self)
        self.config, self.model, self.feature_extractor = _model_from_configs(
            config, feature_extractor, "wav2vec2-bert", init_weights
        )
        self.sample_rate = self.feature_extractor.sampling_rate
        self.model.config.apply_spec_augment = False
        self.output_norm = output_norm
        self.output_all_hiddens = False
        self.freeze = True
        self.freeze_model(self.model)
        self.fbank = vectorized_fbank(self.feature_extractor)


class XLSRFromConfig(SenseXLSR):
    """A frozen XLS-R ``SenseXLSR`` built from its HuggingFace configs.

    The XLS-R counterpart of :class:`W2VBertFromConfig`: the exported
    model's yaml holds the configs, its checkpoint the weights, so nothing
    is downloaded. ``forward`` on raw waveforms and ``forward_features``
    are the training code.

    Arguments
    ---------
    config : dict
        The encoder's HuggingFace ``config.json`` (``model_type``
        ``"wav2vec2"``).
    feature_extractor : dict
        Its ``preprocessor_config.json``.
    output_norm : bool
        Layer-normalise each output frame over its features (as the
        training encoder did).
    init_weights : bool
        Randomly initialise the weights (off: they are loaded right after).

    Example
    -------
    >>> import json, tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_xls_r
    >>> d = save_tiny_xls_r(tempfile.mkdtemp())
    >>> encoder = XLSRFromConfig(
    ...     json.loads((d / "config.json").read_text()),
    ...     json.loads((d / "preprocessor_config.json").read_text()),
    ...     init_weights=True,
    ... )
    >>> encoder(torch.randn(2, 16000), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 49, 32])
    """

    def __init__(
        self, config, feature_extractor, output_norm=False, init_weights=False
    ):
        # Wav2Vec2.__init__ would download/load weights by source: skip it
        # and set the attributes the forward methods read.
        nn.Module.__init__(self)
        self.config, self.model, self.feature_extractor = _model_from_configs(
            config, feature_extractor, "wav2vec2", init_weights
        )
        check_xls_r_config(self.config, "the exported XLS-R encoder")
        self.sample_rate = self.feature_extractor.sampling_rate
        self.normalize_input = bool(self.feature_extractor.do_normalize)
        self.model.config.apply_spec_augment = False
        # The lobe's own normalisations are off, as in training.
        self.normalize_wav = False
        self.output_norm = False
        self.frame_norm = output_norm
        self.output_all_hiddens = False
        self.freeze = True
        self.freeze_feature_extractor = True
        self.freeze_model(self.model)
        # No fbank: the input is samples (long-form windows cut samples,
        # and the ONNX export handles fbank features only).
        self.fbank = None


@register_checkpoint_hooks
class SenseUtteranceEncoder(nn.Module):
    """Waveforms to SENSE utterance embeddings, SpeechBrain style.

    Same parameters (and names) as ``SenseStudent``: ``encoder.model.*``
    and ``head.*``.

    Arguments
    ---------
    encoder : SenseW2VBert or SenseXLSR
        The speech encoder (raw-waveform ``forward(wavs, wav_lens)``).
    head : SenseEmbeddingHead
        Length-masked attentive pooling, projection, L2 normalisation.
    long_form_window : float, optional
        Seconds. An utterance longer than this is encoded in overlapping
        windows of this length (:class:`~speechbrain_sense.encoders.long_form.\
LongFormEncoder`), and its stitched frames are pooled as one sequence,
        so memory grows linearly with its length instead of quadratically.
        Shorter utterances are encoded whole, exactly as before. ``None``
        encodes everything whole.
    long_form_stride : float
        Seconds between the starts of consecutive windows.
    long_form_batch_size : int
        Windows encoded at once (bounds the memory of one call).

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> model = SenseUtteranceEncoder(
    ...     SenseW2VBert(d, d, freeze=True), SenseEmbeddingHead(32, 16)
    ... )
    >>> model(torch.randn(2, 16000), torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 1, 16])
    """

    def __init__(
        self,
        encoder,
        head,
        long_form_window=30.0,
        long_form_stride=20.0,
        long_form_batch_size=4,
    ):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.long_form_window = self.long_form_stride = None
        if long_form_window is not None:
            self.long_form_window = seconds_to_frames(long_form_window)
            self.long_form_stride = seconds_to_frames(long_form_stride)
        self.long_form_batch_size = long_form_batch_size
        self._long_form()  # refuses a bad window now, not at the first use

    def _long_form(self):
        """The window-by-window encoder for long utterances, if enabled.

        Returns
        -------
        LongFormEncoder or None
        """
        if self.long_form_window is None:
            return None
        return LongFormEncoder(
            self._encode_window,
            window=self.long_form_window,
            stride=self.long_form_stride,
            chunk_batch_size=self.long_form_batch_size,
            hop=getattr(self.encoder, "input_hop", 1),
            receptive_field=getattr(self.encoder, "input_receptive_field", 1),
        )

    def _encode_window(self, features, frame_counts):
        """Frames of a batch of input windows (for ``long_form``).

        Arguments
        ---------
        features : torch.Tensor
            ``[N, W, 160]`` padded feature windows, or ``[N, W, 1]``
            sample windows for XLS-R.
        frame_counts : torch.Tensor
            ``[N]`` real input steps per window.

        Returns
        -------
        frames : torch.Tensor
            ``[N, W', D]``.
        frame_counts : torch.Tensor
            ``[N]`` real output frames.
        """
        frames = self.encoder.forward_features(features, frame_counts)
        output_frame_counts = getattr(self.encoder, "output_frame_counts", None)
        if output_frame_counts is not None:
            frame_counts = output_frame_counts(frame_counts)
        return frames, frame_counts

    def frame_counts(self, wavs, wav_lens):
        """Real encoder frames of each padded waveform.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` padded waveforms.
        wav_lens : torch.Tensor
            ``[B]`` lengths relative to ``T``.

        Returns
        -------
        torch.Tensor
            ``[B]`` long frame counts.
        """
        samples = sample_counts(wav_lens, wavs.shape[1])
        output_frame_counts = getattr(self.encoder, "output_frame_counts", None)
        if output_frame_counts is not None:
            # XLS-R: a 400-sample receptive field every 320 samples.
            return output_frame_counts(samples)
        return w2v_bert_frame_count(samples)

    def encode_frames(self, wavs, wav_lens=None):
        """Encoder frames of a batch and the number of real ones.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` padded 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths (default: all 1).

        Returns
        -------
        frames : torch.Tensor
            ``[B, T', D]`` frames (50 Hz); those past a count are padding.
        frame_counts : torch.Tensor
            ``[B]`` real frames per utterance.
        """
        if isinstance(wavs, torch.Tensor) and wavs.dim() == 3:
            raise ValueError(
                f"expected [batch, time] mono waveforms, got shape "
                f"{tuple(wavs.shape)}; average the channels first"
            )
        check_waveform_batch(wavs, wav_lens)
        if wav_lens is None:
            wav_lens = torch.ones(len(wavs), device=wavs.device)
        if len(wavs) == 0:
            width = self.head.pooling.attn_pooling_w.in_features
            # [0, 0, D]: an empty batch has an empty answer.
            return wavs.new_zeros(0, 0, width), torch.zeros(
                0, dtype=torch.long, device=wavs.device
            )
        counts = self.frame_counts(wavs, wav_lens)
        short = (counts == 0).nonzero().flatten().tolist()
        if short:
            raise ValueError(
                f"utterance(s) {short} of the batch are shorter than one "
                f"{self._encoder_name()} frame (400 samples at 16 kHz)"
            )
        longest = int(counts.max())
        long_form = self._long_form()
        if long_form is not None and longest > long_form.window:
            # [B, T] -> [B, T', 160] (XLS-R: [B, T, 1]) -> windows -> [B, T', D]
            features, counts = self.encoder.waveform_features(wavs, wav_lens)
            frames, counts = long_form.encode_frames(
                features.to(wavs.device), counts
            )
            return frames, counts.to(frames.device)
        # [B, T] -> [B, T', D]
        frames = self.encoder(wavs, wav_lens)
        return frames, counts.to(frames.device)

    def _encoder_name(self):
        """``"XLS-R"`` or ``"w2v-BERT"``, for messages."""
        return "XLS-R" if isinstance(self.encoder, SenseXLSR) else "w2v-BERT"

    def attention_weights(self, wavs, wav_lens=None):
        """Pooling weight of every frame.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` padded 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths.

        Returns
        -------
        weights : torch.Tensor
            ``[B, T']`` float32, zero on padding, rows sum to one.
        frame_counts : torch.Tensor
            ``[B]`` real frames per utterance.
        """
        frames, counts = self.encode_frames(wavs, wav_lens)
        return self.head.pooling.attention_weights(frames, counts), counts

    def forward(self, wavs, wav_lens=None):
        """L2-normalised utterance embeddings.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` padded 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` lengths relative to ``T`` (SpeechBrain convention).

        Returns
        -------
        torch.Tensor
            ``[B, 1, D]`` float32 embeddings (``EncoderClassifier``'s
            embedding shape).
        """
        frames, counts = self.encode_frames(wavs, wav_lens)
        # [B, T', D] -> [B, D] -> [B, 1, D]
        return self.head(frames, counts).unsqueeze(1)

    @mark_as_transfer
    def _load_strictly(self, path):
        """Loads every parameter or fails (SpeechBrain's default is lax).

        Arguments
        ---------
        path : str or Path
            ``embedding_model.ckpt``: the ``SenseStudent`` state dict.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"{path} does not match the model in hyperparams.yaml: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )


@contextlib.contextmanager
def _as_custom_module(namespace):
    """Makes ``custom.<Name>`` resolve to the names of ``namespace``.

    hyperpyyaml resolves ``!new:custom.X`` through the import system, so
    the names are put in ``sys.modules`` as ``custom`` while the yaml
    loads, and whatever was there before comes back afterwards.

    Arguments
    ---------
    namespace : dict
        Names the yaml may refer to (this module's globals).

    Yields
    ------
    module
        The temporary ``custom`` module.
    """
    module = types.ModuleType(CUSTOM_MODULE)
    module.__dict__.update(namespace)
    previous = sys.modules.get(CUSTOM_MODULE)
    sys.modules[CUSTOM_MODULE] = module
    try:
        yield module
    finally:
        if previous is None:
            sys.modules.pop(CUSTOM_MODULE, None)
        else:
            sys.modules[CUSTOM_MODULE] = previous


class SenseEncoderInterface(EncoderClassifier):
    """A pretrained SENSE encoder: ``EncoderClassifier`` plus frames.

    ``encode_batch(wavs, wav_lens)`` is ``EncoderClassifier``'s own:
    ``[B, 1, D]`` L2-normalised embeddings. This is the class SpeechBrain's
    ``foreign_class`` returns for an exported model folder
    (``classname="SenseEncoderInterface"``); with this package installed,
    :class:`speechbrain_sense.encoders.inference.SenseEncoder` adds file helpers.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.encoders.export import export_student
    >>> from speechbrain_sense.encoders.student import SenseStudent
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> student = SenseStudent(SenseW2VBert(d, d), SenseEmbeddingHead(32, 16))
    >>> model_dir = export_student(student.state_dict(), d, tempfile.mkdtemp())
    >>> model = SenseEncoderInterface.from_hparams(
    ...     str(model_dir), savedir=tempfile.mkdtemp()
    ... )
    >>> model.encode_batch(torch.randn(2, 8000)).shape
    torch.Size([2, 1, 16])
    >>> weights, counts = model.attention_weights(torch.randn(1, 8000))
    >>> weights.shape, round(weights.sum().item(), 4)
    (torch.Size([1, 24]), 1.0)
    """

    MODULES_NEEDED = ["embedding_model"]

    @classmethod
    def from_hparams(cls, source, *args, **kwargs):
        """Loads a model folder or hub repo, resolving ``custom.<Name>``.

        The classes the yaml names as ``custom.<Name>`` are this module's
        (the installed package's, or those of the ``custom.py`` that
        ``foreign_class`` imported), so ``custom.py`` is not fetched.

        Arguments
        ---------
        source : str or Path
            Model folder or hub id.
        *args
            Passed to ``EncoderClassifier.from_hparams``.
        **kwargs
            Passed to ``EncoderClassifier.from_hparams`` (``savedir``,
            ``run_opts``, ``local_strategy``, ``fetch_config`` ...).

        Returns
        -------
        SenseEncoderInterface
            An instance of ``cls``.
        """
        with _as_custom_module(globals()):
            return super().from_hparams(source, *args, **kwargs)

    def encode_batch(self, wavs, wav_lens=None, normalize=False):
        """L2-normalised utterance embeddings of padded waveforms.

        ``EncoderClassifier.encode_batch``, after the checks of
        :func:`~speechbrain_sense.encoders.w2v_bert.check_waveform_batch` (which its
        ``wavs.float()`` would otherwise defeat: int16 PCM would embed as
        audio 32768 times too loud).

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` (or ``[T]``) padded 16 kHz float waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths (default: all 1).
        normalize : bool
            Passed on (SENSE models have no embedding normaliser).

        Returns
        -------
        torch.Tensor
            ``[B, 1, D]`` float32; ``[0, 1, D]`` for an empty batch.
        """
        if isinstance(wavs, torch.Tensor) and wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        check_waveform_batch(wavs, wav_lens)
        if wav_lens is not None:
            wav_lens = torch.as_tensor(wav_lens)
        return super().encode_batch(wavs, wav_lens, normalize=normalize)

    @property
    def sample_rate(self):
        """Rate the encoder expects (its feature extractor's)."""
        return self.mods.embedding_model.encoder.sample_rate

    @property
    def embedding_dim(self):
        """Width of the utterance embeddings."""
        return self.mods.embedding_model.head.output_dim

    def encode_frames(self, wavs, wav_lens=None):
        """Frame-level features of the encoder, for downstream tasks.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` padded 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths.

        Returns
        -------
        frames : torch.Tensor
            ``[B, T', D_enc]`` frames at 50 Hz (padding past the counts).
        frame_counts : torch.Tensor
            ``[B]`` real frames per utterance.
        """
        wavs, wav_lens = self._to_device(wavs, wav_lens)
        with torch.no_grad():
            return self.mods.embedding_model.encode_frames(wavs, wav_lens)

    def attention_weights(self, wavs, wav_lens=None):
        """Attentive-pooling weight of every frame.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, T]`` padded 16 kHz waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths.

        Returns
        -------
        weights : torch.Tensor
            ``[B, T']`` float32, zero on padding, rows sum to one; frame
            ``t`` covers samples ``[320 t, 320 t + 560)`` (XLS-R:
            ``[320 t, 320 t + 400)``).
        frame_counts : torch.Tensor
            ``[B]`` real frames per utterance.
        """
        wavs, wav_lens = self._to_device(wavs, wav_lens)
        with torch.no_grad():
            return self.mods.embedding_model.attention_weights(wavs, wav_lens)

    def _to_device(self, wavs, wav_lens):
        """A ``[B, T]`` float batch and its lengths on the model's device.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[T]`` or ``[B, T]`` waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` relative lengths (default: all 1).

        Returns
        -------
        wavs : torch.Tensor
            ``[B, T]`` float32.
        wav_lens : torch.Tensor
            ``[B]``.
        """
        if isinstance(wavs, torch.Tensor) and wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        check_waveform_batch(wavs, wav_lens)
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        wav_lens = torch.as_tensor(wav_lens)
        return wavs.float().to(self.device), wav_lens.to(self.device)
