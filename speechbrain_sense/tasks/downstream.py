"""Frame-level SENSE encoders and length adaptors for downstream recipes.

The SLU, speech translation and summarization recipes put a task head on
the *frames* of a SENSE encoder rather than on its pooled embedding:

* :class:`SenseFrameEncoder` loads the encoder of an exported SENSE model
  directory (``python -m speechbrain_sense.encoders.export``: a w2v-BERT 2.0
  student, or an XLS-R one, the SAMU-XLSR baseline), or a plain w2v-BERT
  2.0 / XLS-R HuggingFace directory or hub id as the non-semantic
  baseline, frozen or fine-tuned. It encodes the input computed in
  DataLoader workers from the same directory (fbank features by
  :class:`speechbrain_sense.encoders.w2v_bert.W2VBertFeatures`, or normalised
  samples by :class:`speechbrain_sense.encoders.xls_r.XLSRFeatures`, as
  :func:`speechbrain_sense.data.dataio.encoder_features_class` picks) and
  returns frames with their exact counts.
* :class:`LengthAdaptor` shortens the 50 Hz frame sequence with strided
  1-D convolutions (GLU), so a CTC head or a text decoder sees a
  sequence closer to the length of its output, and keeps the counts
  exact.

Authors
 * speechbrain-sense developers 2026
"""

from pathlib import Path

from torch import nn

from speechbrain_sense.data.dataio import encoder_model_type
from speechbrain_sense.encoders.w2v_bert import SenseW2VBert, frame_mask
from speechbrain_sense.encoders.xls_r import SenseXLSR


def is_sense_model_dir(source):
    """Whether ``source`` is an exported SENSE model directory.

    Arguments
    ---------
    source : str or Path
        A directory or a hub id.

    Returns
    -------
    bool
        True when it holds ``hyperparams.yaml`` and ``embedding_model.ckpt``.
    """
    path = Path(source)
    return (path / "hyperparams.yaml").is_file() and (
        path / "embedding_model.ckpt"
    ).is_file()


def is_sense_hub_model(source, savedir):
    """Whether hub id ``source`` is an exported SENSE model.

    A SENSE repo has a ``hyperparams.yaml`` that builds a
    ``SenseUtteranceEncoder``; a w2v-BERT 2.0 repo (``facebook/w2v-bert-2.0``)
    has none. The yaml is fetched the way SpeechBrain fetches it (through
    the HuggingFace cache, so ``HF_HUB_OFFLINE=1`` works once cached).

    Arguments
    ---------
    source : str
        A hub id (``org/name``) that is not a local path.
    savedir : str or Path
        Where SpeechBrain links the fetched yaml.

    Returns
    -------
    bool
    """
    if Path(source).exists() or source.count("/") != 1:
        return False
    from speechbrain.utils.fetching import fetch

    try:
        path = fetch("hyperparams.yaml", source=source, savedir=savedir)
    except Exception:  # absent, or no network: not a SENSE repo we can load
        return False
    return "SenseUtteranceEncoder" in Path(path).read_text(encoding="utf-8")


