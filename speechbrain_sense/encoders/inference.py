"""Pretrained SENSE encoders: load an exported model, embed audio files.

A model folder written by :mod:`speechbrain_sense.encoders.export` (a local
directory or a HuggingFace repo) loads three ways:

* :class:`SenseEncoder` (this package): ``EncoderClassifier`` with file
  and frame-level helpers: ``encode_file`` (any sample rate, any number of
  channels), ``encode_files`` (many files, batched by duration),
  ``encode_frames`` (the encoder's frames, for downstream tasks),
  ``attention_weights`` (the pooling weight of every frame), and
  :meth:`SenseEncoder.from_checkpoint` for a training checkpoint::

      from speechbrain_sense.encoders.inference import SenseEncoder

      model = SenseEncoder.from_hparams(source="org/sense-w2v-bert")
      emb = model.encode_file("speech.ogg")  # [D], L2-normalised

* SpeechBrain alone, without this package, through ``foreign_class`` and
  the model folder's ``custom.py`` (see :mod:`speechbrain_sense.encoders.pretrained`,
  which defines the classes the folder's ``hyperparams.yaml`` builds)::

      from speechbrain.inference.interfaces import foreign_class

      model = foreign_class(
          source="org/sense-w2v-bert",
          pymodule_file="custom.py",
          classname="SenseEncoderInterface",
      )
      emb = model.encode_batch(wavs, wav_lens)  # [B, 1, D]

* model folders exported before ``custom.py`` existed (their yaml names
  ``speechbrain_sense.encoders.inference.W2VBertFromConfig`` and ``!include``-s
  ``config.json``) load through :class:`SenseEncoder` as before: those
  names are still importable from here.

Authors
 * speechbrain-sense developers 2026
"""

import tempfile
from pathlib import Path

import torch

from speechbrain_sense.audio import audio_duration, load_audio
from speechbrain_sense.encoders.export import export_model
from speechbrain_sense.encoders.pretrained import (  # noqa: F401 (old exports)
    PassThrough,
    SenseEncoderInterface,
    SenseUtteranceEncoder,
    W2VBertFromConfig,
)


class SenseEncoder(SenseEncoderInterface):
    """A pretrained SENSE encoder (SpeechBrain ``Pretrained`` interface).

    ``encode_batch(wavs, wav_lens)`` is ``EncoderClassifier``'s own:
    ``[B, 1, D]`` L2-normalised embeddings. Load with
    ``SenseEncoder.from_hparams(source=<model dir>, savedir=...)``, or a
    training checkpoint (this project's recipe or the upstream SpeechBrain
    SENSE recipe) with :meth:`from_checkpoint`.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.encoders.export import export_student
    >>> from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
    >>> from speechbrain_sense.encoders.student import SenseStudent
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
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

    @classmethod
    def from_checkpoint(
        cls, checkpoint, savedir=None, encoder_source=None, **kwargs
    ):
        """Loads a training checkpoint by exporting it first.

        Accepts what :func:`speechbrain_sense.encoders.export.export_model` accepts:
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
