"""Next-token objective, block packing and LR schedule for Backpack LMs.

Shared by the pretraining recipe (packed blocks of running text) and the
SENSIA recipe (one ``[bos] sentence [eos]`` per row, padded).

Authors
 * speechbrain-sense developers 2026
"""

import math

import torch
import torch.nn.functional as F

__all__ = [
    "label_smoothed_lm_loss",
    "lengths_to_mask",
    "next_token_loss",
    "next_token_nll",
    "pack_blocks",
    "warmup_cosine",
    "warmup_linear",
]


def label_smoothed_lm_loss(logits, targets, mask=None, smoothing=0.0):
    """Token-averaged cross-entropy with label smoothing.

    ``logits[:, t]`` is scored against ``targets[:, t]``: shift before the
    call for next-token prediction (see the example). Smoothing follows
    ``torch.nn.functional.cross_entropy``:
    ``(1 - smoothing) * NLL + smoothing * mean_v(-log p_v)``. Use
    ``smoothing=0`` for perplexity.

    Arguments
    ---------
    logits : torch.Tensor
        ``[B, T, V]`` unnormalised scores.
    targets : torch.LongTensor
        ``[B, T]`` target ids; -100 marks ignored positions.
    mask : torch.Tensor, optional
        ``[B, T]``, 1 where the loss counts. None: where targets != -100.
    smoothing : float
        Label-smoothing mass in [0, 1) (the authors' run: 0.05).

    Returns
    -------
    torch.Tensor
        Scalar mean over counted positions (0 if there are none).

    Example
    -------
    >>> logits = torch.zeros(1, 4, 10)
    >>> ids = torch.tensor([[1, 2, 3, 0]])
    >>> mask = torch.tensor([[1, 1, 1, 0]])
    >>> loss = label_smoothed_lm_loss(logits[:, :-1], ids[:, 1:], mask[:, 1:])
    >>> round(loss.item(), 4) == round(math.log(10), 4)
    True
    """
    if mask is None:
        mask = targets != -100
    mask = mask.to(logits.dtype)
    # [B, T, V] -> [B*T, V]: cross_entropy wants classes on dim 1.
    per_token = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        reduction="none",
        label_smoothing=smoothing,
    ).view_as(mask)
    return (per_token * mask).sum() / mask.sum().clamp_min(1.0)


def lengths_to_mask(lengths, max_len):
    """``[B]`` relative lengths (SpeechBrain ``PaddedBatch``) -> ``[B, T]``.

    Arguments
    ---------
    lengths : torch.Tensor
        ``[B]`` fractions of ``max_len`` (1.0 for the longest row).
    max_len : int
        Padded length T.

    Returns
    -------
    torch.Tensor
        ``[B, T]`` long mask, 1 for real tokens.

    Example
    -------
    >>> lengths_to_mask(torch.tensor([1.0, 0.5]), 4)
    tensor([[1, 1, 1, 1],
            [1, 1, 0, 0]])
    """
    counts = torch.round(lengths * max_len).long()  # [B]
    positions = torch.arange(max_len, device=lengths.device)
    return (positions[None, :] < counts[:, None]).long()


def next_token_loss(logits, ids, mask=None, smoothing=0.0):
    """Mean (label-smoothed) cross-entropy of predicting ``ids[:, t + 1]``.

    Arguments
    ---------
    logits : torch.Tensor
        ``[B, T, V]`` logits at every input position.
    ids : torch.LongTensor
        ``[B, T]`` the input ids.
    mask : torch.Tensor, optional
        ``[B, T]``, 1 for real tokens. A target counts when it is real
        (its context then is too, padding being at the end).
    smoothing : float
        Label smoothing (0 for perplexity).

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> logits = torch.zeros(1, 3, 5)
    >>> round(next_token_loss(logits, torch.tensor([[1, 2, 3]])).item(), 4)
    1.6094
    """
    target_mask = None if mask is None else mask[:, 1:]
    return label_smoothed_lm_loss(
        logits[:, :-1], ids[:, 1:], target_mask, smoothing
    )


