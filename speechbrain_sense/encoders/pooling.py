"""Length-masked attentive pooling of frame sequences into one vector.

SENSE (like SAMU-XLSR) turns the encoder's frames into an utterance vector
with a learned attention over time: ``a = softmax_t(w . h_t + b)`` and
``e = sum_t a_t h_t``. SpeechBrain's ``AttentionPooling`` applies the
softmax over every frame of the padded batch, so an utterance's embedding
depends on how long its batch neighbours are. Here padded frames get
exactly zero weight: an utterance embeds to the same vector alone or in any
batch.

The scoring layer keeps the upstream parameter name ``attn_pooling_w`` so
that the released SENSE checkpoints load without key renaming.

Authors
 * speechbrain-sense developers 2026
"""

import warnings

import torch
from torch import nn

#: The head structures :class:`SenseEmbeddingHead` builds.
PROJECTIONS = ("linear_tanh", "linear", "none")


def masked_softmax(scores, mask):
    """Softmax over the last axis restricted to ``mask``.

    Computed in float32 whatever the input precision, because bf16 scores
    over hundreds of frames lose the small weights entirely.

    Arguments
    ---------
    scores : torch.Tensor
        ``[B, T]`` unnormalised scores.
    mask : torch.Tensor
        ``[B, T]`` bool, True where a frame is real.

    Returns
    -------
    torch.Tensor
        ``[B, T]`` float32 weights, zero off the mask, each row summing to 1
        (rows without any real frame are all zero). A NaN or inf score of a
        real frame makes its whole row NaN, so that a broken utterance
        cannot pass for a good one; padding never does.

    Example
    -------
    >>> masked_softmax(torch.zeros(1, 3), torch.tensor([[True, True, False]]))
    tensor([[0.5000, 0.5000, 0.0000]])
    """
    scores = scores.float().masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    # An all-padding row is a softmax over -inf only: NaN. Zero those rows
    # alone; a blanket nan_to_num would also hide NaN from real frames.
    return weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)


class AttentivePooling(nn.Module):
    """Attention-weighted mean over the real frames of each utterance.

    Arguments
    ---------
    input_dim : int
        Width ``D`` of the frames.

    Example
    -------
    >>> pool = AttentivePooling(4)
    >>> frames = torch.randn(2, 5, 4)
    >>> pool(frames, torch.tensor([5, 3])).shape
    torch.Size([2, 4])
    """

    def __init__(self, input_dim):
        super().__init__()
        self.attn_pooling_w = nn.Linear(input_dim, 1)
        # A constant added to every score cancels in the softmax: the bias
        # has no effect and a zero gradient. It stays (frozen) so that
        # upstream checkpoints, which store it, load unchanged.
        self.attn_pooling_w.bias.requires_grad = False

    def attention_weights(self, frames, frame_counts):
        """Per-frame pooling weights.

        Arguments
        ---------
        frames : torch.Tensor
            ``[B, T, D]`` frame representations.
        frame_counts : torch.Tensor
            ``[B]`` number of real frames per utterance.

        Returns
        -------
        torch.Tensor
            ``[B, T]`` float32 weights, zero on padding, rows sum to one.
        """
        positions = torch.arange(frames.shape[1], device=frames.device)
        mask = positions.unsqueeze(0) < frame_counts.to(frames.device)[:, None]
        # [B, T, D] -> [B, T]
        scores = self.attn_pooling_w(frames).squeeze(-1)
        return masked_softmax(scores, mask)

    def forward(self, frames, frame_counts):
        """Pools frames into one vector per utterance.

        Arguments
        ---------
        frames : torch.Tensor
            ``[B, T, D]`` frame representations (padding ignored).
        frame_counts : torch.Tensor
            ``[B]`` number of real frames per utterance.

        Returns
        -------
        torch.Tensor
            ``[B, D]`` pooled vectors, in float32.
        """
        positions = torch.arange(frames.shape[1], device=frames.device)
        padding = positions >= frame_counts.to(frames.device)[:, None]
        weights = self.attention_weights(frames, frame_counts)
        # Padded frames may hold NaN/inf from the encoder; zero weight alone
        # would still propagate them (0 * inf = nan), so zero them too.
        # Real frames are kept as they are, NaN included.
        frames = frames.float().masked_fill(padding.unsqueeze(-1), 0.0)
        # The weighted sum stays in float32 even inside an autocast region,
        # which would otherwise run the bmm in bf16/fp16.
        with torch.autocast(frames.device.type, enabled=False):
            # [B, T] x [B, T, D] -> [B, D]
            return torch.bmm(weights.unsqueeze(1), frames).squeeze(1)


