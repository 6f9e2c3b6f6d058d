"""Losses, pooling and the loss-weight curriculum of SENSIA.

SENSIA (arXiv 2601.10310) adapts an English Backpack LM to a new language
with parallel sentences: a *context* view (last real hidden state) and a
*sense* view (senses pooled over the sentence) of a source sentence are each
pulled towards the same view of its translation with InfoNCE, next to the
usual LM loss on the new language. The weights of the three terms follow a
three-phase curriculum (align -> joint -> polish).

Where a default below quotes "the authors' run", it is the value in the run
command of the authors' public code (README of "Multilinguality as Sense
Adaptation"); the paper itself was not checked.

Authors
 * speechbrain-sense developers 2026
"""

import math

import torch
import torch.nn.functional as F

# The LM term is the Backpack's own objective, and one InfoNCE serves the
# whole package (SENSE and SENSIA); both are re-exported here because the
# curriculum weighs them.
from speechbrain_sense.backpack.language_modeling import label_smoothed_lm_loss
from speechbrain_sense.training.distributed import gather_with_grad
from speechbrain_sense.training.losses import info_nce

__all__ = [
    "curriculum_weights",
    "gathered_info_nce",
    "info_nce",
    "label_smoothed_lm_loss",
    "last_token_state",
    "masked_mean_pooling",
    "sense_entropy",
    "sense_mixture_pooling",
    "sentence_views",
]

# Per-phase loss weights of the authors' run ("--w_ctx_align 0.45 ...").
ALIGN_WEIGHTS = {"context": 0.45, "sense": 0.55, "lm": 0.02}
JOINT_WEIGHTS = {"context": 0.40, "sense": 0.40, "lm": 0.20}
POLISH_WEIGHTS = {"context": 0.15, "sense": 0.15, "lm": 0.70}


def sense_mixture_pooling(
    senses, contextualization, mask=None, temperature=1.0, eps=1e-8
):
    """Sentence embedding from a Backpack's senses (the SENSIA sense view).

    For each token t and sense k, the contribution of sense k is
    ``c[k, t] = sum_s alpha[k, t, s] * senses[k, s]``. Senses are mixed per
    token with ``p[k, t] = softmax_k(||c[k, t]|| / temperature)``, the mixed
    token vectors are averaged over real tokens and the result is
    L2-normalised.

    Arguments
    ---------
    senses : torch.Tensor
        ``[B, K, T, d]`` sense vectors of the tokens.
    contextualization : torch.Tensor
        ``[B, K, T, T]`` Backpack weights alpha (target, source).
    mask : torch.Tensor, optional
        ``[B, T]``, 1 for real tokens, 0 for padding. None: all real.
    temperature : float
        Temperature of the softmax over senses (the authors' run: 0.7).
    eps : float
        Guards the divisions.

    Returns
    -------
    pooled : torch.Tensor
        ``[B, d]`` unit-norm sentence embeddings.
    weights : torch.Tensor
        ``[B, K, T]`` the per-token sense mixture p (for
        :func:`sense_entropy`).

    Example
    -------
    >>> senses = torch.randn(2, 4, 5, 8)
    >>> alpha = torch.softmax(torch.randn(2, 4, 5, 5), -1)
    >>> pooled, weights = sense_mixture_pooling(senses, alpha)
    >>> pooled.shape, weights.shape
    (torch.Size([2, 8]), torch.Size([2, 4, 5]))
    >>> torch.allclose(pooled.norm(dim=-1), torch.ones(2))
    True
    """
    # Half-precision norms and softmaxes saturate; the authors hit NaNs.
    # Autocast (fp16/bf16 training) would cast the products back down.
    senses, contextualization = senses.float(), contextualization.float()
    B, K, T, _ = senses.shape
    with torch.autocast(senses.device.type, enabled=False):
        # [B, K, T, S] x [B, K, S, d] -> [B, K, T, d]
        contributions = contextualization @ senses
    weights = torch.softmax(contributions.norm(dim=-1) / temperature, dim=1)
    # [B, K, T, d] -> [B, T, d]
    tokens = (weights.unsqueeze(-1) * contributions).sum(dim=1)
    if mask is None:
        mask = torch.ones(B, T, device=senses.device)
    mask = mask.to(tokens.dtype).unsqueeze(-1)  # [B, T, 1]
    # [B, T, d] -> [B, d]
    pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(eps)
    return F.normalize(pooled, dim=-1, eps=eps), weights


