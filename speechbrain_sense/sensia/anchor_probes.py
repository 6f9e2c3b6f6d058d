"""The SENSIA authors' global probes: Procrustes and mutual information.

The authors' ablation script (``run_ablations.py`` and
``utils/inspector.py`` of github.com/jcblaisecruz02/sensia) measures how
the evaluated model's English and target spaces relate on *anchors*: one
row per aligned word occurrence in a sentence pair, both rows from the same
(evaluated) model. This module implements those probes from the
description of that code:

* **Anchors** (:func:`collect_anchors`): a word's vector in a sentence is a
  context-weighted mixture of its K senses. With ``S[k, p]`` the senses of
  the word's subword positions p and ``h[p]`` the final hidden states of
  the contextualisation Transformer at those positions,
  ``w = softmax_k(sum_p h[p] . S[k, p] / temperature)`` and the vector is
  ``sum_k w[k] * mean_p S[k, p]`` (``weighting="uniform"``: ``w = 1/K``).
* **Procrustes** (:func:`procrustes_fit`): both row sets are centred (not
  normalised), an orthogonal Q maps the target rows onto the English ones,
  and the mean squared error and mean cosine are reported on the rows the
  map was fitted on, as the authors do (no held-out split; ours, with one,
  is :func:`speechbrain_sense.sensia.analysis.global_structure`).
* **Mutual information** (:func:`jsd_mutual_information_gap`): an MLP
  critic on standardised features learns to tell aligned pairs from
  shuffled ones with the f-GAN Jensen-Shannon objective; the gap between
  its mean output on aligned and on shuffled pairs (``delta_mi``) is a
  lower-bound-style proxy of how much the target vector says about the
  English one.

Where this departs from the authors' code, and why:

* Word pairs come from a lexicon (e.g.
  :func:`speechbrain_sense.sensia.analysis.dice_lexicon`) matched
  one-to-one in each sentence pair, not from SimAlign, which needs a
  multilingual BERT that is not part of these recipes.
* The "final hidden states" are ``BackpackOutput.context_hidden`` (the
  contextualisation Transformer after ``ln_f``), our reading of the
  authors' ``outputs.hidden_states[-1]``.
* Everything is seeded (critic initialisation, batches, shuffles), so a
  rerun gives the same numbers.

Authors
 * speechbrain-sense developers 2026
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "WEIGHTINGS",
    "AnchorSentence",
    "JSDCritic",
    "collect_anchors",
    "jsd_mutual_information_gap",
    "orthogonal_procrustes",
    "padded_batch",
    "procrustes_fit",
]

WEIGHTINGS = ("mixture", "uniform")


# ----------------------------------------------------------------------
# Tokenised sentences with their word spans
# ----------------------------------------------------------------------


@dataclass
class AnchorSentence:
    """One side of a sentence pair, tokenised word by word.

    Arguments
    ---------
    ids : list of int
        ``[bos] + word tokens + [eos]``.
    spans : list of list of int
        Token positions (in ``ids``) of each whitespace-separated word.
    """

    ids: list
    spans: list


# ----------------------------------------------------------------------
# Anchors: context-weighted sense mixtures of aligned words
# ----------------------------------------------------------------------


def _word_vectors(senses, context, spans, weighting, temperature):
    """``[len(spans), d]`` sense mixtures of one sentence's words.

    ``senses``: ``[K, T, d]``; ``context``: ``[T, d]``.
    """
    rows = []
    for positions in spans:
        word = senses[:, positions, :]  # [K, P, d]
        if weighting == "mixture":
            # sum over the word's positions of h[p] . S[k, p]: [K]
            scores = torch.einsum("pd,kpd->k", context[positions], word)
            weights = torch.softmax(scores / temperature, dim=0)
        else:
            weights = torch.full_like(word[:, 0, 0], 1.0 / len(word))
        rows.append((weights[:, None] * word.mean(dim=1)).sum(dim=0))
    return torch.stack(rows)


def padded_batch(sequences, pad_id=0):
    """Right-padded ``[B, T]`` ids of token sequences, and their mask.

    Arguments
    ---------
    sequences : list of list of int
        Token ids.
    pad_id : int
        Id written past each sequence's end.

    Returns
    -------
    ids, mask : torch.LongTensor
        ``[B, T]`` each, mask 1 on real tokens.

    Example
    -------
    >>> padded_batch([[5, 6], [7]], pad_id=9)[0].tolist()
    [[5, 6], [7, 9]]
    """
    T = max(len(sequence) for sequence in sequences)
    ids = torch.full((len(sequences), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), T, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
    return ids, mask


@torch.no_grad()
def collect_anchors(
    model,
    sentences,
    weighting="mixture",
    temperature=1.0,
    batch_size=32,
    max_anchors=None,
):
    """English and target anchor rows of aligned word occurrences.

    Arguments
    ---------
    model : BackpackLM
        The evaluated model; both sides are read from it (eval mode).
    sentences : list
        From :func:`anchor_sentences`.
    weighting : str
        ``"mixture"`` (the authors' default: senses weighted by their
        agreement with the context states) or ``"uniform"``.
    temperature : float
        Softmax temperature of the mixture (the authors' default: 1.0).
    batch_size : int
        Sentence pairs per forward.
    max_anchors : int, optional
        Stop after this many aligned occurrences.

    Returns
    -------
    english : torch.Tensor
        ``[N, d]`` float32, one row per aligned occurrence.
    target : torch.Tensor
        ``[N, d]``, row i aligned with ``english[i]``.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting {weighting!r} not in {WEIGHTINGS}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    model.eval()
    english, target, count = [], [], 0
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start : start + batch_size]
        sides = []
        for column in (0, 1):
            ids, mask = padded_batch([item[column].ids for item in chunk])
            out = model(ids, attention_mask=mask, return_senses=True)
            sides.append((out.senses.float(), out.context_hidden.float()))
        for row, (src, tgt, links) in enumerate(chunk):
            words = (
                [src.spans[i] for i, _ in links],
                [tgt.spans[j] for _, j in links],
            )
            for rows, (senses, context), spans in zip(
                (english, target), sides, words
            ):
                rows.append(
                    _word_vectors(
                        senses[row], context[row], spans, weighting, temperature
                    )
                )
            count += len(links)
        if max_anchors and count >= max_anchors:
            break
    if not english:
        raise ValueError("no aligned word occurrences: no anchors")
    english, target = torch.cat(english), torch.cat(target)
    return english[:max_anchors], target[:max_anchors]