class SenseFrameEncoder(nn.Module):
    """The frame-level encoder of a SENSE model (w2v-BERT 2.0 or XLS-R).

    Arguments
    ---------
    encoder : SenseW2VBert or SenseXLSR
        The encoder (its ``forward_features`` is used; an XLS-R encoder's
        ``output_frame_counts`` maps its input samples to frames).
    freeze : bool
        Keep the encoder's weights fixed (no gradients, eval mode).
    freeze_first_layers : int
        When fine-tuning, keep the feature projection and this many lower
        Conformer (Transformer, for XLS-R) layers fixed. XLS-R's
        convolutional feature encoder stays fixed when its encoder says so
        (``freeze_feature_extractor``, as in wav2vec 2.0 fine-tuning).

    Example
    -------
    >>> import tempfile
    >>> import torch
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> d = save_tiny_w2v_bert(tempfile.mkdtemp())
    >>> encoder = SenseFrameEncoder.from_pretrained(d, freeze=True)
    >>> frames, counts = encoder(torch.randn(2, 7, 160), torch.tensor([7, 4]))
    >>> frames.shape, counts.tolist(), encoder.output_dim
    (torch.Size([2, 7, 32]), [7, 4], 32)
    """

    def __init__(self, encoder, freeze=True, freeze_first_layers=0):
        super().__init__()
        self.encoder = encoder
        layers = encoder.model.encoder.layers
        # Meaningless for a frozen encoder: a full-scale yaml's value must
        # not stop a frozen tiny encoder.
        if not freeze and freeze_first_layers > len(layers):
            raise ValueError(
                f"freeze_first_layers={freeze_first_layers} but the encoder "
                f"has {len(layers)} layers"
            )
        self.freeze = freeze
        encoder.freeze = freeze
        trainable = [] if freeze else list(layers[freeze_first_layers:])
        if not freeze and freeze_first_layers == 0:
            trainable = [encoder.model]
        for param in encoder.model.parameters():
            param.requires_grad = False
        for module in trainable:
            for param in module.parameters():
                param.requires_grad = True
        if getattr(encoder, "freeze_feature_extractor", False):
            for param in encoder.model.feature_extractor.parameters():
                param.requires_grad = False
        masked_spec_embed = getattr(encoder.model, "masked_spec_embed", None)
        if masked_spec_embed is not None:
            # Downstream recipes do not use w2v-BERT's own SpecAugment.
            encoder.model.config.apply_spec_augment = False
            masked_spec_embed.requires_grad = False
        if freeze:
            encoder.model.eval()

    @classmethod
    def from_pretrained(
        cls,
        source,
        freeze=True,
        freeze_first_layers=0,
        savedir=None,
        output_norm=None,
    ):
        """Loads an exported SENSE model or a w2v-BERT 2.0 / XLS-R model.

        Arguments
        ---------
        source : str or Path
            An exported SENSE model (w2v-BERT 2.0 or XLS-R student), as a
            directory or a hub id (its ``hyperparams.yaml`` builds a
            ``SenseUtteranceEncoder``), or a w2v-BERT 2.0 or XLS-R
            (wav2vec 2.0) HuggingFace directory / hub id.
        freeze : bool
            Keep the encoder fixed.
        freeze_first_layers : int
            Lower layers kept fixed when fine-tuning.
        savedir : str or Path, optional
            SpeechBrain's ``savedir`` for a SENSE model (links to the
            HuggingFace cache for a hub id; nothing for a local model, read
            in place); the download folder for a w2v-BERT / XLS-R hub id.
        output_norm : bool, optional
            Layer-normalise the frames. Defaults to what the SENSE model
            was trained with; off for a plain w2v-BERT / XLS-R model.

        Returns
        -------
        SenseFrameEncoder
        """
        import tempfile

        from speechbrain.utils.fetching import LocalStrategy

        from speechbrain_sense.encoders.inference import SenseEncoder

        local = is_sense_model_dir(source)
        probe_dir = savedir or tempfile.mkdtemp(prefix="sense-")
        if local or is_sense_hub_model(str(source), probe_dir):
            # A local folder is read in place: no links in savedir, which
            # DDP ranks building the model at the same time would race
            # to create.
            model = SenseEncoder.from_hparams(
                source=str(source),
                savedir=str(probe_dir),
                local_strategy=LocalStrategy.NO_LINK
                if local
                else LocalStrategy.SYMLINK,
            )
            encoder = model.mods.embedding_model.encoder
            if output_norm is not None and isinstance(encoder, SenseXLSR):
                encoder.frame_norm = output_norm
            elif output_norm is not None:
                encoder.output_norm = output_norm
        else:
            config = Path(source) / "config.json"
            if savedir is None and not config.is_file():
                raise ValueError(
                    f"{source} is not a local model directory nor a SENSE "
                    "hub model: pass savedir, the folder the w2v-BERT / "
                    "XLS-R download is cached in"
                )
            model_type = encoder_model_type(source, cache_dir=savedir)
            if model_type not in ("wav2vec2-bert", "wav2vec2"):
                raise ValueError(
                    f"{source} is neither an exported SENSE model "
                    "(hyperparams.yaml + embedding_model.ckpt) nor a "
                    "w2v-BERT 2.0 or XLS-R model (its model_type is "
                    f"{model_type!r})"
                )
            encoder_class = (
                SenseXLSR if model_type == "wav2vec2" else SenseW2VBert
            )
            encoder = encoder_class(
                str(source),
                save_path=str(savedir or source),
                freeze=freeze,
                output_norm=bool(output_norm),
            )
        return cls(encoder, freeze, freeze_first_layers)

    @property
    def output_dim(self):
        """Width of the output frames."""
        return self.encoder.model.config.hidden_size

    @property
    def input_hop(self):
        """Input steps per output frame (XLS-R: 320 samples; else 1)."""
        return getattr(self.encoder, "input_hop", 1)

    @property
    def input_receptive_field(self):
        """Input steps one output frame reads (XLS-R: 400 samples; else 1)."""
        return getattr(self.encoder, "input_receptive_field", 1)

    def train(self, mode=True):
        """Training mode, except for a frozen encoder (dropout stays off).

        Arguments
        ---------
        mode : bool
            Training (True) or evaluation (False) mode.

        Returns
        -------
        SenseFrameEncoder
            ``self``, as ``nn.Module.train`` returns.
        """
        super().train(mode)
        if self.freeze:
            self.encoder.model.eval()
        return self

    def forward(self, features, frame_counts):
        """Encodes right-padded features (or XLS-R samples).

        Arguments
        ---------
        features : torch.Tensor
            ``[B, T, 160]`` features from ``W2VBertFeatures``, or
            ``[B, T, 1]`` samples from ``XLSRFeatures``.
        frame_counts : torch.Tensor
            ``[B]`` real input frames (samples, for XLS-R) per utterance.

        Returns
        -------
        frames : torch.Tensor
            ``[B, T', D]``; frames past a count are zero.
        frame_counts : torch.Tensor
            ``[B]`` real output frames, on the frames' device.
        """
        frames = self.encoder.forward_features(features, frame_counts)
        output_frame_counts = getattr(self.encoder, "output_frame_counts", None)
        if output_frame_counts is not None:
            # XLS-R: 320 samples a frame, after a 400-sample receptive field.
            frame_counts = output_frame_counts(frame_counts)
        counts = frame_counts.to(frames.device)
        # Zeroed padding: a consumer that forgets the mask sees silence,
        # not the encoder's arbitrary padded outputs.
        mask = frame_mask(counts, frames.shape[1]).unsqueeze(-1)
        return frames.masked_fill(~mask, 0.0), counts


