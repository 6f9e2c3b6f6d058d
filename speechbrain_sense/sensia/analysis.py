"""Sense-level analysis of an adapted Backpack (the SENSIA paper's probes).

Five measurements compare a Backpack adapted to a target language (or a
baseline) with the English Backpack it started from. Given anchor
sentence pairs, :func:`analyze` adds the authors' two global probes
(:mod:`speechbrain_sense.sensia.anchor_probes`): Procrustes and mutual
information on aligned word occurrences.

* **Sense entropy**: entropy (nats) of the per-token sense mixture of
  :func:`speechbrain_sense.sensia.losses.sense_mixture_pooling` on target
  sentences; ``log K`` means no sense stands out.
* **Local topology** (the paper's rho, :func:`local_topology`): for aligned
  word pairs (English word, translation), each word's K senses *in the
  evaluated model* are centred on their mean and unit-normalised, and the
  upper triangles of the two K x K cosine matrices are compared with
  Spearman's rho, averaged over pairs. This follows the authors' code
  (``utils/inspector.py`` of github.com/jcblaisecruz02/sensia).
* **Sense-similarity correlation** (ours, not the paper's:
  :func:`sense_similarity_correlation`): the same comparison without
  centring, the English word's senses taken from the *English* model. It
  gives 0.93 for the unadapted demo model, while the paper reports
  0.25-0.30 for its local topology. Most likely because uncentred cosines are dominated by what a
  word's K senses share: what is left orders the sense pairs by the sizes
  of the sense-specific parts, a profile of the sense network that is much
  the same for every word, so even unrelated words correlate (a synthetic
  case in the tests gives 0.94 for unrelated words, 0.15 centred).
* **Global structure** (ours; the authors' Procrustes is
  :func:`speechbrain_sense.sensia.anchor_probes.procrustes_fit`, reported
  as ``"procrustes"``): word vectors (mean of a word's senses) of
  the two sides are mapped by an orthogonal Procrustes rotation fitted on
  anchor pairs; the mean cosine after rotation is reported on the anchors
  and on held-out pairs (the held-out number is the one that says
  something).
* **Sense-mixture ablation**: the Backpack predicts from
  ``sum_k sum_s alpha[k, t, s] * senses[k, s]``. Keeping the mass that each
  source token receives, ``m[t, s] = sum_k alpha[k, t, s]``, but changing
  how it is split over that token's senses isolates the contextual choice
  of senses: "top1" gives all of it to the token's highest-weighted sense,
  "uniform" spreads it evenly over the K senses. The cross-entropy change
  on target text measures how much prediction relies on that choice.
  The authors' own sense-collapse probe (top-1 by contribution norm, the
  state over K, usage entropy, off-diagonal cosine) is
  :mod:`speechbrain_sense.sensia.sense_collapse`, ``"sense_collapse"`` in
  the output.

Aligned word pairs come from the bitext itself (:func:`dice_lexicon`:
mutual-best Dice association of words co-occurring in translation pairs),
so no dictionary is needed; each pair counts once. (The authors align
the words of FLORES sentence pairs with SimAlign and count every aligned
occurrence, so frequent words weigh more.) Words are split into subword
tokens by the model's tokenizer; a word's senses are the mean over its
tokens. Backpack senses do not depend on context, so a word's senses are
the same in every sentence.

Run ``python -m speechbrain_sense.sensia.analysis --help`` for the CLI.

Authors
 * speechbrain-sense developers 2026
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from speechbrain_sense.backpack.language_modeling import next_token_nll
from speechbrain_sense.sensia.anchor_probes import (
    AnchorSentence,
    collect_anchors,
    jsd_mutual_information_gap,
    orthogonal_procrustes,
    padded_batch,
    procrustes_fit,
)
from speechbrain_sense.sensia.losses import sense_entropy, sense_mixture_pooling
from speechbrain_sense.sensia.sense_collapse import sense_collapse

__all__ = [
    "ABLATIONS",
    "analyze",
    "anchor_sentences",
    "corpus_sense_entropy",
    "dice_lexicon",
    "global_structure",
    "local_topology",
    "mix_senses",
    "orthogonal_procrustes",
    "procrustes_cosine",
    "sense_mixture_ablation",
    "sense_similarity",
    "sense_similarity_correlation",
    "sentence_batches",
    "spearman_rho",
    "word_senses",
    "words_of",
]

ABLATIONS = ("full", "top1", "uniform")
_WORD = re.compile(r"[^\W\d_]+")


# ----------------------------------------------------------------------
# Rank correlation, local topology and sense-similarity correlation
# ----------------------------------------------------------------------


def _average_ranks(x):
    """1-based ranks of a 1-D tensor, ties sharing their mean rank."""
    order = torch.argsort(x, stable=True)
    _, inverse, counts = torch.unique_consecutive(
        x[order], return_inverse=True, return_counts=True
    )
    ends = counts.cumsum(0).double()  # last 1-based position of each group
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty(len(x), dtype=torch.float64, device=x.device)
    ranks[order] = mean_rank[inverse]
    return ranks


def spearman_rho(x, y):
    """Spearman's rank correlation of two 1-D samples (ties averaged).

    Arguments
    ---------
    x, y : torch.Tensor
        ``[n]`` paired observations.

    Returns
    -------
    float
        rho in [-1, 1]; NaN when either sample is constant.

    Example
    -------
    >>> x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    >>> spearman_rho(x, torch.tensor([2.0, 1.0, 4.0, 3.0, 5.0]))
    0.8
    >>> spearman_rho(x, -x ** 3)
    -1.0
    """
    x, y = x.flatten(), y.flatten()
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two samples of equal size >= 2, got {len(x)}")
    rx = _average_ranks(x) - (len(x) + 1) / 2
    ry = _average_ranks(y) - (len(y) + 1) / 2
    denominator = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    if denominator == 0:
        return float("nan")
    return round(float((rx * ry).sum()) / denominator, 12)


def sense_similarity(senses, centre=False):
    """Cosine similarities between the K senses of each word.

    Arguments
    ---------
    senses : torch.Tensor
        ``[..., K, d]``.
    centre : bool
        Subtract the mean of each word's K senses first, as the paper's
        :func:`local_topology` does; the result is then clamped to [-1, 1].

    Returns
    -------
    torch.Tensor
        ``[..., K, K]``.

    Example
    -------
    >>> sense_similarity(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    tensor([[1.0000, 0.7071],
            [0.7071, 1.0000]])
    >>> sense_similarity(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), centre=True)
    tensor([[ 1., -1.],
            [-1.,  1.]])
    """
    senses = senses.float()
    if centre:
        senses = senses - senses.mean(dim=-2, keepdim=True)
    unit = F.normalize(senses, dim=-1)
    similarity = unit @ unit.transpose(-1, -2)
    return similarity.clamp(-1.0, 1.0) if centre else similarity


def _upper_triangles(senses, centre):
    """``[N, K, d]`` -> ``[N, K(K-1)/2]`` sense-pair similarities."""
    K = senses.shape[1]
    rows, cols = torch.triu_indices(K, K, offset=1)
    return sense_similarity(senses, centre)[:, rows, cols]


def _check_pairs(src_senses, tgt_senses):
    """Raise unless both sides have N words of the same K >= 3 senses."""
    if src_senses.shape[:2] != tgt_senses.shape[:2]:
        raise ValueError(
            f"src {tuple(src_senses.shape)} and tgt {tuple(tgt_senses.shape)} "
            "need the same number of words and senses"
        )
    if src_senses.shape[1] < 3:
        raise ValueError(
            f"K={src_senses.shape[1]} senses give fewer than 3 sense pairs"
        )


def local_topology(src_senses, tgt_senses):
    """The paper's local sense topology: Spearman rho of centred sense
    similarities, per aligned word pair.

    For each pair, the K sense vectors of each word are centred on their
    mean, unit-normalised, and the upper triangle (``K(K-1)/2`` values) of
    their cosine matrix, clamped to [-1, 1], is compared with the other
    word's by Spearman's rho. A pair whose rho is undefined (a constant
    triangle) counts as 0. The summary is the mean, median, sample
    standard deviation, minimum and maximum over pairs.

    This is the definition of ``sense_topology_table`` in ``utils/
    inspector.py`` of the authors' code (github.com/jcblaisecruz02/sensia,
    commit 8d4c1f0, summarised by ``run_ablations.py``), rewritten here.
    There, both words' senses come from the *evaluated* model (the English
    sentence and its translation go through the same model), and a word's
    senses are the mean over its subword positions, as in
    :func:`word_senses`. Differences that are not in this function: the
    authors' pairs are SimAlign alignments of FLORES sentence pairs, one
    row per aligned occurrence (repeat rows here to weight by frequency),
    and their ranks break ties by sort order where ours share the mean
    rank (cosines of centred senses practically never tie).

    Because of the centring, rho ignores anything a word's senses share,
    and it is unchanged by a rotation, a rescaling or a shift of either
    word's senses.

    Arguments
    ---------
    src_senses : torch.Tensor
        ``[N, K, d]`` senses of the English words (K >= 3).
    tgt_senses : torch.Tensor
        ``[N, K, d']`` senses of their translations (d' may differ).

    Returns
    -------
    dict
        ``"rho"`` (mean), ``"rho_median"``, ``"rho_std"``, ``"rho_min"``,
        ``"rho_max"``, ``"pairs"`` and ``"per_pair"`` (list of float).

    Example
    -------
    >>> senses = torch.randn(4, 5, 8)
    >>> rotation = torch.linalg.qr(torch.randn(8, 8))[0]
    >>> shifted = senses @ rotation + torch.randn(4, 1, 8)
    >>> round(local_topology(senses, shifted)["rho"], 6)
    1.0
    """
    _check_pairs(src_senses, tgt_senses)
    src = _upper_triangles(src_senses, centre=True)
    tgt = _upper_triangles(tgt_senses, centre=True)
    per_pair = [spearman_rho(a, b) for a, b in zip(src, tgt)]
    per_pair = [0.0 if math.isnan(r) else r for r in per_pair]
    values = torch.tensor(per_pair, dtype=torch.float64)
    return {
        "rho": float(values.mean()),
        # Interpolated: the mean of the middle two for an even count, as
        # the pandas median of the authors' summary.
        "rho_median": float(values.quantile(0.5)),
        "rho_std": float(values.std()) if len(values) > 1 else float("nan"),
        "rho_min": float(values.min()),
        "rho_max": float(values.max()),
        "pairs": len(per_pair),
        "per_pair": per_pair,
    }


def sense_similarity_correlation(src_senses, tgt_senses):
    """Ours, not the paper's: Spearman rho of *uncentred* sense similarities.

    What this repository reported as "local topology" before the authors'
    definition (:func:`local_topology`) was implemented: the same per-pair
    rho, but on plain cosines of the senses, and :func:`analyze` takes the
    English word's senses from the English model. It gives 0.93 for the
    unadapted demo model, most likely because uncentred cosines are
    dominated by the component a word's K senses share: the order of the
    sense pairs then follows the sizes of their sense-specific parts, and
    if the sense network sets those much the same for every word, unrelated
    words correlate too. The unit tests build such a case (0.94 uncentred,
    0.15 centred); the same measure on shuffled lexicon pairs of a trained
    model would confirm it there.

    Arguments
    ---------
    src_senses : torch.Tensor
        ``[N, K, d]`` senses of the English words (K >= 3).
    tgt_senses : torch.Tensor
        ``[N, K, d']`` senses of their translations (d' may differ).

    Returns
    -------
    dict
        ``"rho"`` (mean over pairs with a defined rho), ``"rho_std"``
        (population), ``"pairs"`` and ``"per_pair"`` (list of float).

    Example
    -------
    >>> senses = torch.randn(4, 5, 8)
    >>> rotation = torch.linalg.qr(torch.randn(8, 8))[0]
    >>> round(sense_similarity_correlation(senses, senses @ rotation)["rho"], 6)
    1.0
    """
    _check_pairs(src_senses, tgt_senses)
    src = _upper_triangles(src_senses, centre=False)
    tgt = _upper_triangles(tgt_senses, centre=False)
    per_pair = [spearman_rho(a, b) for a, b in zip(src, tgt)]
    defined = [r for r in per_pair if not math.isnan(r)]
    mean = sum(defined) / len(defined) if defined else float("nan")
    var = (
        sum((r - mean) ** 2 for r in defined) / len(defined)
        if defined
        else float("nan")
    )
    return {
        "rho": mean,
        "rho_std": math.sqrt(var),
        "pairs": len(defined),
        "per_pair": per_pair,
    }


# ----------------------------------------------------------------------
# Global structure: orthogonal Procrustes
# ----------------------------------------------------------------------


def procrustes_cosine(x, y, rotation):
    """Mean cosine between the rows of ``x @ rotation`` and of ``y``.

    Arguments
    ---------
    x : torch.Tensor
        Source vectors, [N, d].
    y : torch.Tensor
        Target vectors, [N, d], row i paired with row i of ``x``.
    rotation : torch.Tensor
        Orthogonal map [d, d], e.g. from :func:`orthogonal_procrustes`.

    Returns
    -------
    float
        The mean cosine, in [-1, 1].

    Example
    -------
    >>> x = torch.eye(2)
    >>> procrustes_cosine(x, x.flip(1), torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    1.0
    """
    mapped = x.double() @ rotation.double()
    return float(F.cosine_similarity(mapped, y.double(), dim=-1).mean())


def _unit_centred(vectors, mean=None):
    """Unit rows, centred on ``mean`` (default: their own), unit again."""
    unit = F.normalize(vectors.double(), dim=-1)
    if mean is None:
        mean = unit.mean(dim=0)
    return F.normalize(unit - mean, dim=-1), mean


def global_structure(src_vectors, tgt_vectors, heldout_fraction=0.2, seed=0):
    """Procrustes fit on anchor pairs, mean cosine on them and held out.

    Vectors are unit-normalised, centred (means of the anchor split) and
    normalised again before fitting, the usual pre-processing for
    cross-lingual mappings: without centring, a component shared by all
    vectors of a space inflates every cosine.

    Ours; the authors' global analysis (``procrustes_fit`` in
    ``utils/inspector.py`` of github.com/jcblaisecruz02/sensia, here
    :mod:`speechbrain_sense.sensia.anchor_probes`) differs:
    one row per aligned occurrence, both sides from the evaluated model,
    each row a context-weighted mixture of the word's senses (a softmax
    over k of sense k's dot products with the last hidden states, summed
    over the word's subwords, at temperature ``sense_pool_temp``), rows
    only centred (not normalised), the rotation mapping the target rows
    onto the English ones, and the mean cosine and MSE reported on the
    rows it was fitted on (no held-out split).

    Arguments
    ---------
    src_vectors : torch.Tensor
        ``[N, d]`` English word vectors.
    tgt_vectors : torch.Tensor
        ``[N, d]`` vectors of their translations.
    heldout_fraction : float
        Share of the pairs kept out of the fit.
    seed : int
        Seed of the split.

    Returns
    -------
    dict
        ``"train_cosine"``, ``"heldout_cosine"`` (after rotation),
        ``"identity_heldout_cosine"`` (no rotation),
        ``"train_pairs"``, ``"heldout_pairs"``.

    Example
    -------
    >>> x = torch.randn(50, 4, dtype=torch.float64)
    >>> q = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    >>> out = global_structure(x, x @ q)
    >>> round(out["train_cosine"], 6), round(out["heldout_cosine"], 6)
    (1.0, 1.0)
    """
    n = len(src_vectors)
    if n != len(tgt_vectors):
        raise ValueError("src_vectors and tgt_vectors differ in length")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_heldout = int(round(heldout_fraction * n))
    if n - n_heldout < 2:
        raise ValueError(f"{n} pairs are too few for a Procrustes fit")
    heldout, train = order[:n_heldout], order[n_heldout:]
    src_train, src_mean = _unit_centred(src_vectors[train])
    tgt_train, tgt_mean = _unit_centred(tgt_vectors[train])
    rotation = orthogonal_procrustes(src_train, tgt_train)
    out = {
        "train_cosine": procrustes_cosine(src_train, tgt_train, rotation),
        "heldout_cosine": float("nan"),
        "identity_heldout_cosine": float("nan"),
        "train_pairs": len(train),
        "heldout_pairs": len(heldout),
    }
    if heldout:
        src_held, _ = _unit_centred(src_vectors[heldout], src_mean)
        tgt_held, _ = _unit_centred(tgt_vectors[heldout], tgt_mean)
        out["heldout_cosine"] = procrustes_cosine(src_held, tgt_held, rotation)
        if src_held.shape == tgt_held.shape:
            eye = torch.eye(src_held.shape[1], dtype=torch.float64)
            out["identity_heldout_cosine"] = procrustes_cosine(
                src_held, tgt_held, eye
            )
    return out


# ----------------------------------------------------------------------
# Sense-mixture ablation
# ----------------------------------------------------------------------


def mix_senses(senses, contextualization, mode="full"):
    """Backpack output with the split of each source's mass over senses
    replaced.

    Arguments
    ---------
    senses : torch.Tensor
        ``[B, K, S, d]`` sense vectors of the source tokens.
    contextualization : torch.Tensor
        ``[B, K, T, S]`` the model's weights alpha.
    mode : str
        "full" (alpha itself), "top1" (each source's mass
        ``sum_k alpha[k, t, s]`` on its sense with the largest alpha) or
        "uniform" (that mass split evenly over the K senses).

    Returns
    -------
    torch.Tensor
        ``[B, T, d]``, what the LM head reads.

    Example
    -------
    >>> senses = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2]
    >>> alpha = torch.tensor([[[[0.8]], [[0.2]]]])  # [1, 2, 1, 1]
    >>> for mode in ABLATIONS:
    ...     print(mode, mix_senses(senses, alpha, mode)[0, 0])
    full tensor([0.8000, 0.2000])
    top1 tensor([1., 0.])
    uniform tensor([0.5000, 0.5000])
    """
    if mode not in ABLATIONS:
        raise ValueError(f"mode={mode!r} is not one of {ABLATIONS}")
    weights = contextualization
    if mode != "full":
        K = contextualization.shape[1]
        mass = contextualization.sum(dim=1, keepdim=True)  # [B, 1, T, S]
        if mode == "uniform":
            weights = mass.expand_as(contextualization) / K
        else:
            top = contextualization.argmax(dim=1, keepdim=True)
            one_hot = torch.zeros_like(contextualization).scatter_(1, top, 1.0)
            weights = one_hot * mass
    # [B, K, T, S] x [B, K, S, d] -> [B, T, d]
    return torch.einsum("bkts,bksd->btd", weights, senses)


@torch.no_grad()
def sense_mixture_ablation(model, batches):
    """Next-token cross-entropy (nats) with each sense-mixture ablation.

    Arguments
    ---------
    model : BackpackLM
        The model (put in eval mode here).
    batches : iterable of (ids, mask)
        ``[B, T]`` token ids and real-token masks.

    Returns
    -------
    dict
        ``"ce_<mode>"`` for every mode of :data:`ABLATIONS`, and
        ``"delta_<mode>"`` = ablated - full, plus ``"tokens"``.
    """
    model.eval()
    totals = dict.fromkeys(ABLATIONS, 0.0)
    count = 0
    for ids, mask in batches:
        out = model(ids, attention_mask=mask, return_senses=True)
        for mode in ABLATIONS:
            hidden = mix_senses(out.senses, out.contextualization, mode)
            total, n = next_token_nll(model.lm_head(hidden), ids, mask)
            totals[mode] += total
        count += n
    result = {f"ce_{m}": totals[m] / max(count, 1) for m in ABLATIONS}
    for mode in ABLATIONS[1:]:
        result[f"delta_{mode}"] = result[f"ce_{mode}"] - result["ce_full"]
    result["tokens"] = count
    return result


@torch.no_grad()
def corpus_sense_entropy(model, batches, temperature=1.0):
    """Mean entropy (nats) of the per-token sense mixture over real tokens.

    Arguments
    ---------
    model : BackpackLM
        The model (put in eval mode here).
    batches : iterable of (ids, mask)
        Token ids and masks, ``[B, T]`` each.
    temperature : float
        Temperature of the mixture (as in training).

    Returns
    -------
    float
    """
    model.eval()
    total, count = 0.0, 0.0
    for ids, mask in batches:
        out = model(ids, attention_mask=mask, return_senses=True)
        _, weights = sense_mixture_pooling(
            out.senses, out.contextualization, mask, temperature
        )
        n = float(mask.sum())
        total += float(sense_entropy(weights, mask)) * n
        count += n
    return total / max(count, 1.0)


# ----------------------------------------------------------------------
# Data: sentences, words and the lexicon
# ----------------------------------------------------------------------


def sentence_batches(tokenizer, sentences, batch_size=32, max_length=64):
    """``[bos] sentence [eos]`` id batches, right-padded, with masks.

    Arguments
    ---------
    tokenizer : BackpackTokenizer
        Frames and tokenises the sentences.
    sentences : list of str
        Sentences.
    batch_size : int
        Sentences per batch.
    max_length : int
        Truncation length in tokens (``eos`` kept).

    Returns
    -------
    list of (torch.LongTensor, torch.LongTensor)
        ``(ids, mask)``, each ``[B, T]``.
    """
    encoded = [tokenizer.encode_sentence(s, max_length) for s in sentences]
    return [
        padded_batch(encoded[start : start + batch_size], tokenizer.pad_id)
        for start in range(0, len(encoded), batch_size)
    ]


@torch.no_grad()
def word_senses(model, tokenizer, words):
    """Context-free senses of words: the mean over their subword tokens.

    Arguments
    ---------
    model : BackpackLM
        Model whose sense network is used (eval mode).
    tokenizer : BackpackTokenizer
        Splits the words as inside a sentence.
    words : list of str
        Words.

    Returns
    -------
    torch.Tensor
        ``[N, K, d]``.
    """
    model.eval()
    pieces = [tokenizer.encode_word(w) for w in words]
    empty = [w for w, p in zip(words, pieces) if not p]
    if empty:
        raise ValueError(f"words without tokens: {empty[:5]}")
    vocabulary = sorted({i for p in pieces for i in p})
    index = {token: row for row, token in enumerate(vocabulary)}
    senses = model.sense_vectors(torch.tensor(vocabulary))  # [U, K, d]
    return torch.stack(
        [senses[[index[i] for i in p]].mean(dim=0) for p in pieces]
    )


def words_of(text):
    """Lower-cased alphabetic words (digits and punctuation dropped).

    Arguments
    ---------
    text : str
        A sentence.

    Returns
    -------
    list of str
        Its words, in order.

    Example
    -------
    >>> words_of("L'homme a 3 chats, Tom!")
    ['l', 'homme', 'a', 'chats', 'tom']
    """
    return _WORD.findall(text.lower())


def dice_lexicon(
    pairs,
    min_count=5,
    min_dice=0.3,
    max_pairs=None,
    exclude_identical=True,
    min_length=2,
):
    """Word translations induced from a bitext by mutual-best Dice.

    ``dice(e, f) = 2 c(e, f) / (c(e) + c(f))`` with c counting the sentence
    pairs that contain the words; a pair (e, f) is kept when each is the
    other's best match.

    Arguments
    ---------
    pairs : iterable of (str, str)
        Source and target sentences.
    min_count : int
        Words rarer than this (in sentence pairs) are ignored.
    min_dice : float
        Weakest association kept.
    max_pairs : int, optional
        Keep the strongest this many.
    exclude_identical : bool
        Drop pairs spelt the same on both sides (names, cognates), which
        would measure shared tokens rather than adaptation.
    min_length : int
        Shortest word considered (in characters).

    Returns
    -------
    list of (str, str, float)
        ``(source word, target word, dice)``, strongest first.

    Example
    -------
    >>> bitext = [("the cat", "le chat"), ("the dog", "le chien"),
    ...           ("a cat", "un chat"), ("a dog", "un chien")]
    >>> [(e, f) for e, f, _ in dice_lexicon(bitext, min_count=2)]
    [('cat', 'chat'), ('dog', 'chien'), ('the', 'le')]
    """
    src_count, tgt_count, joint = Counter(), Counter(), Counter()
    sentences = []
    for src, tgt in pairs:
        e = {w for w in words_of(src) if len(w) >= min_length}
        f = {w for w in words_of(tgt) if len(w) >= min_length}
        src_count.update(e)
        tgt_count.update(f)
        sentences.append((e, f))
    frequent_e = {w for w, c in src_count.items() if c >= min_count}
    frequent_f = {w for w, c in tgt_count.items() if c >= min_count}
    for e, f in sentences:
        for a in e & frequent_e:
            for b in f & frequent_f:
                joint[a, b] += 1

    best_f, best_e = {}, {}
    # Sorted so that ties resolve the same way on every run.
    for (a, b), c in sorted(joint.items()):
        dice = 2 * c / (src_count[a] + tgt_count[b])
        if dice > best_f.get(a, (None, -1.0))[1]:
            best_f[a] = (b, dice)
        if dice > best_e.get(b, (None, -1.0))[1]:
            best_e[b] = (a, dice)
    lexicon = [
        (a, b, dice)
        for a, (b, dice) in best_f.items()
        if best_e[b][0] == a
        and dice >= min_dice
        and not (exclude_identical and a == b)
    ]
    lexicon.sort(key=lambda item: (-item[2], item[0]))
    return lexicon[:max_pairs] if max_pairs else lexicon


def _tokenise_words(tokenizer, words, max_length):
    """Ids and per-word positions, as the tokenizer splits a sentence."""
    ids, spans = [tokenizer.bos_id], []
    for word in words:
        pieces = tokenizer.encode_word(word)
        if len(ids) + len(pieces) + 1 > max_length:
            break
        spans.append(list(range(len(ids), len(ids) + len(pieces))))
        ids.extend(pieces)
    ids.append(tokenizer.eos_id)
    return AnchorSentence(ids, spans)


def _single_word(token):
    """The lower-cased alphabetic word a whitespace token is, or None."""
    words = words_of(token)
    return words[0] if len(words) == 1 else None


def anchor_sentences(pairs, lexicon, tokenizer, max_length=128):
    """Sentence pairs tokenised, with their aligned word positions.

    A whitespace token is matched to a lexicon word when it is that word
    (lower-cased, punctuation and digits ignored: ``"Chat,"`` is
    ``chat``). Within a sentence pair, each English occurrence takes the
    first not yet taken target occurrence of its translation, so
    alignments are one-to-one, as the authors' SimAlign matching is.

    Arguments
    ---------
    pairs : iterable of (str, str)
        English and target sentences.
    lexicon : list of (str, str, ...)
        Word translations (English, target).
    tokenizer : BackpackTokenizer
        Splits words into tokens as inside a sentence.
    max_length : int
        Most tokens per sentence (``bos`` and ``eos`` included); words
        past it are not used.

    Returns
    -------
    list of (AnchorSentence, AnchorSentence, list of (int, int))
        English side, target side and the aligned word indices; pairs
        without an aligned word are left out.

    Example
    -------
    >>> from types import SimpleNamespace
    >>> tok = SimpleNamespace(bos_id=0, eos_id=1,
    ...                       encode_word=lambda w: [len(w)] * (len(w) // 3))
    >>> [(e.spans, t.spans, links) for e, t, links in anchor_sentences(
    ...     [("The cat.", "Le chat.")], [("cat", "chat")], tok)]
    [([[1], [2]], [[], [1]], [(1, 1)])]
    """
    translations = {}
    for entry in lexicon:
        translations.setdefault(entry[0], set()).add(entry[1])
    out = []
    for src, tgt in pairs:
        src_tokens, tgt_tokens = src.split(), tgt.split()
        src_side = _tokenise_words(tokenizer, src_tokens, max_length)
        tgt_side = _tokenise_words(tokenizer, tgt_tokens, max_length)
        tgt_words = [_single_word(t) for t in tgt_tokens[: len(tgt_side.spans)]]
        taken, links = set(), []
        for i, token in enumerate(src_tokens[: len(src_side.spans)]):
            wanted = translations.get(_single_word(token))
            if not wanted or not src_side.spans[i]:
                continue
            for j, word in enumerate(tgt_words):
                if word in wanted and j not in taken and tgt_side.spans[j]:
                    taken.add(j)
                    links.append((i, j))
                    break
        if links:
            out.append((src_side, tgt_side, links))
    return out


# ----------------------------------------------------------------------
# Everything at once
# ----------------------------------------------------------------------


def analyze(
    model,
    english_model,
    tokenizer,
    lexicon,
    sentences,
    temperature=1.0,
    heldout_fraction=0.2,
    batch_size=32,
    max_length=64,
    seed=0,
    anchor_pairs=None,
    anchor_temperature=1.0,
    max_anchors=None,
    mi_steps=800,
    collapse_top_k=1,
):
    """The five measurements of the module docstring, and the authors'.

    Arguments
    ---------
    model : BackpackLM
        The evaluated (adapted or baseline) model. The paper's
        :func:`local_topology` reads both words of a pair from it.
    english_model : BackpackLM
        The English model; its senses of the English words are the
        reference of our sense-similarity correlation and of the
        structure probe.
    tokenizer : BackpackTokenizer
        Shared by both models.
    lexicon : list of (str, str, ...)
        Aligned word pairs (English, target), e.g. :func:`dice_lexicon`.
    sentences : list of str
        Target-language sentences for the entropy and the ablation.
    temperature : float
        Sense-mixture temperature.
    heldout_fraction : float
        Share of the lexicon kept out of the Procrustes fit.
    batch_size, max_length : int
        Batching of ``sentences``.
    seed : int
        Seed of the held-out split and of the mutual-information critic.
    anchor_pairs : list of (str, str), optional
        English-target sentence pairs (e.g. FLORES-200 dev, as the
        authors) for the authors' global probes
        (:mod:`speechbrain_sense.sensia.anchor_probes`); None skips them.
    anchor_temperature : float
        Temperature of the anchors' context-weighted sense mixture (the
        authors' default: 1.0).
    max_anchors : int, optional
        Most aligned occurrences used.
    mi_steps : int
        Updates of the mutual-information critic (the authors': 800).
    collapse_top_k : int
        Senses kept by the top-k mode of the authors' sense-collapse probe
        (their default: 1).

    Returns
    -------
    dict
        ``"sense_entropy"``, ``"max_entropy"`` (log K),
        ``"local_topology"`` (the paper's), ``"sense_similarity_correlation"``
        (ours), ``"global_structure"`` (ours), ``"ablation"`` (ours),
        ``"sense_collapse"`` (the authors'),
        ``"lexicon_pairs"``, ``"sentences"``; with ``anchor_pairs`` also
        ``"procrustes"`` and ``"mutual_information"`` (the authors').
    """
    K = model.config.num_senses
    if not 1 <= collapse_top_k <= K:
        # Before the probes run, not after.
        raise ValueError(f"collapse_top_k={collapse_top_k}: must be 1 to K={K}")
    batches = sentence_batches(tokenizer, sentences, batch_size, max_length)
    src_words = [item[0] for item in lexicon]
    tgt_words = [item[1] for item in lexicon]
    src_senses = word_senses(english_model, tokenizer, src_words)
    tgt_senses = word_senses(model, tokenizer, tgt_words)
    # The paper's: both words' senses from the evaluated model.
    topology = local_topology(
        word_senses(model, tokenizer, src_words), tgt_senses
    )
    topology.pop("per_pair")
    correlation = sense_similarity_correlation(src_senses, tgt_senses)
    correlation.pop("per_pair")
    structure = global_structure(
        src_senses.mean(dim=1), tgt_senses.mean(dim=1), heldout_fraction, seed
    )
    result = {
        "sense_entropy": corpus_sense_entropy(model, batches, temperature),
        "max_entropy": math.log(model.config.num_senses),
        "local_topology": topology,
        "sense_similarity_correlation": correlation,
        "global_structure": structure,
        "ablation": sense_mixture_ablation(model, batches),
        "sense_collapse": sense_collapse(model, batches, collapse_top_k),
        "lexicon_pairs": len(lexicon),
        "sentences": len(sentences),
    }
    if anchor_pairs is not None:
        aligned = anchor_sentences(anchor_pairs, lexicon, tokenizer, max_length)
        if not aligned:
            raise ValueError(
                f"none of the {len(anchor_pairs)} anchor sentence pairs has "
                f"a word pair of the {len(lexicon)}-pair lexicon"
            )
        english, target = collect_anchors(
            model,
            aligned,
            temperature=anchor_temperature,
            batch_size=batch_size,
            max_anchors=max_anchors,
        )
        fit = procrustes_fit(english, target)
        fit.pop("rotation")
        result["procrustes"] = {
            **fit,
            "anchor_sentence_pairs": len(aligned),
            "temperature": anchor_temperature,
        }
        result["mutual_information"] = jsd_mutual_information_gap(
            english, target, steps=mi_steps, seed=seed
        )
    return result


def main(argv=None):
    """CLI: analyse a saved Backpack against the English one, print JSON.

    Arguments
    ---------
    argv : list of str, optional
        The arguments; None reads ``sys.argv``.

    Returns
    -------
    dict
        The analysis, as printed (see :func:`analyze`).
    """
    from speechbrain_sense.backpack.model import BackpackLM
    from speechbrain_sense.backpack.tokenizer import BackpackTokenizer
    from speechbrain_sense.sensia.parallel_data import FORMATS, read_parallel

    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_sense.sensia.analysis",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--model", required=True, help="evaluated model dir")
    parser.add_argument(
        "--english_model", required=True, help="English Backpack dir"
    )
    parser.add_argument(
        "--tokenizer", help="tokenizer dir (default: the --model dir)"
    )
    parser.add_argument(
        "--bitext", required=True, help="bitext for the lexicon (src file)"
    )
    parser.add_argument("--bitext_tgt", help="target file (moses format)")
    parser.add_argument("--format", choices=FORMATS, default="manythings")
    parser.add_argument(
        "--eval_text",
        help="target-language sentences, one a line (default: the last "
        "--eval_sentences target sentences of the bitext)",
    )
    parser.add_argument("--eval_sentences", type=int, default=1000)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--min_count", type=int, default=5)
    parser.add_argument("--max_pairs", type=int, default=2000)
    parser.add_argument("--heldout_fraction", type=float, default=0.2)
    parser.add_argument(
        "--anchor_src",
        help="English sentences, one a line, for the authors' Procrustes "
        "and mutual-information probes (e.g. FLORES-200 dev eng_Latn; "
        "default: the --eval_sentences held-out pairs of the bitext)",
    )
    parser.add_argument("--anchor_tgt", help="their translations, line by line")
    parser.add_argument("--anchor_temperature", type=float, default=1.0)
    parser.add_argument("--max_anchors", type=int)
    parser.add_argument("--mi_steps", type=int, default=800)
    parser.add_argument(
        "--collapse_top_k",
        type=int,
        default=1,
        help="senses kept by the top-k mode of the authors' sense-collapse "
        "probe (run on the --eval_text sentences, e.g. FLORES-200 devtest)",
    )
    parser.add_argument(
        "--skip_anchor_probes",
        action="store_true",
        help="leave out the authors' Procrustes and mutual information",
    )
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    if bool(args.anchor_src) != bool(args.anchor_tgt):
        parser.error("--anchor_src and --anchor_tgt go together")

    if args.format == "moses":
        pairs = read_parallel(
            "moses", src_path=args.bitext, tgt_path=args.bitext_tgt
        )
    else:
        pairs = read_parallel(args.format, path=args.bitext)
    bitext = [(p.src, p.tgt) for p in pairs if p.src and p.tgt]
    if args.eval_text:
        lines = Path(args.eval_text).read_text(encoding="utf-8").splitlines()
        sentences = [line.strip() for line in lines if line.strip()]
    else:
        sentences = [tgt for _, tgt in bitext[-args.eval_sentences :]]
    anchor_pairs = None
    if args.anchor_src:
        anchor_pairs = [
            (p.src, p.tgt)
            for p in read_parallel(
                "moses", src_path=args.anchor_src, tgt_path=args.anchor_tgt
            )
        ]
    elif not args.skip_anchor_probes:
        anchor_pairs = bitext[-args.eval_sentences :]
    lexicon = dice_lexicon(
        bitext, min_count=args.min_count, max_pairs=args.max_pairs
    )
    tokenizer = BackpackTokenizer.from_pretrained(args.tokenizer or args.model)
    result = analyze(
        BackpackLM.from_pretrained(args.model),
        BackpackLM.from_pretrained(args.english_model),
        tokenizer,
        lexicon,
        sentences,
        temperature=args.temperature,
        heldout_fraction=args.heldout_fraction,
        anchor_pairs=None if args.skip_anchor_probes else anchor_pairs,
        anchor_temperature=args.anchor_temperature,
        max_anchors=args.max_anchors,
        mi_steps=args.mi_steps,
        collapse_top_k=args.collapse_top_k,
    )
    text = json.dumps(result, indent=1)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