# ----------------------------------------------------------------------
# Procrustes on anchors
# ----------------------------------------------------------------------


def orthogonal_procrustes(x, y):
    """Rotation R minimising ``||x @ R - y||_F`` over orthogonal matrices.

    Schoenemann's solution: with ``x^T y = U S V^T``, ``R = U V^T``.

    Arguments
    ---------
    x, y : torch.Tensor
        ``[n, d]`` paired rows.

    Returns
    -------
    torch.Tensor
        ``[d, d]`` orthogonal matrix (float64).

    Example
    -------
    >>> x = torch.randn(20, 3, dtype=torch.float64)
    >>> q = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    >>> torch.allclose(orthogonal_procrustes(x, x @ q), q)
    True
    """
    if x.shape != y.shape:
        raise ValueError(f"x {tuple(x.shape)} != y {tuple(y.shape)}")
    u, _, vh = torch.linalg.svd(x.double().T @ y.double())
    return u @ vh


def procrustes_fit(english, target):
    """Centred orthogonal fit of ``target`` onto ``english``.

    Q minimises ``||(T - mean T) Q - (E - mean E)||_F``; the error and
    cosine are measured on the fitted rows themselves.

    Arguments
    ---------
    english : torch.Tensor
        ``[N, d]`` English anchors E.
    target : torch.Tensor
        ``[N, d]`` target anchors T, row i aligned with row i of E.

    Returns
    -------
    dict
        ``"procrustes_mse"`` (mean over rows and dimensions),
        ``"procrustes_cos"`` (mean cosine of the mapped rows),
        ``"anchors"``, ``"rotation"`` (the ``[d, d]`` Q, float64).

    Example
    -------
    >>> e = torch.randn(30, 4, dtype=torch.float64)
    >>> q = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    >>> fit = procrustes_fit(e, 5.0 + e @ q.T)
    >>> round(fit["procrustes_cos"], 6), round(fit["procrustes_mse"], 9)
    (1.0, 0.0)
    """
    if english.shape != target.shape or english.ndim != 2:
        raise ValueError(
            f"english {tuple(english.shape)} and target "
            f"{tuple(target.shape)} must be the same [N, d]"
        )
    if len(english) < 2:
        raise ValueError(f"{len(english)} anchors are too few to centre")
    e = english.double() - english.double().mean(dim=0)
    t = target.double() - target.double().mean(dim=0)
    rotation = orthogonal_procrustes(t, e)
    mapped = t @ rotation
    return {
        "procrustes_mse": float(((mapped - e) ** 2).mean()),
        "procrustes_cos": float(F.cosine_similarity(mapped, e, dim=-1).mean()),
        "anchors": len(english),
        "rotation": rotation,
    }