def last_token_state(hidden, mask=None, eps=1e-8):
    """L2-normalised hidden state of the last real token (the context view).

    Works for left and right padding: the position taken is the last one
    whose mask is 1 (position 0 for an all-padding row).

    Arguments
    ---------
    hidden : torch.Tensor
        ``[B, T, d]`` hidden states.
    mask : torch.Tensor, optional
        ``[B, T]``, 1 for real tokens, 0 for padding. None: the last
        position.
    eps : float
        Guards the normalisation.

    Returns
    -------
    torch.Tensor
        ``[B, d]`` unit-norm vectors.

    Example
    -------
    >>> hidden = torch.arange(12.0).view(1, 4, 3)
    >>> last_token_state(hidden, torch.tensor([[1, 1, 0, 0]]))
    tensor([[0.4243, 0.5657, 0.7071]])
    """
    B, T, _ = hidden.shape
    if mask is None:
        last = torch.full((B,), T - 1, device=hidden.device)
    else:
        positions = torch.arange(T, device=hidden.device)
        # [B, T] -> [B]: the largest position holding a real token.
        last = (positions * (mask != 0)).amax(dim=1)
    states = hidden[torch.arange(B, device=hidden.device), last]  # [B, d]
    return F.normalize(states, dim=-1, eps=eps)


def masked_mean_pooling(hidden, mask=None, eps=1e-8):
    """L2-normalised mean of the real tokens' states (the dense view).

    The dense-alignment baseline aligns these instead of SENSIA's two views.

    Arguments
    ---------
    hidden : torch.Tensor
        ``[B, T, d]`` hidden states.
    mask : torch.Tensor, optional
        ``[B, T]``, 1 for real tokens, 0 for padding. None: all real.
    eps : float
        Guards the divisions.

    Returns
    -------
    torch.Tensor
        ``[B, d]`` unit-norm vectors.

    Example
    -------
    >>> hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    >>> masked_mean_pooling(hidden, torch.tensor([[1, 1, 0]]))
    tensor([[0.7071, 0.7071]])
    """
    hidden = hidden.float()
    if mask is None:
        mask = torch.ones(hidden.shape[:2], device=hidden.device)
    mask = mask.to(hidden.dtype).unsqueeze(-1)  # [B, T, 1]
    # [B, T, d] -> [B, d]
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(eps)
    return F.normalize(pooled, dim=-1, eps=eps)


def sentence_views(output, mask=None, sense_temperature=1.0, context="context"):
    """The three sentence embeddings of a Backpack forward pass.

    Arguments
    ---------
    output : BackpackOutput
        A forward pass run with ``return_senses=True``.
    mask : torch.Tensor, optional
        ``[B, T]``, 1 for real tokens, 0 for padding.
    sense_temperature : float
        Temperature of :func:`sense_mixture_pooling`.
    context : str
        Which states the context view (and the dense view) read:
        ``"context"`` for the contextualisation Transformer's last layer
        (``context_hidden``), ``"backpack"`` for the Backpack output
        (``hidden``, itself a sense mixture).

    Returns
    -------
    dict
        ``"context"`` (last real token), ``"sense"`` (sense-mixture
        pooled) and ``"mean"`` (mean pooled), each ``[B, d]`` unit-norm,
        and ``"sense_weights"`` ``[B, K, T]``.

    Example
    -------
    >>> from speechbrain_sense.backpack import BackpackConfig, BackpackLM
    >>> cfg = BackpackConfig(vocab_size=20, n_positions=8, n_embd=8,
    ...                      n_layer=1, n_head=2, num_senses=2)
    >>> out = BackpackLM(cfg)(torch.randint(0, 20, (3, 5)), return_senses=True)
    >>> views = sentence_views(out)
    >>> views["context"].shape, views["sense_weights"].shape
    (torch.Size([3, 8]), torch.Size([3, 2, 5]))
    """
    if context not in ("context", "backpack"):
        raise ValueError(f"context={context!r} is not 'context' or 'backpack'")
    if output.senses is None:
        raise ValueError("run the model with return_senses=True")
    states = output.context_hidden if context == "context" else output.hidden
    sense, weights = sense_mixture_pooling(
        output.senses, output.contextualization, mask, sense_temperature
    )
    return {
        "context": last_token_state(states, mask),
        "sense": sense,
        "mean": masked_mean_pooling(states, mask),
        "sense_weights": weights,
    }


def gathered_info_nce(
    queries, keys, temperature=0.05, symmetric=True, gather=gather_with_grad
):
    """:func:`info_nce` with the pairs of every DDP rank as negatives.

    Each rank gathers the queries and the keys of all ranks in rank order
    (:func:`speechbrain_sense.training.distributed.gather_with_grad`), so pair i of
    rank r is row ``offset_r + i`` of both and the positives stay on the
    diagonal, then computes :func:`info_nce` on the gathered batch. Every
    rank thus gets the loss one process would compute on the concatenated
    batch, and after DDP averages the gradients, that process's gradient
    (see ``gather_with_grad``). With one process the gather is the
    identity and this *is* :func:`info_nce`. This is the authors' DDP
    InfoNCE (``call_infonce`` in their ``utils/training.py``).

    Arguments
    ---------
    queries : torch.Tensor
        ``[B_r, D]`` this rank's embeddings (e.g. the source view).
    keys : torch.Tensor
        ``[B_r, D]`` the paired embeddings (e.g. the target view).
    temperature : float
        Softmax temperature.
    symmetric : bool
        Average the query->key and key->query losses.
    gather : callable
        ``[B_r, D] -> [B, D]``, all ranks' rows; the default gathers across
        the DDP ranks (tests pass a stand-in).

    Returns
    -------
    torch.Tensor
        Scalar loss, the same on every rank.

    Example
    -------
    >>> q, k = torch.randn(4, 8), torch.randn(4, 8)
    >>> bool(gathered_info_nce(q, k, 0.1) == info_nce(q, k, 0.1))
    True
    """
    # [B_r, D] -> [B, D] on every rank
    return info_nce(gather(queries), gather(keys), temperature, symmetric)