@torch.no_grad()
def next_token_nll(logits, ids, mask=None):
    """Summed next-token negative log-likelihood and number of targets.

    Sum and count, rather than a mean, so that perplexity over a data set
    is ``exp(sum of sums / sum of counts)`` whatever the batch sizes.

    Arguments
    ---------
    logits : torch.Tensor
        ``[B, T, V]``.
    ids : torch.LongTensor
        ``[B, T]``.
    mask : torch.Tensor, optional
        ``[B, T]``, 1 for real tokens.

    Returns
    -------
    total : float
        Summed NLL in nats.
    count : int
        Number of predicted tokens.

    Example
    -------
    >>> total, count = next_token_nll(torch.zeros(2, 3, 4),
    ...                               torch.ones(2, 3, dtype=torch.long))
    >>> count, round(math.exp(total / count), 4)
    (4, 4.0)
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # [B, T-1, V]
    nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)  # [B, T-1]
    if mask is None:
        mask = torch.ones_like(ids)
    keep = mask[:, 1:].to(nll.dtype)
    return float((nll * keep).sum()), int(keep.sum())


def pack_blocks(sequences, block_size):
    """Concatenate token sequences and cut the stream into equal blocks.

    The usual GPT-2 pretraining layout: no padding, documents run across
    block boundaries, the incomplete tail is dropped.

    Arguments
    ---------
    sequences : iterable of list of int
        Framed documents (e.g. ``[bos] ... [eos]``).
    block_size : int
        Tokens per block.

    Returns
    -------
    torch.LongTensor
        ``[N, block_size]``.

    Example
    -------
    >>> pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8]], block_size=3)
    tensor([[1, 2, 3],
            [4, 5, 6]])
    """
    stream = [token for sequence in sequences for token in sequence]
    n_blocks = len(stream) // block_size
    stream = torch.tensor(stream[: n_blocks * block_size], dtype=torch.long)
    return stream.view(n_blocks, block_size)


def warmup_cosine(progress, warmup=0.02, final_scale=0.1):
    """LR multiplier: linear warm-up, then a half-cosine to ``final_scale``.

    A pure function of training progress, so a resumed run continues the
    schedule exactly where the interrupted one was.

    Arguments
    ---------
    progress : float
        Fraction of training done, in [0, 1] (clipped).
    warmup : float
        Fraction of training spent warming up (the SENSIA authors' run:
        0.02).
    final_scale : float
        Multiplier reached at the end.

    Returns
    -------
    float

    Example
    -------
    >>> warmup_cosine(0.01, warmup=0.02)
    0.5
    >>> warmup_cosine(0.02, warmup=0.02), warmup_cosine(1.0, final_scale=0.1)
    (1.0, 0.1)
    """
    p = min(max(float(progress), 0.0), 1.0)
    if p < warmup:
        return p / warmup
    t = (p - warmup) / max(1.0 - warmup, 1e-12)
    return final_scale + (1.0 - final_scale) * 0.5 * (1 + math.cos(math.pi * t))


def warmup_linear(progress, warmup=0.02, final_scale=0.0):
    """LR multiplier: linear warm-up, then a linear decay to ``final_scale``.

    With ``final_scale=0`` this is ``transformers``'
    ``get_linear_schedule_with_warmup`` (the SENSIA authors'
    ``get_scheduler("linear", ...)``) written as a function of
    ``progress = step / total_steps``: a resumed run continues it exactly.

    Arguments
    ---------
    progress : float
        Fraction of training done, in [0, 1] (clipped).
    warmup : float
        Fraction of training spent warming up (the SENSIA authors' run:
        0.02).
    final_scale : float
        Multiplier reached at the end (0: the LR decays to zero).

    Returns
    -------
    float

    Example
    -------
    >>> warmup_linear(0.01, warmup=0.02), warmup_linear(0.02, warmup=0.02)
    (0.5, 1.0)
    >>> round(warmup_linear(0.51, warmup=0.02), 6), warmup_linear(1.0)
    (0.5, 0.0)
    """
    p = min(max(float(progress), 0.0), 1.0)
    if p < warmup:
        return p / warmup
    t = (p - warmup) / max(1.0 - warmup, 1e-12)
    return final_scale + (1.0 - final_scale) * (1.0 - t)