# ----------------------------------------------------------------------
# Mutual information: a Jensen-Shannon critic
# ----------------------------------------------------------------------


class JSDCritic(nn.Module):
    """``T(x, y)``: a two-hidden-layer MLP on the concatenated pair.

    Arguments
    ---------
    dim : int
        Width of x and of y.
    hidden : int
        Hidden width (the authors': 128).

    Example
    -------
    >>> JSDCritic(3)(torch.zeros(5, 3), torch.ones(5, 3)).shape
    torch.Size([5])
    """

    def __init__(self, dim, hidden=128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x, y):
        """Critic logits of the pairs (x[i], y[i]).

        Arguments
        ---------
        x, y : torch.Tensor
            ``[N, dim]`` each.

        Returns
        -------
        torch.Tensor
            ``[N]`` logits.
        """
        return self.net(torch.cat([x, y], dim=-1)).squeeze(-1)


def _standardised(x, eps=1e-6):
    """Columns centred and scaled to unit standard deviation."""
    x = x - x.mean(dim=0)
    return x / x.std(dim=0).clamp_min(eps)


def _mean_logit(critic, x, y, batch=4096):
    """Mean critic output over all rows, in chunks."""
    total = sum(
        float(critic(x[i : i + batch], y[i : i + batch]).sum())
        for i in range(0, len(x), batch)
    )
    return total / len(x)


def jsd_mutual_information_gap(
    english,
    target,
    steps=800,
    batch_size=2048,
    lr=1e-4,
    hidden=128,
    eval_shuffles=5,
    seed=0,
):
    """Critic gap between aligned and shuffled anchor pairs.

    The critic maximises the f-GAN Jensen-Shannon bound, i.e. minimises
    ``softplus(-T(x, y)) + softplus(T(x, y'))`` with y' a shuffled y, on
    standardised features (Adam, gradients clipped to norm 1, logits
    clamped to +-50). The defaults are the authors'.

    Arguments
    ---------
    english : torch.Tensor
        ``[N, d]`` anchors x.
    target : torch.Tensor
        ``[N, d]`` anchors y, row i aligned with row i of x.
    steps : int
        Critic updates.
    batch_size : int
        Rows per update (at most N).
    lr : float
        Adam learning rate.
    hidden : int
        Critic width.
    eval_shuffles : int
        Shuffles averaged for the shuffled mean.
    seed : int
        Seeds initialisation, batches and shuffles.

    Returns
    -------
    dict
        ``"aligned_mean"``, ``"shuffled_mean"``, ``"delta_mi"`` (their
        difference), ``"final_loss"`` (mean of the last 50 steps; 2 ln 2 =
        1.386 means the critic learnt nothing), the settings and
        ``"anchors"``; the means are NaN with fewer than 4 anchors.
    """
    if english.shape != target.shape or english.ndim != 2:
        raise ValueError(
            f"english {tuple(english.shape)} and target "
            f"{tuple(target.shape)} must be the same [N, d]"
        )
    n, dim = english.shape
    result = {
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "hidden": hidden,
        "eval_shuffles": eval_shuffles,
        "anchors": n,
    }
    if n < 4:
        nan = float("nan")
        return {
            **result,
            "aligned_mean": nan,
            "shuffled_mean": nan,
            "delta_mi": nan,
            "final_loss": nan,
        }
    generator = torch.Generator().manual_seed(seed)
    x = _standardised(english.double()).float()
    y = _standardised(target.double()).float()
    # The critic's own initialisation must not depend on global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = JSDCritic(dim, hidden)
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    losses = []
    rows = min(batch_size, n)
    for _ in range(steps):
        index = torch.randint(0, n, (rows,), generator=generator)
        shuffled = index[torch.randperm(rows, generator=generator)]
        aligned = critic(x[index], y[index]).clamp(-50, 50)
        mismatched = critic(x[index], y[shuffled]).clamp(-50, 50)
        loss = F.softplus(-aligned).mean() + F.softplus(mismatched).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    critic.eval()
    with torch.no_grad():
        aligned_mean = _mean_logit(critic, x, y)
        shuffled_mean = sum(
            _mean_logit(critic, x, y[torch.randperm(n, generator=generator)])
            for _ in range(eval_shuffles)
        ) / max(eval_shuffles, 1)
    tail = losses[-50:]
    return {
        **result,
        "aligned_mean": aligned_mean,
        "shuffled_mean": shuffled_mean,
        "delta_mi": aligned_mean - shuffled_mean,
        "final_loss": sum(tail) / len(tail) if tail else math.nan,
    }