def sense_entropy(weights, mask=None, dim=1):
    """Entropy (nats) of sense mixtures, ``-sum_k p_k log p_k``.

    Arguments
    ---------
    weights : torch.Tensor
        Distributions along ``dim``, e.g. the ``[B, K, T]`` mixture of
        :func:`sense_mixture_pooling`.
    mask : torch.Tensor, optional
        Shaped like ``weights`` without ``dim`` (e.g. ``[B, T]``); if given,
        return the mean entropy over positions where it is 1.
    dim : int
        Axis holding the distribution.

    Returns
    -------
    torch.Tensor
        Per-distribution entropies, or their masked mean.

    Example
    -------
    >>> sense_entropy(torch.full((1, 4, 2), 0.25))
    tensor([[1.3863, 1.3863]])
    >>> sense_entropy(torch.tensor([[0.5, 0.5, 0.0]]), dim=-1)
    tensor([0.6931])
    """
    # xlogy makes 0 * log 0 = 0 for one-hot mixtures.
    entropy = -torch.special.xlogy(weights, weights).sum(dim=dim)
    if mask is None:
        return entropy
    mask = mask.to(entropy.dtype)
    return (entropy * mask).sum() / mask.sum().clamp_min(1.0)


def curriculum_weights(
    progress,
    phases=(0.2, 0.3, 0.5),
    align=None,
    joint=None,
    polish=None,
    normalize=True,
):
    """Loss weights of the three-phase SENSIA curriculum at ``progress``.

    Each phase starts at its own weights and follows a half-cosine to the
    next phase's weights by the time it ends; the last phase (polish) holds
    its weights. So the weights are continuous and each one moves
    monotonically within a phase. This is the schedule of the authors' code
    (``LossScheduler``); the default weights are those of the authors' run:
    align favours the two contrastive views with a token LM weight, joint
    balances them, polish is LM dominant. Set the paper's values here if
    they differ.

    Arguments
    ---------
    progress : float
        Training progress in [0, 1] (clipped), e.g. ``step / total_steps``.
    phases : tuple of float
        Fractions of training for align, joint and polish; sum to 1.
    align, joint, polish : dict, optional
        Weights at the start of each phase, same keys in all three. Default
        to ``ALIGN_WEIGHTS``, ``JOINT_WEIGHTS`` and ``POLISH_WEIGHTS``
        (keys "context", "sense", "lm").
    normalize : bool
        Rescale the weights to sum to one (as the authors do).

    Returns
    -------
    dict
        Key -> weight (float).

    Example
    -------
    >>> w = curriculum_weights(0.0, normalize=False)
    >>> w == ALIGN_WEIGHTS
    True
    >>> curriculum_weights(0.2, normalize=False) == JOINT_WEIGHTS
    True
    >>> curriculum_weights(0.75, normalize=False) == POLISH_WEIGHTS
    True
    >>> round(sum(curriculum_weights(0.1).values()), 6)
    1.0
    """
    align = ALIGN_WEIGHTS if align is None else align
    joint = JOINT_WEIGHTS if joint is None else joint
    polish = POLISH_WEIGHTS if polish is None else polish
    if not set(align) == set(joint) == set(polish):
        raise ValueError("align, joint and polish need the same keys")
    if len(phases) != 3 or min(phases) < 0 or abs(sum(phases) - 1) > 1e-6:
        raise ValueError(f"phases={phases} must be 3 fractions that sum to 1")

    p = min(max(float(progress), 0.0), 1.0)
    align_end = phases[0]
    joint_end = phases[0] + phases[1]
    if p < align_end:
        start, end, t = align, joint, p / align_end
    elif p < joint_end:
        start, end, t = joint, polish, (p - align_end) / phases[1]
    else:
        start, end, t = polish, polish, 0.0
    # Half-cosine from 0 to 1: flat at both ends, so no kink at boundaries.
    ramp = 0.5 * (1.0 - math.cos(math.pi * t))
    weights = {k: start[k] + (end[k] - start[k]) * ramp for k in start}
    if normalize:
        total = sum(weights.values())
        if total <= 0:
            raise ValueError("weights must have a positive sum to normalize")
        weights = {k: v / total for k, v in weights.items()}
    return weights
