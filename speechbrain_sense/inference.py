"""Pretrained SENSE encoders: load an exported model, embed audio.

A model directory written by :mod:`speechbrain_sense.export` loads like
any SpeechBrain pretrained model, with stock SpeechBrain::

    from speechbrain.inference.classifiers import EncoderClassifier

    model = EncoderClassifier.from_hparams(source="sense-model", savedir="tmp")
    emb = model.encode_batch(wavs, wav_lens)  # [B, 1, D], L2-normalised
    # EncoderClassifier has no encode_file; its load_audio (soundfile +
    # AudioNormalizer) resamples and averages channels:
    emb = model.encode_batch(model.load_audio("speech.ogg")[None])

or with :class:`SenseEncoder` (an ``EncoderClassifier`` subclass) which
adds file and frame-level helpers: ``encode_file`` (any sample rate, any
number of channels), ``encode_files`` (many files, batched by duration),
``encode_frames`` (the encoder's frames, for downstream tasks) and
``attention_weights`` (the pooling weight of every frame).

The pieces the exported ``hyperparams.yaml`` builds:

* :class:`W2VBertFromConfig`: the w2v-BERT 2.0 encoder built from the
  HuggingFace ``config.json`` / ``preprocessor_config.json`` stored in the
  model directory (read through ``!include``, which hyperpyyaml resolves
  next to the yaml file, so loading works offline and from any working
  directory); its raw-waveform ``forward`` computes the features with
  the same :class:`~speechbrain_sense.w2v_bert.W2VBertFbank` as the
  training DataLoader workers, so inference sees exactly the training
  inputs. (``!include`` resolves next to the yaml file that
  ``from_hparams`` reads: the symlink it puts in ``savedir`` with the
  default ``LocalStrategy.SYMLINK``, or the model folder itself with
  ``LocalStrategy.NO_LINK``; a copying strategy breaks it.)
* :class:`SenseUtteranceEncoder`: encoder + :class:`SenseEmbeddingHead`,
  with the same parameter names as the training-time ``SenseStudent``, so
  a recipe's ``student.ckpt`` is its state dict as is. It maps padded
  waveforms and SpeechBrain relative lengths to ``[B, 1, D]`` embeddings.
* :class:`PassThrough` for the ``compute_features`` and ``mean_var_norm``
  slots that ``EncoderClassifier.encode_batch`` calls: w2v-BERT computes
  (and normalises) its own features.

Authors
 * speechbrain-sense developers 2026
"""

import contextlib
import tempfile
from pathlib import Path

import torch
from speechbrain.inference.classifiers import EncoderClassifier
from speechbrain.utils.checkpoints import (
    mark_as_transfer,
    register_checkpoint_hooks,
)
from torch import nn

from speechbrain_sense.audio import audio_duration, load_audio
from speechbrain_sense.w2v_bert import (
    SenseW2VBert,
    sample_counts,
    vectorized_fbank,
    w2v_bert_frame_count,
)


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
        """``x`` itself."""
        return x


