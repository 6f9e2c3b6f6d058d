"""Bitext retrieval: find each sentence's translation among all of them.

The cross-lingual alignment metric of SENSIA (and of LASER's Tatoeba
benchmark, reported there as an error rate, 1 - R@1): row i of the source
embeddings must retrieve row i of the target embeddings by cosine, in both
directions. Ranks are exact and ties count against the query (see
:func:`speechbrain_sense.retrieval.target_ranks`).

Authors
 * speechbrain-sense developers 2026
"""

import torch

from speechbrain_sense.retrieval import recall_at_k, target_ranks

__all__ = ["bitext_recall"]


def bitext_recall(src, tgt, ks=(1,)):
    """Recall@k of translation retrieval, source->target and back.

    Arguments
    ---------
    src : torch.Tensor
        ``[N, D]`` source-sentence embeddings.
    tgt : torch.Tensor
        ``[N, D]`` embeddings of their translations, same order.
    ks : tuple of int
        Cut-offs.

    Returns
    -------
    dict
        ``{"src2tgt": {"R@k": ...}, "tgt2src": {...}}`` and ``"mean"``.

    Example
    -------
    >>> src = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> tgt = torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.0, 1.0]])
    >>> out = bitext_recall(src, tgt)
    >>> round(out["src2tgt"]["R@1"], 4), round(out["tgt2src"]["R@1"], 4)
    (0.3333, 0.6667)
    """
    if src.shape != tgt.shape:
        raise ValueError(f"src {tuple(src.shape)} != tgt {tuple(tgt.shape)}")
    targets = torch.arange(len(src))
    out = {
        "src2tgt": recall_at_k(target_ranks(src, tgt, targets), ks),
        "tgt2src": recall_at_k(target_ranks(tgt, src, targets), ks),
    }
    out["mean"] = {
        k: 0.5 * (out["src2tgt"][k] + out["tgt2src"][k]) for k in out["src2tgt"]
    }
    return out
