"""Exact nearest-neighbour retrieval metrics with bounded memory.

Recall@k of speech-to-text retrieval is SENSE's model-selection metric:
each utterance embedding is a query, the teacher embeddings of all candidate
transcripts are the keys, and a query is correct at ``k`` when its own
transcript ranks among the ``k`` most similar keys.

Ranks are computed exactly, blockwise over queries *and* keys, so the
``[Nq, Nk]`` similarity matrix is never materialised: memory is
``block_size x block_size`` whatever the number of embeddings. Ties count
against the query (a key scoring exactly as high as the target ranks
before it), so a constant embedding never looks good.

Authors
 * speechbrain-sense developers 2026
"""

from collections import defaultdict

import torch
import torch.nn.functional as F

TIE_TOLERANCE = 1e-6


def target_ranks(queries, keys, targets, block_size=4096):
    """1-based rank of each query's target among all keys (cosine).

    Arguments
    ---------
    queries : torch.Tensor
        ``[Nq, D]`` embeddings.
    keys : torch.Tensor
        ``[Nk, D]`` embeddings (same device as ``queries``).
    targets : torch.Tensor
        ``[Nq]`` index into ``keys`` of each query's correct key.
    block_size : int
        Rows of queries and of keys compared at once.

    Returns
    -------
    torch.Tensor
        ``[Nq]`` long ranks; 1 means the target is the nearest key.

    Example
    -------
    >>> keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    >>> queries = torch.tensor([[1.0, 0.1], [1.0, 0.1]])
    >>> target_ranks(queries, keys, torch.tensor([0, 1]))
    tensor([1, 3])
    """
    queries = F.normalize(queries.float(), dim=-1)
    keys = F.normalize(keys.float(), dim=-1)
    targets = targets.to(queries.device)
    ranks = torch.empty(len(queries), dtype=torch.long, device=queries.device)
    for q0 in range(0, len(queries), block_size):
        q = queries[q0 : q0 + block_size]
        t = targets[q0 : q0 + block_size]
        # [b] similarity of each query with its own target
        target_scores = (q * keys[t]).sum(-1, keepdim=True)
        better = torch.zeros(len(q), dtype=torch.long, device=q.device)
        for k0 in range(0, len(keys), block_size):
            # [b, D] x [D, bk] -> [b, bk]
            scores = q @ keys[k0 : k0 + block_size].T
            # The tolerance absorbs the rounding difference between the
            # matmul and the row-wise target score, so the target itself
            # is always counted once and exact ties count against it.
            better += (scores >= target_scores - TIE_TOLERANCE).sum(-1)
        ranks[q0 : q0 + block_size] = better
    return ranks.clamp(min=1)


def recall_at_k(ranks, ks=(1, 5, 10)):
    """Fraction of queries whose target ranks within ``k``.

    Arguments
    ---------
    ranks : torch.Tensor
        ``[N]`` 1-based ranks.
    ks : tuple of int
        Cut-offs.

    Returns
    -------
    dict
        ``{"R@k": value in [0, 1]}``.

    Example
    -------
    >>> recall_at_k(torch.tensor([1, 2, 7, 1]), ks=(1, 5))
    {'R@1': 0.5, 'R@5': 0.75}
    """
    if len(ranks) == 0:
        return {f"R@{k}": float("nan") for k in ks}
    return {f"R@{k}": (ranks <= k).float().mean().item() for k in ks}


def speech_to_text_recall(
    speech, text_keys, transcripts, languages, ks=(1, 5, 10), block_size=4096
):
    """Speech-to-text Recall@k within each language and across all of them.

    Candidates are the unique transcripts: within a language, an utterance
    competes against every distinct transcript of that language; in the
    ``"all"`` pool, against every distinct transcript of every language.

    Arguments
    ---------
    speech : torch.Tensor
        ``[N, D]`` utterance embeddings.
    text_keys : dict
        Transcript -> ``[D]`` teacher embedding, covering ``transcripts``.
    transcripts : list of str
        Transcript of each utterance.
    languages : list of str
        Language of each utterance.
    ks : tuple of int
        Cut-offs.
    block_size : int
        Blockwise search size (see :func:`target_ranks`).

    Returns
    -------
    dict
        ``{language: {"R@k": ..., "count": n, "candidates": m}}`` plus the
        pooled ``"all"`` (every language's candidates together) and
        ``"mean"`` (macro average of the per-language values).

    Example
    -------
    >>> keys = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 1.0])}
    >>> speech = torch.tensor([[0.9, 0.1], [0.8, 0.3]])
    >>> out = speech_to_text_recall(speech, keys, ["a", "b"], ["x", "x"])
    >>> out["x"]["R@1"], out["x"]["candidates"]
    (0.5, 2)
    """
    by_language = defaultdict(list)
    for i, language in enumerate(languages):
        by_language[language].append(i)

    def evaluate(indices):
        candidates = sorted({transcripts[i] for i in indices})
        position = {text: j for j, text in enumerate(candidates)}
        keys = torch.stack([text_keys[text] for text in candidates])
        targets = torch.tensor([position[transcripts[i]] for i in indices])
        ranks = target_ranks(
            speech[indices], keys.to(speech.device), targets, block_size
        )
        result = recall_at_k(ranks, ks)
        result.update(count=len(indices), candidates=len(candidates))
        return result

    results = {lang: evaluate(idx) for lang, idx in sorted(by_language.items())}
    per_language = list(results.values())
    results["all"] = evaluate(list(range(len(transcripts))))
    results["mean"] = {
        f"R@{k}": sum(r[f"R@{k}"] for r in per_language) / len(per_language)
        for k in ks
    }
    results["mean"].update(
        count=len(transcripts),
        candidates=sum(r["candidates"] for r in per_language),
    )
    return results


def chance_recall(candidates, k=1):
    """Recall@k of random guessing among ``candidates`` keys.

    Arguments
    ---------
    candidates : int
        Number of keys.
    k : int
        Cut-off.

    Returns
    -------
    float

    Example
    -------
    >>> chance_recall(20, k=5)
    0.25
    """
    return min(1.0, k / candidates)