def _no_init_weights():
    """Skips random initialisation of weights that are loaded right after."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: initialise, only slower
        return contextlib.nullcontext()
    return no_init_weights()


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
        import transformers

        # W2VBert.__init__ would download/load weights by source: skip it
        # and set the attributes its forward methods read.
        nn.Module.__init__(self)
        config = dict(config)
        model_type = config.pop("model_type", None)
        if model_type != "wav2vec2-bert":
            raise ValueError(
                f"expected a w2v-BERT config (model_type 'wav2vec2-bert'), "
                f"got model_type {model_type!r}"
            )
        self.config = transformers.AutoConfig.for_model(model_type, **config)
        skip_init = contextlib.nullcontext() if init_weights else None
        with skip_init or _no_init_weights():
            self.model = transformers.AutoModel.from_config(self.config)
        extractor = dict(feature_extractor)
        extractor_class = getattr(
            transformers, extractor.pop("feature_extractor_type")
        )
        self.feature_extractor = extractor_class(**extractor)
        self.sample_rate = self.feature_extractor.sampling_rate
        self.model.config.apply_spec_augment = False
        self.output_norm = output_norm
        self.output_all_hiddens = False
        self.freeze = True
        self.freeze_model(self.model)
        self.fbank = vectorized_fbank(self.feature_extractor)


@register_checkpoint_hooks
class SenseUtteranceEncoder(nn.Module):
    """Waveforms to SENSE utterance embeddings, SpeechBrain style.

    Same parameters (and names) as ``SenseStudent``: ``encoder.model.*``
    and ``head.*``.

    Arguments
    ---------
    encoder : SenseW2VBert
        The speech encoder (raw-waveform ``forward(wavs, wav_lens)``).
    head : SenseEmbeddingHead
        Length-masked attentive pooling, projection, L2 normalisation.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.pooling import SenseEmbeddingHead
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> model = SenseUtteranceEncoder(
    ...     SenseW2VBert(d, d, freeze=True), SenseEmbeddingHead(32, 16)
    ... )
    >>> model(torch.randn(2, 16000), torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 1, 16])
    """

    def __init__(self, encoder, head):
        super().__init__()
        self.encoder = encoder
        self.head = head

    @staticmethod
    def frame_counts(wavs, wav_lens):
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
        return w2v_bert_frame_count(sample_counts(wav_lens, wavs.shape[1]))

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
        if wavs.dim() != 2:
            raise ValueError(
                f"expected [batch, time] mono waveforms, got shape "
                f"{tuple(wavs.shape)}; average the channels first"
            )
        if wav_lens is None:
            wav_lens = torch.ones(len(wavs), device=wavs.device)
        counts = self.frame_counts(wavs, wav_lens)
        short = (counts == 0).nonzero().flatten().tolist()
        if short:
            raise ValueError(
                f"utterance(s) {short} of the batch are shorter than one "
                "w2v-BERT frame (400 samples at 16 kHz)"
            )
        # [B, T] -> [B, T', D]
        frames = self.encoder(wavs, wav_lens)
        return frames, counts.to(frames.device)

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
        """Loads every parameter or fails (SpeechBrain's default is lax)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"{path} does not match the model in hyperparams.yaml: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )


class SenseEncoder(EncoderClassifier):
    """A pretrained SENSE encoder (SpeechBrain ``Pretrained`` interface).

    ``encode_batch(wavs, wav_lens)`` is ``EncoderClassifier``'s own:
    ``[B, 1, D]`` L2-normalised embeddings. Load with
    ``SenseEncoder.from_hparams(source=<model dir>, savedir=...)``, or a
    training checkpoint (this project's recipe or the upstream SpeechBrain
    SENSE recipe) with :meth:`from_checkpoint`.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.export import export_student
    >>> from speechbrain_sense.pooling import SenseEmbeddingHead
    >>> from speechbrain_sense.student import SenseStudent
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> student = SenseStudent(SenseW2VBert(d, d), SenseEmbeddingHead(32, 16))
    >>> model_dir = export_student(student.state_dict(), d, tempfile.mkdtemp())
    >>> model = SenseEncoder.from_hparams(
    ...     str(model_dir), savedir=tempfile.mkdtemp()
    ... )
    >>> model.encode_batch(torch.randn(2, 8000)).shape
    torch.Size([2, 1, 16])
    >>> weights, counts = model.attention_weights(torch.randn(1, 8000))
    >>> weights.shape, round(weights.sum().item(), 4)
    (torch.Size([1, 24]), 1.0)
    """

    MODULES_NEEDED = ["embedding_model"]

    @property
    def sample_rate(self):
        """Rate the encoder expects (its feature extractor's)."""
        return self.mods.embedding_model.encoder.sample_rate

    @property
    def embedding_dim(self):
        """Width of the utterance embeddings."""
        return self.mods.embedding_model.head.output_dim

    def load_audio(self, path, savedir=None):
        """Decodes a local audio file to mono at the model's rate.

        Any sample rate (resampled) and any number of channels (averaged),
        through :func:`speechbrain_sense.audio.load_audio`.

        Arguments
        ---------
        path : str or Path
            Audio file (WAV, FLAC, Ogg/Opus, MP3).
        savedir : str, optional
            Unused (the parent fetches remote files into it).

        Returns
        -------
        torch.Tensor
            ``[time]`` float32 samples on the model's device.
        """
        return load_audio(path, self.sample_rate).to(self.device)

    def encode_file(self, path):
        """The embedding of one audio file.

        Arguments
        ---------
        path : str or Path
            Audio file, any rate and channel count.

        Returns
        -------
        torch.Tensor
            ``[D]`` L2-normalised embedding.
        """
        wav = self.load_audio(path)
        return self.encode_batch(wav[None], torch.ones(1))[0, 0]

    def encode_files(
        self, paths, max_batch_seconds=60.0, durations=None, progress=True
    ):
        """Embeds many files, in batches of similar duration.

        Files are sorted by duration and grouped so that a batch holds at
        most ``max_batch_seconds`` of padded audio, which bounds memory and
        wastes little compute on padding.

        Arguments
        ---------
        paths : list of str
            Audio files.
        max_batch_seconds : float
            Padded audio per batch.
        durations : list of float, optional
            Known durations in seconds (read from the headers otherwise).
        progress : bool
            Show a progress bar.

        Returns
        -------
        torch.Tensor
            ``[len(paths), D]`` embeddings on the CPU, in input order.
        """
        from tqdm import tqdm

        if durations is None:
            durations = [audio_duration(path) for path in paths]
        batches = duration_batches(durations, max_batch_seconds)
        out = torch.empty(len(paths), self.embedding_dim)
        bar = tqdm(
            total=len(paths), desc="embedding audio", disable=not progress
        )
        for batch in batches:
            wavs = [self.load_audio(paths[i]) for i in batch]
            padded, lens = pad_waveforms(wavs)
            with torch.no_grad():
                emb = self.encode_batch(padded, lens)
            out[torch.tensor(batch)] = emb[:, 0].float().cpu()
            bar.update(len(batch))
        bar.close()
        return out

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
            ``t`` covers samples ``[320 t, 320 t + 560)`` (see
            :func:`frame_times`).
        frame_counts : torch.Tensor
            ``[B]`` real frames per utterance.
        """
        wavs, wav_lens = self._to_device(wavs, wav_lens)
        with torch.no_grad():
            return self.mods.embedding_model.attention_weights(wavs, wav_lens)

    def _to_device(self, wavs, wav_lens):
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        return wavs.float().to(self.device), wav_lens.to(self.device)

    @classmethod
    def from_checkpoint(
        cls, checkpoint, savedir=None, encoder_source=None, **kwargs
    ):
        """Loads a training checkpoint by exporting it first.

        Accepts what :func:`speechbrain_sense.export.export_model` accepts:
        this project's recipe output (save folder or one ``CKPT+*``
        folder) or the upstream SpeechBrain SENSE recipe's checkpoint
        (``wav2vec2.ckpt`` + ``model.ckpt``, with ``encoder_source``).

        Arguments
        ---------
        checkpoint : str or Path
            Checkpoint or save folder.
        savedir : str or Path, optional
            Where to write the exported model (a temporary folder if not
            given).
        encoder_source : str, optional
            The encoder's HuggingFace directory or hub id, when it cannot
            be read from the recipe's hyperparameters.
        **kwargs
            Passed to ``from_hparams``.

        Returns
        -------
        SenseEncoder
        """
        from speechbrain_sense.export import export_model

        savedir = Path(savedir or tempfile.mkdtemp(prefix="sense-model-"))
        model_dir = export_model(
            checkpoint, savedir / "model", encoder_source=encoder_source
        )
        return cls.from_hparams(
            source=str(model_dir), savedir=str(savedir / "fetched"), **kwargs
        )


def duration_batches(durations, max_batch_seconds):
    """Groups items of similar duration into batches of bounded padding.

    Arguments
    ---------
    durations : list of float
        Seconds per item.
    max_batch_seconds : float
        Bound on ``len(batch) * max(duration in batch)``; an item longer
        than the bound forms a batch of its own.

    Returns
    -------
    list of list of int
        Item indices, each batch sorted by decreasing duration.

    Example
    -------
    >>> duration_batches([1.0, 5.0, 2.0, 1.5], max_batch_seconds=4.0)
    [[1], [2, 3], [0]]
    """
    order = sorted(range(len(durations)), key=lambda i: -durations[i])
    batches, batch = [], []
    for i in order:
        # The batch's first item is its longest: padded size = n * that.
        longest = durations[batch[0]] if batch else durations[i]
        if batch and (len(batch) + 1) * longest > max_batch_seconds:
            batches.append(batch)
            batch = []
        batch.append(i)
    if batch:
        batches.append(batch)
    return batches


def pad_waveforms(wavs):
    """Right-pads waveforms into a batch with SpeechBrain relative lengths.

    Arguments
    ---------
    wavs : list of torch.Tensor
        ``[time]`` waveforms.

    Returns
    -------
    padded : torch.Tensor
        ``[B, T]`` zero-padded batch.
    wav_lens : torch.Tensor
        ``[B]`` lengths relative to ``T``.

    Example
    -------
    >>> padded, lens = pad_waveforms([torch.ones(4), torch.ones(2)])
    >>> padded.shape, lens.tolist()
    (torch.Size([2, 4]), [1.0, 0.5])
    """
    longest = max(len(wav) for wav in wavs)
    padded = torch.zeros(len(wavs), longest, device=wavs[0].device)
    for i, wav in enumerate(wavs):
        padded[i, : len(wav)] = wav
    lens = torch.tensor([len(wav) / longest for wav in wavs])
    return padded, lens


def frame_times(num_frames):
    """Centre time (seconds) of each w2v-BERT frame.

    A frame stacks two 25 ms fbank windows 10 ms apart, so frame ``t``
    spans ``[0.02 t, 0.02 t + 0.035]`` s (samples ``[320 t, 320 t + 560)``
    at 16 kHz).

    Arguments
    ---------
    num_frames : int
        Frames.

    Returns
    -------
    torch.Tensor
        ``[num_frames]`` seconds.

    Example
    -------
    >>> frame_times(3)
    tensor([0.0175, 0.0375, 0.0575])
    """
    return torch.arange(num_frames) * 0.02 + 0.0175
