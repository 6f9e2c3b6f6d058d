"""Objectives aligning speech embeddings with teacher sentence embeddings.

Authors
 * speechbrain-sense developers 2026
"""

import torch
import torch.nn.functional as F


def cosine_alignment_loss(student, teacher, scale=1.0, reduction="mean"):
    """SENSE's objective: cosine distance ``scale * (1 - cos)``.

    Arguments
    ---------
    student : torch.Tensor
        ``[B, D]`` speech embeddings.
    teacher : torch.Tensor
        ``[B, D]`` teacher embeddings of the transcripts.
    scale : float
        Multiplier (keeps the gradient magnitude comparable across
        teachers whose cosines concentrate differently).
    reduction : str
        ``"mean"`` over the batch, or ``"sum"``, as the authors' recipe
        does (with ``scale`` 50): the gradient then grows with the batch.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> b = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> cosine_alignment_loss(a, b)
    tensor(0.5000)
    >>> cosine_alignment_loss(a, b, scale=50, reduction="sum")
    tensor(50.)
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be mean or sum, not {reduction!r}")
    cosine = F.cosine_similarity(student.float(), teacher.float(), dim=-1)
    distance = 1.0 - cosine
    return scale * (distance.sum() if reduction == "sum" else distance.mean())


def info_nce(queries, keys, temperature=0.05, symmetric=True):
    """In-batch contrastive loss between paired rows of two matrices.

    Row ``i`` of ``queries`` should match row ``i`` of ``keys`` and no
    other row; the loss is the cross-entropy of the scaled similarity
    matrix against its diagonal (both directions averaged when
    ``symmetric``). Rows are L2-normalised here.

    Arguments
    ---------
    queries : torch.Tensor
        ``[B, D]`` embeddings.
    keys : torch.Tensor
        ``[B, D]`` embeddings paired with ``queries``.
    temperature : float
        Softmax temperature.
    symmetric : bool
        Average the query->key and key->query losses.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> q = torch.eye(2)
    >>> loss = info_nce(q, q, temperature=1.0)
    >>> expected = -torch.log(torch.tensor(torch.e / (torch.e + 1)))
    >>> torch.allclose(loss, expected)
    True
    """
    queries = F.normalize(queries.float(), dim=-1)
    keys = F.normalize(keys.float(), dim=-1)
    # [B, D] x [D, B] -> [B, B]
    logits = queries @ keys.T / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    loss = F.cross_entropy(logits, targets)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, targets))
    return loss