def conv_output_length(lengths, kernel_size, stride):
    """Output length of a 1-D convolution padded by ``kernel_size // 2``.

    Arguments
    ---------
    lengths : torch.Tensor
        Input lengths (any integer shape).
    kernel_size : int
        Convolution width.
    stride : int
        Convolution stride.

    Returns
    -------
    torch.Tensor
        Output lengths.

    Example
    -------
    >>> import torch
    >>> conv_output_length(torch.tensor([1, 2, 3, 100]), 3, 2).tolist()
    [1, 1, 2, 50]
    """
    padding = kernel_size // 2
    return (lengths + 2 * padding - kernel_size) // stride + 1


class LengthAdaptor(nn.Module):
    """Strided convolutions that shorten a frame sequence by ``stride**n``.

    Each layer is ``Conv1d(kernel, stride)`` + GLU; padded input frames are
    zeroed before every convolution, so an utterance's outputs do not
    depend on the padding of the batch it is in.

    Arguments
    ---------
    input_dim : int
        Width of the input frames.
    output_dim : int
        Width of the output frames.
    num_layers : int
        Number of strided layers (0: a linear projection only).
    kernel_size : int
        Convolution width.
    stride : int
        Stride of each layer.
    dropout : float
        Dropout on the input frames.

    Example
    -------
    >>> import torch
    >>> adaptor = LengthAdaptor(32, 16, num_layers=2)
    >>> out, counts = adaptor(torch.randn(2, 50, 32), torch.tensor([50, 13]))
    >>> out.shape, counts.tolist()
    (torch.Size([2, 13, 16]), [13, 4])
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        num_layers=2,
        kernel_size=3,
        stride=2,
        dropout=0.0,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList()
        width = input_dim
        for _ in range(num_layers):
            self.layers.append(
                nn.Conv1d(
                    width,
                    2 * output_dim,
                    kernel_size,
                    stride=stride,
                    padding=kernel_size // 2,
                )
            )
            width = output_dim
        self.projection = (
            nn.Linear(input_dim, output_dim) if num_layers == 0 else None
        )
        self.output_dim = output_dim

    def output_counts(self, frame_counts):
        """Output frames for ``frame_counts`` input frames.

        Arguments
        ---------
        frame_counts : torch.Tensor
            ``[B]`` input counts.

        Returns
        -------
        torch.Tensor
            ``[B]`` output counts.
        """
        for _ in self.layers:
            frame_counts = conv_output_length(
                frame_counts, self.kernel_size, self.stride
            )
        return frame_counts

    def forward(self, frames, frame_counts):
        """Shortens padded frames.

        Arguments
        ---------
        frames : torch.Tensor
            ``[B, T, input_dim]``.
        frame_counts : torch.Tensor
            ``[B]`` real frames.

        Returns
        -------
        frames : torch.Tensor
            ``[B, T', output_dim]``, zero past the new counts.
        frame_counts : torch.Tensor
            ``[B]`` real output frames.
        """
        counts = frame_counts.to(frames.device)
        x = self.dropout(frames)
        if self.projection is not None:
            x = self.projection(x)
        else:
            x = x.transpose(1, 2)  # [B, D, T]
            for conv in self.layers:
                keep = frame_mask(counts, x.shape[-1]).unsqueeze(1)
                x = nn.functional.glu(conv(x * keep), dim=1)
                counts = conv_output_length(
                    counts, self.kernel_size, self.stride
                )
            x = x.transpose(1, 2)  # [B, T', D]
        keep = frame_mask(counts, x.shape[1]).unsqueeze(-1)
        return x * keep, counts
