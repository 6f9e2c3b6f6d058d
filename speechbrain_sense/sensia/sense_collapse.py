"""The SENSIA authors' sense-collapse probe, on a Backpack's own output.

A Backpack predicts token ``t`` from the sum over its K senses of the
per-sense contributions

    c[k, t] = sum_s alpha[k, t, s] * senses[k, s]        # [B, K, T, d]

This probe asks how much of that prediction a single sense carries. It is
written from the definition in the authors' ``run_ablation_sense_collapse.py``
(github.com/jcblaisecruz02/sensia), which reports, on FLORES-200:

* the next-token cross-entropy with three hidden states fed to the LM head:
  ``full`` (``sum_k c[k, t]``, the model's own), ``top_k`` (the mean of
  the ``k`` contributions with the largest L2 norm at ``t``; ``k = 1``:
  the largest alone) and ``uniform`` (``mean_k c[k, t]``, which is the full
  state divided by K: the authors' definition);
* the *usage entropy*: the entropy of ``p[k, t] = |c[k, t]| / sum_j
  |c[j, t]|``, against ``log K``;
* the mean *off-diagonal cosine* of each token's K sense vectors: near 1
  when the senses have collapsed onto one direction.

Our own sense-mixture ablation (:func:`speechbrain_sense.sensia.analysis.
mix_senses`) keeps each source token's mass and re-splits it over that
token's senses; it is a different question and keeps its own name
(``"ablation"`` in the analysis output).

Where this differs from the authors' script, on purpose: the cross-entropy
is token-weighted over the whole corpus, and the entropy and the cosine are
means over real tokens. The script averages per-batch means over every
position of left-padded batches (its pad is ``[eos]``, whose senses are
counted), and counts positions from 0 at the padding, so its figures move
with the batch size; ours do not. Batches here are right-padded.

Authors
 * speechbrain-sense developers 2026
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from speechbrain_sense.backpack.language_modeling import next_token_nll
from speechbrain_sense.sensia.losses import sense_entropy

__all__ = [
    "COLLAPSE_MODES",
    "collapsed_hidden",
    "contribution_usage",
    "mean_offdiagonal_cosine",
    "sense_collapse",
    "sense_contributions",
]

COLLAPSE_MODES = ("full", "top_k", "uniform")


def sense_contributions(senses, contextualization):
    """What each sense adds to each position's hidden state.

    Arguments
    ---------
    senses : torch.Tensor
        ``[B, K, S, d]`` sense vectors of the source tokens.
    contextualization : torch.Tensor
        ``[B, K, T, S]`` the model's weights alpha.

    Returns
    -------
    torch.Tensor
        ``[B, K, T, d]``; its sum over K is the Backpack's hidden state.

    Example
    -------
    >>> senses = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # [1, 2, 1, 2]
    >>> alpha = torch.tensor([[[[0.5]], [[0.25]]]])  # [1, 2, 1, 1]
    >>> sense_contributions(senses, alpha)[0, :, 0]
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000]])
    """
    if senses.dim() != 4 or contextualization.dim() != 4:
        raise ValueError(
            "senses must be [B, K, S, d] and contextualization [B, K, T, S], "
            f"got {tuple(senses.shape)} and {tuple(contextualization.shape)}"
        )
    return torch.einsum("bkts,bksd->bktd", contextualization, senses)


def collapsed_hidden(contributions, mode="full", top_k=1):
    """The hidden state built from the contributions in one of the modes.

    Arguments
    ---------
    contributions : torch.Tensor
        ``[B, K, T, d]`` from :func:`sense_contributions`.
    mode : str
        One of :data:`COLLAPSE_MODES`: "full" (sum over K), "top_k" (mean
        of the ``top_k`` largest-norm contributions at each position) or
        "uniform" (mean over K).
    top_k : int
        Senses kept by "top_k", 1 to K.

    Returns
    -------
    torch.Tensor
        ``[B, T, d]``.

    Example
    -------
    >>> c = torch.tensor([[[[3.0, 0.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2]
    >>> for mode in COLLAPSE_MODES:
    ...     print(mode, collapsed_hidden(c, mode)[0, 0])
    full tensor([3., 1.])
    top_k tensor([3., 0.])
    uniform tensor([1.5000, 0.5000])
    """
    if mode not in COLLAPSE_MODES:
        raise ValueError(f"mode={mode!r} is not one of {COLLAPSE_MODES}")
    K = contributions.shape[1]
    if mode == "full":
        return contributions.sum(dim=1)
    if mode == "uniform":
        return contributions.mean(dim=1)
    if not 1 <= top_k <= K:
        raise ValueError(f"top_k={top_k} is not between 1 and K={K}")
    top = contributions.norm(dim=-1).topk(top_k, dim=1).indices  # [B, k, T]
    index = top[..., None].expand(-1, -1, -1, contributions.shape[-1])
    return contributions.gather(1, index).mean(dim=1)


def contribution_usage(contributions):
    """Each sense's share of the contribution norms at each position.

    Arguments
    ---------
    contributions : torch.Tensor
        ``[B, K, T, d]`` from :func:`sense_contributions`.

    Returns
    -------
    torch.Tensor
        ``[B, K, T]``, summing to 1 over K.

    Example
    -------
    >>> c = torch.tensor([[[[3.0, 4.0]], [[0.0, 5.0]]]])  # norms 5 and 5
    >>> contribution_usage(c)[0, :, 0]
    tensor([0.5000, 0.5000])
    """
    norms = contributions.norm(dim=-1)  # [B, K, T]
    return norms / norms.sum(dim=1, keepdim=True).clamp_min(1e-9)


def _real(mask, like):
    """The ``[B, T]`` real-token mask as floats like ``like`` (``[B, T]``),
    all ones when none is given."""
    return torch.ones_like(like) if mask is None else mask.to(like.dtype)


def mean_offdiagonal_cosine(senses, mask=None):
    """Mean cosine between the K senses of a token, over its K(K-1) pairs.

    Arguments
    ---------
    senses : torch.Tensor
        ``[B, K, S, d]`` sense vectors.
    mask : torch.Tensor, optional
        ``[B, S]``, 1 on real tokens; the mean is over those.

    Returns
    -------
    tuple of (float, float)
        The summed per-token means and the number of tokens, so corpus
        means add up over batches.

    Example
    -------
    >>> same = torch.ones(1, 3, 2, 4)  # every sense the same: cosine 1
    >>> mean_offdiagonal_cosine(same)
    (2.0, 2.0)
    """
    K = senses.shape[1]
    if K < 2:
        raise ValueError("the off-diagonal cosine needs K >= 2 senses")
    unit = F.normalize(senses.float(), dim=-1)
    gram = torch.einsum("bksd,bjsd->bskj", unit, unit)  # [B, S, K, K]
    off = gram.sum(dim=(-1, -2)) - gram.diagonal(dim1=-2, dim2=-1).sum(-1)
    per_token = off / (K * (K - 1))  # [B, S]
    real = _real(mask, unit[:, 0, :, 0])
    return float((per_token * real).sum()), float(real.sum())


@torch.no_grad()
def sense_collapse(model, batches, top_k=1):
    """The authors' sense-collapse figures over a corpus.

    Arguments
    ---------
    model : BackpackLM
        The model (put in eval mode here).
    batches : iterable of (ids, mask)
        ``[B, T]`` token ids and real-token masks (e.g. of FLORES-200
        sentences, as the authors).
    top_k : int
        Senses kept by the "top_k" mode (the authors' default: 1).

    Returns
    -------
    dict
        ``ce_full``, ``ce_top_k``, ``ce_uniform`` (nats per predicted
        token) and ``delta_top_k``, ``delta_uniform`` (minus ``ce_full``);
        ``usage_entropy`` and ``max_entropy`` (log K); ``offdiag_cosine``
        (None for K = 1);
        ``top_k`` and ``tokens`` (predicted tokens).
    """
    model.eval()
    totals = dict.fromkeys(COLLAPSE_MODES, 0.0)
    predicted = 0
    entropy, cosine, real_tokens = 0.0, 0.0, 0.0
    K = model.config.num_senses
    for ids, mask in batches:
        out = model(ids, attention_mask=mask, return_senses=True)
        contributions = sense_contributions(out.senses, out.contextualization)
        for mode in COLLAPSE_MODES:
            if mode == "full":  # the model's own logits: no second LM head
                logits = out.logits
            else:
                hidden = collapsed_hidden(contributions, mode, top_k)
                logits = model.lm_head(hidden)
            total, n = next_token_nll(logits, ids, mask)
            totals[mode] += total
        predicted += n
        per_token = sense_entropy(contribution_usage(contributions))  # [B, T]
        real = _real(mask, per_token)
        entropy += float((per_token * real).sum())
        real_tokens += float(real.sum())
        if K > 1:
            cosine += mean_offdiagonal_cosine(out.senses, mask)[0]
    if predicted == 0:
        raise ValueError("no predicted tokens: the batches are empty")
    result = {f"ce_{m}": totals[m] / predicted for m in COLLAPSE_MODES}
    for mode in COLLAPSE_MODES[1:]:
        result[f"delta_{mode}"] = result[f"ce_{mode}"] - result["ce_full"]
    result.update(
        usage_entropy=entropy / real_tokens,
        max_entropy=math.log(K),
        offdiag_cosine=cosine / real_tokens if K > 1 else None,
        top_k=top_k,
        tokens=predicted,
    )
    return result