def _legacy_projection(input_dim, output_dim, activation, force_projection):
    """The projection the 0.1.0 head built from its arguments.

    Arguments
    ---------
    input_dim : int
        Encoder width.
    output_dim : int or None
        Teacher width.
    activation : str or None
        ``"tanh"`` (the default then) or ``"none"``.
    force_projection : bool or None
        Project even when the widths match.

    Returns
    -------
    str
        One of :data:`PROJECTIONS`.
    """
    warnings.warn(
        "SenseEmbeddingHead(activation=..., force_projection=...) is "
        "deprecated: pass projection='linear_tanh', 'linear' or 'none'",
        FutureWarning,
        stacklevel=3,
    )
    activation = "tanh" if activation is None else activation
    if activation not in ("tanh", "none"):
        raise ValueError(f"activation must be tanh or none, not {activation}")
    widths_differ = (output_dim or input_dim) != input_dim
    if not (force_projection or widths_differ):
        return "none"
    return "linear_tanh" if activation == "tanh" else "linear"


class SenseEmbeddingHead(nn.Module):
    """Pooling, optional projection and L2 normalisation (the SENSE head).

    The structure is chosen, never inferred from the widths:

    * ``"linear_tanh"``: pooling, a linear projection, then tanh, as the
      SENSE paper describes the head (and SAMU-XLSR before it);
    * ``"linear"``: pooling and a linear projection (the upstream recipe's
      older ``train.yaml``);
    * ``"none"``: pooling only, so the embedding is the pooled frame
      vector; the encoder must be as wide as the teacher. The authors'
      released checkpoint (upstream ``train_sense.yaml``, 1024-d w2v-BERT
      against 1024-d BGE-M3) has this structure.

    Arguments
    ---------
    input_dim : int
        Encoder width.
    output_dim : int, optional
        Teacher width (default: ``input_dim``).
    projection : str
        ``"linear_tanh"``, ``"linear"`` or ``"none"`` (see above).
    activation : str, optional
        Deprecated, with ``force_projection``: the arguments of the
        0.1.0 head, whose hyperparams files (model folders exported before
        ``custom.py``) name this class. Then the head projects when
        ``force_projection`` is set or the widths differ, and a tanh
        follows when ``activation`` is ``"tanh"`` (its default).
    force_projection : bool, optional
        Deprecated; see ``activation``.

    Example
    -------
    >>> head = SenseEmbeddingHead(8, 4)
    >>> emb = head(torch.randn(2, 6, 8), torch.tensor([6, 2]))
    >>> emb.shape, torch.allclose(emb.norm(dim=-1), torch.ones(2))
    (torch.Size([2, 4]), True)
    >>> SenseEmbeddingHead(8, projection="none").projection is None
    True
    """

    def __init__(
        self,
        input_dim,
        output_dim=None,
        projection="linear_tanh",
        activation=None,
        force_projection=None,
    ):
        super().__init__()
        if activation is not None or force_projection is not None:
            projection = _legacy_projection(
                input_dim, output_dim, activation, force_projection
            )
        if projection not in PROJECTIONS:
            raise ValueError(
                f"projection must be one of {', '.join(PROJECTIONS)}, not "
                f"{projection!r}"
            )
        output_dim = output_dim or input_dim
        if projection == "none" and output_dim != input_dim:
            raise ValueError(
                f"projection none keeps the encoder's {input_dim}-d pooled "
                f"vector, but the teacher is {output_dim}-d: use "
                "projection linear or linear_tanh"
            )
        self.pooling = AttentivePooling(input_dim)
        self.projection = None
        if projection != "none":
            # Keys projection.0.{weight,bias} whatever follows the Linear.
            layers = [nn.Linear(input_dim, output_dim)]
            if projection == "linear_tanh":
                layers.append(nn.Tanh())
            self.projection = nn.Sequential(*layers)
        self.projection_type = projection
        self.output_dim = output_dim

    def forward(self, frames, frame_counts):
        """Utterance embeddings.

        Arguments
        ---------
        frames : torch.Tensor
            ``[B, T, D]`` encoder frames.
        frame_counts : torch.Tensor
            ``[B]`` real frames per utterance.

        Returns
        -------
        torch.Tensor
            ``[B, output_dim]`` L2-normalised float32 embeddings.
        """
        # [B, T, D] -> [B, D]
        pooled = self.pooling(frames, frame_counts)
        if self.projection is not None:
            # Projection runs in float32: it is tiny and sets the geometry
            # that the cosine loss compares against the teacher.
            with torch.autocast(pooled.device.type, enabled=False):
                weight = self.projection[0].weight
                pooled = self.projection(pooled.to(weight.dtype)).float()
        return nn.functional.normalize(pooled, dim=-1)
