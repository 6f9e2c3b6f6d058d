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

The same blockwise scan gives:

* :func:`topk_search`, the exact ``k`` nearest keys of every query (a
  running top-k merged over key blocks, memory ``O(block^2 + block k)``;
  ties go to the lower key index), on the GPU when there is one, or through
  a FAISS flat index (:func:`faiss_topk`) when ``faiss-cpu`` is installed;
* :func:`grouped_ranks`, ranks when several keys are correct (every key
  sharing the query's group label: all recordings of a sentence, all
  translations of it), the form that speech-to-speech and text-to-speech
  retrieval take;
* low-precision scoring (``precision="fp16"``, the default on a GPU, or
  ``"bf16"``) for :func:`target_ranks` and :func:`topk_search`: blocks are
  scored on tensor cores and the answer is still the fp32 one, because
  every decision the rounding could have changed (a key within
  :func:`score_error_bound` of the target, of the ``k``-th neighbour) is
  taken again in fp32;
* :func:`margin_search` and :func:`xsim_error`, LASER's xSIM: the error
  rate of ratio-margin retrieval, ``cos(x, y)`` divided by the mean of the
  average cosine of ``x`` to its ``k`` nearest targets and of ``y`` to its
  ``k`` nearest sources (``k = 4``), which discounts "hub" targets that
  are close to everything.

Authors
 * speechbrain-sense developers 2026
"""

from collections import Counter, defaultdict

import torch
import torch.nn.functional as F

TIE_TOLERANCE = 1e-6


def _key_blocks(queries, keys, block_size):
    """Cosine scores of one block of unit queries against each key block.

    Yields ``(k0, scores)`` with ``scores`` the ``[b, bk]`` similarities of
    the queries with ``keys[k0 : k0 + bk]``: the one place where a
    similarity block is made, shared by every search below.
    """
    for k0 in range(0, len(keys), block_size):
        # Keys are normalised block by block: no normalised float32 copy
        # of all N keys (4 GB at 10^6 x 1024), for 1/(2b) more FLOPs.
        block = F.normalize(keys[k0 : k0 + block_size].float(), dim=-1)
        # [b, D] x [D, bk] -> [b, bk]
        yield k0, queries @ block.T


def _search_device(device, reference):
    """``device``, else the GPU when there is one, else ``reference``'s."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return reference.device


def _unit(embeddings, device):
    """Float32 L2-normalised rows on ``device`` (cosine = dot product)."""
    return F.normalize(embeddings.float().to(device), dim=-1)


def _keys_on(keys, device):
    """``keys`` on ``device``, as they are (:func:`_key_blocks` normalises).

    Moved once, not per block of queries; no copy when already there.
    """
    return keys.detach().to(device)


def target_ranks(queries, keys, targets, block_size=4096, precision="auto"):
    """1-based rank of each query's target among all keys (cosine).

    Arguments
    ---------
    queries : torch.Tensor
        ``[Nq, D]`` embeddings.
    keys : torch.Tensor
        ``[Nk, D]`` embeddings (moved to the queries' device).
    targets : torch.Tensor
        ``[Nq]`` index into ``keys`` of each query's correct key.
    block_size : int
        Rows of queries and of keys compared at once.
    precision : str
        The dtype keys are scored in (see :func:`score_dtype`; ``"auto"``
        is fp16 on a GPU). In fp16 or bf16 a key counts as better only
        when its score is above the target's by more than the rounding
        bound, and a query with any key within the bound is ranked again
        in fp32: the ranks are the fp32 ranks.

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
    keys = _keys_on(keys, queries.device)
    targets = targets.to(queries.device)
    dtype = score_dtype(precision, queries.device)
    if dtype == torch.float32:
        return _exact_target_ranks(queries, keys, targets, block_size)
    ranks, unsure = _low_precision_target_ranks(
        queries, keys, targets, block_size, dtype
    )
    redo = unsure.nonzero().flatten()  # the one host synchronisation
    if len(redo):
        ranks[redo] = _exact_target_ranks(
            queries[redo], keys, targets[redo], block_size
        )
    return ranks


def _target_scores(q, keys, targets):
    """``[b]`` fp32 cosine of each unit query with its own target key."""
    target_keys = F.normalize(keys[targets].float(), dim=-1)
    return (q * target_keys).sum(-1, keepdim=True)


def _exact_target_ranks(queries, keys, targets, block_size):
    """:func:`target_ranks` with fp32 scores."""
    ranks = torch.empty(len(queries), dtype=torch.long, device=queries.device)
    for q0 in range(0, len(queries), block_size):
        q = _unit(queries[q0 : q0 + block_size], queries.device)
        target_scores = _target_scores(q, keys, targets[q0 : q0 + block_size])
        better = torch.zeros(len(q), dtype=torch.long, device=q.device)
        for _, scores in _key_blocks(q, keys, block_size):
            # The tolerance absorbs the rounding difference between the
            # matmul and the row-wise target score, so the target itself
            # is always counted once and exact ties count against it.
            better += (scores >= target_scores - TIE_TOLERANCE).sum(-1)
        ranks[q0 : q0 + block_size] = better
    return ranks.clamp(min=1)


def _rounded_outwards(values, dtype, up):
    """fp32 ``values`` in ``dtype``, rounded up (``up``) or down.

    Example
    -------
    >>> x = torch.tensor([0.30001])
    >>> bool(_rounded_outwards(x, torch.bfloat16, up=True).float() >= x)
    True
    >>> bool(_rounded_outwards(x, torch.bfloat16, up=False).float() <= x)
    True
    """
    rounded = values.to(dtype)
    if up:
        moved = rounded.float() < values
    else:
        moved = rounded.float() > values
    toward = torch.full_like(rounded, float("inf") if up else -float("inf"))
    return torch.where(moved, torch.nextafter(rounded, toward), rounded)


def _low_precision_target_ranks(queries, keys, targets, block_size, dtype):
    """Ranks from ``dtype`` scores, and the queries they may be wrong for.

    With ``bound`` the rounding bound, a key scoring above ``target +
    bound`` is surely better and one below ``target - bound`` surely
    worse; the target itself lies within the bound. So a query whose band
    holds exactly one key has rank ``1 + surely better``; the others are
    returned as unsure. No host synchronisation.
    """
    bound = score_error_bound(dtype, keys.shape[1])
    low_keys = _low_precision_unit_keys(keys, dtype, block_size)
    ranks = torch.empty(len(queries), dtype=torch.long, device=queries.device)
    unsure = torch.empty(len(queries), dtype=torch.bool, device=queries.device)
    for q0 in range(0, len(queries), block_size):
        q = _unit(queries[q0 : q0 + block_size], queries.device)
        target_scores = _target_scores(q, keys, targets[q0 : q0 + block_size])
        # Thresholds rounded outwards, so that comparing in dtype (half
        # the bytes of promoting every score to fp32) never narrows the
        # band.
        above = _rounded_outwards(target_scores + bound, dtype, up=True)
        below = _rounded_outwards(target_scores - bound, dtype, up=False)
        low_q = q.to(dtype)
        better = torch.zeros(len(q), dtype=torch.int32, device=q.device)
        near = torch.zeros(len(q), dtype=torch.int32, device=q.device)
        for _, scores in _low_precision_blocks(low_q, low_keys, block_size):
            better += (scores > above).sum(-1, dtype=torch.int32)
            near += (scores >= below).sum(-1, dtype=torch.int32)
        rows = slice(q0, q0 + len(q))
        ranks[rows] = better + 1
        unsure[rows] = near - better != 1
    return ranks, unsure


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
        """Score the utterances ``indices`` against their own transcripts.

        Arguments
        ---------
        indices : list of int
            Utterances of one pool (a language, or all of them).

        Returns
        -------
        dict
            ``{"R@k": ..., "count": n, "candidates": m}`` for this pool.
        """
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


def _block_topk(scores, k):
    """The ``k`` best columns of each row; ties go to the lower column.

    ``torch.topk`` picks among tied values arbitrarily, which would make the
    result depend on the block size. Here every value above the ``k``-th is
    kept and the remaining places go to the leftmost copies of the ``k``-th
    value, so the selection is the one a stable full sort would make.

    Arguments
    ---------
    scores : torch.Tensor
        ``[b, n]`` scores.
    k : int
        Columns to keep (at most ``n``).

    Returns
    -------
    values : torch.Tensor
        ``[b, k]`` best scores, descending.
    columns : torch.Tensor
        ``[b, k]`` their columns (ascending among equal scores).

    Example
    -------
    >>> _block_topk(torch.tensor([[0.5, 0.9, 0.5, 0.5]]), 2)
    (tensor([[0.9000, 0.5000]]), tensor([[1, 0]]))
    """
    values, columns = torch.topk(scores, k, dim=-1)
    kth = values[:, -1:]
    if torch.equal((scores == kth).sum(-1), (values == kth).sum(-1)):
        # Every copy of the k-th value was picked (no tie at the cut, the
        # usual case): the set is right, only the order among equal values
        # needs fixing. A third of the cost of the general case below.
        columns, by_column = columns.sort(dim=-1)
        values = values.gather(1, by_column)
        order = torch.sort(values, dim=-1, descending=True, stable=True)
        return order.values, columns.gather(1, order.indices)
    above = scores > kth
    tied = scores == kth
    missing = k - above.sum(-1, keepdim=True)
    keep = above | (tied & (tied.cumsum(-1) <= missing))
    # Exactly k kept per row; nonzero() lists them row by row, left to right.
    columns = keep.nonzero()[:, 1].view(len(scores), k)
    values = scores.gather(1, columns)
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices
    return values.gather(1, order), columns.gather(1, order)


def _blockwise_topk(
    queries, keys, k, block_size=4096, device=None, adjust=None
):
    """Running exact top-k over key blocks (see :func:`topk_search`).

    ``adjust(scores, q0, k0)``, when given, rewrites each ``[b, bk]`` block
    of cosines before selection (the margin of :func:`margin_search`).
    """
    device = _search_device(device, queries)
    keys = _keys_on(keys, device)
    k = min(int(k), len(keys))
    if k < 1:
        raise ValueError(f"top-k search needs k >= 1 and keys (k={k})")
    values = torch.empty(len(queries), k)
    indices = torch.empty(len(queries), k, dtype=torch.long)
    for q0 in range(0, len(queries), block_size):
        q = _unit(queries[q0 : q0 + block_size], device)
        best = torch.empty(len(q), 0, device=device)
        best_index = torch.empty(len(q), 0, dtype=torch.long, device=device)
        for k0, scores in _key_blocks(q, keys, block_size):
            if adjust is not None:
                scores = adjust(scores, q0, k0)
            block, columns = _block_topk(scores, min(k, scores.shape[1]))
            # Earlier blocks first: the stable sort then keeps the lower key
            # index among equal scores, as one full-matrix sort would.
            merged = torch.cat([best, block], dim=1)
            merged_index = torch.cat([best_index, columns + k0], dim=1)
            order = torch.sort(merged, dim=1, descending=True, stable=True)
            # [b, k + k'] -> [b, k]
            best = order.values[:, :k]
            best_index = merged_index.gather(1, order.indices[:, :k])
        values[q0 : q0 + block_size] = best.cpu()
        indices[q0 : q0 + block_size] = best_index.cpu()
    return values.to(queries.device), indices.to(queries.device)


# --------------------------------------------------------------------------
# Low-precision scoring, exact fp32 answers
# --------------------------------------------------------------------------

SCORE_DTYPES = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


def score_dtype(precision, device):
    """The dtype similarity blocks are scored in.

    ``"auto"`` is fp16 on a GPU (tensor cores; unit vectors never leave
    its range, and its 11-bit mantissa makes the exactness checks below
    fail eight times less often than bf16's) and fp32 elsewhere.

    Arguments
    ---------
    precision : str
        ``"auto"``, ``"fp32"``, ``"fp16"`` or ``"bf16"``.
    device : torch.device
        Where the search runs.

    Returns
    -------
    torch.dtype

    Example
    -------
    >>> score_dtype("auto", torch.device("cpu"))
    torch.float32
    """
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in SCORE_DTYPES:
        raise ValueError(
            f"precision must be 'auto' or one of {sorted(SCORE_DTYPES)}, "
            f"not {precision!r}"
        )
    return SCORE_DTYPES[precision]


def score_error_bound(dtype, dim):
    """Largest gap between a low-precision and the fp32 cosine.

    For unit vectors ``x, y`` rounded to ``dtype`` (relative error ``u``
    per component), multiplied with fp32 accumulation and the result
    rounded to ``dtype`` again:
    ``|x~ . y~ - x . y| <= (2u + u^2) |x| |y| + D 2^-24 + u``. The
    accumulation term is doubled because tensor cores may truncate
    instead of rounding while they add. Too large a bound costs only
    speed (more rows rescored in fp32), too small would cost exactness.

    Arguments
    ---------
    dtype : torch.dtype
        Score dtype.
    dim : int
        Embedding dimension ``D``.

    Returns
    -------
    float

    Example
    -------
    >>> round(score_error_bound(torch.float16, 1024), 5)
    0.00159
    """
    u = torch.finfo(dtype).eps / 2
    return 3 * u + u * u + 2 * dim * 2.0**-24


def candidate_count(k):
    """Candidates kept per query in low precision, rescored in fp32.

    Arguments
    ---------
    k : int
        Neighbours asked for.

    Returns
    -------
    int

    Example
    -------
    >>> candidate_count(10), candidate_count(50)
    (26, 100)
    """
    return max(2 * k, k + 16)


def _low_precision_unit_keys(keys, dtype, block_size):
    """Unit keys in ``dtype``, normalised once (2 GB at 10^6 x 1024)."""
    blocks = [
        F.normalize(block.float(), dim=-1).to(dtype)
        for block in keys.split(block_size)
    ]
    return torch.cat(blocks)


def _low_precision_blocks(low_queries, low_keys, block_size):
    """:func:`_key_blocks` for keys already unit and in a low dtype.

    Yields ``(k0, scores)``: ``[b, bk]`` scores in the keys' dtype.
    """
    for k0 in range(0, len(low_keys), block_size):
        # [b, D] x [D, bk] -> [b, bk] on tensor cores
        yield k0, low_queries @ low_keys[k0 : k0 + block_size].T


def _exact_candidate_scores(queries, keys, candidates, rows=512):
    """fp32 cosines of each unit query with its candidate keys.

    ``[b, D]`` queries, ``[b, c]`` key indices -> ``[b, c]``, gathered
    ``rows`` queries at a time (``[rows, c, D]`` floats in memory).
    """
    scores = torch.empty(candidates.shape, device=queries.device)
    for r0 in range(0, len(queries), rows):
        index = candidates[r0 : r0 + rows]
        # [r, c, D]
        gathered = F.normalize(keys[index].float(), dim=-1)
        scores[r0 : r0 + rows] = torch.einsum(
            "rd,rcd->rc", queries[r0 : r0 + rows], gathered
        )
    return scores


def _stable_top(scores, indices, k):
    """The ``k`` best of ``[b, c]`` candidates; ties to the lower index."""
    indices, by_index = indices.sort(dim=1)
    scores = scores.gather(1, by_index)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    order = order[:, :k]
    return scores.gather(1, order), indices.gather(1, order)


def _rescored_topk(queries, keys, k, block_size, device, dtype):
    """Top-k scored in ``dtype``, answered exactly in fp32.

    Each query keeps its ``candidate_count(k)`` best keys by the
    low-precision score (a running ``torch.topk`` merge, all on the
    device, no host synchronisation inside the scan), which are then
    rescored in fp32. A key left out scores at most ``floor + bound``
    exactly, ``floor`` being the lowest kept low-precision score; so where
    the ``k``-th rescored value is above that, the answer is the exact
    one. The other rows (near-ties at the cut, or many equal keys) are
    searched again in fp32, all together after the scan: one host
    synchronisation per call.
    """
    keys = _keys_on(keys, device)
    k = min(int(k), len(keys))
    if k < 1:
        raise ValueError(f"top-k search needs k >= 1 and keys (k={k})")
    kept = min(len(keys), candidate_count(k))
    bound = score_error_bound(dtype, keys.shape[1])
    low_keys = _low_precision_unit_keys(keys, dtype, block_size)
    values = torch.empty(len(queries), k, device=device)
    indices = torch.empty(len(queries), k, dtype=torch.long, device=device)
    exact = torch.empty(len(queries), dtype=torch.bool, device=device)
    for q0 in range(0, len(queries), block_size):
        q = _unit(queries[q0 : q0 + block_size], device)
        low_q = q.to(dtype)
        best = best_index = None
        for k0, scores in _low_precision_blocks(low_q, low_keys, block_size):
            top, columns = scores.topk(min(kept, scores.shape[1]), dim=1)
            columns = columns + k0
            if best is not None:
                top = torch.cat([best, top], dim=1)
                columns = torch.cat([best_index, columns], dim=1)
                top, position = top.topk(min(kept, top.shape[1]), dim=1)
                columns = columns.gather(1, position)
            best, best_index = top, columns
        rescored = _exact_candidate_scores(q, keys, best_index)
        top, top_index = _stable_top(rescored, best_index, k)
        rows = slice(q0, q0 + len(q))
        values[rows], indices[rows] = top, top_index
        floor = best.float().min(dim=1).values
        exact[rows] = (top[:, -1] > floor + bound) | (kept == len(keys))
    redo = (~exact).nonzero().flatten()
    if len(redo):
        again, again_index = _blockwise_topk(
            queries[redo.to(queries.device)], keys, k, block_size, device
        )
        values[redo], indices[redo] = again.to(device), again_index.to(device)
    return values, indices


def topk_search(
    queries,
    keys,
    k,
    block_size=4096,
    device=None,
    backend="torch",
    precision="auto",
):
    """Exact ``k`` nearest keys (cosine) of every query, blockwise.

    The ``[Nq, Nk]`` similarity matrix is never built: each block of
    ``block_size`` queries keeps a running top-k that is merged with the top
    of every key block, so 1M x 1M searches run in ``O(Nk D + block^2 +
    block k)`` memory. Query blocks move to ``device`` one at a time; the
    keys are moved once.

    Arguments
    ---------
    queries : torch.Tensor
        ``[Nq, D]`` embeddings (normalised here).
    keys : torch.Tensor
        ``[Nk, D]`` embeddings (normalised here).
    k : int
        Neighbours per query (capped at ``Nk``).
    block_size : int
        Queries and keys compared at once.
    device : str, optional
        Where to compute; default the GPU when available, else the CPU.
    backend : str
        ``"torch"`` (exact, ties to the lower key index) or ``"faiss"``
        (exact flat inner-product index, :func:`faiss_topk`; its order
        among tied scores is FAISS's).
    precision : str
        ``"torch"`` backend: the dtype keys are scored in, ``"fp16"``,
        ``"bf16"`` or ``"fp32"``; ``"auto"`` is fp16 on a GPU, fp32
        elsewhere (see :func:`score_dtype`). In fp16 or bf16 the best
        ``candidate_count(k)`` keys of each query are rescored in fp32 and
        any query whose answer the rounding could have changed is searched
        again in fp32, so every precision returns the fp32 answer.

    Returns
    -------
    scores : torch.Tensor
        ``[Nq, k]`` cosines, descending, on the queries' device.
    indices : torch.Tensor
        ``[Nq, k]`` key indices.

    Example
    -------
    >>> keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> scores, indices = topk_search(torch.tensor([[1.0, 0.2]]), keys, 2)
    >>> indices
    tensor([[0, 2]])
    """
    if backend == "faiss":
        return faiss_topk(queries, keys, k)
    if backend != "torch":
        raise ValueError(f"backend must be 'torch' or 'faiss', not {backend!r}")
    device = _search_device(device, queries)
    dtype = score_dtype(precision, device)
    if dtype == torch.float32:
        return _blockwise_topk(queries, keys, k, block_size, device)
    values, indices = _rescored_topk(
        queries, keys, k, block_size, device, dtype
    )
    return values.to(queries.device), indices.to(queries.device)


def faiss_topk(queries, keys, k):
    """Exact top-k cosine search with a FAISS flat inner-product index.

    Arguments
    ---------
    queries : torch.Tensor
        ``[Nq, D]`` embeddings.
    keys : torch.Tensor
        ``[Nk, D]`` embeddings.
    k : int
        Neighbours per query (capped at ``Nk``).

    Returns
    -------
    scores : torch.Tensor
        ``[Nq, k]`` cosines, descending.
    indices : torch.Tensor
        ``[Nq, k]`` key indices.
    """
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "backend='faiss' needs the faiss-cpu package "
            "(pip install faiss-cpu); backend='torch' needs nothing"
        ) from error
    keys = F.normalize(keys.detach().float().cpu(), dim=-1).numpy()
    queries = F.normalize(queries.detach().float().cpu(), dim=-1).numpy()
    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(keys)
    scores, indices = index.search(queries, min(int(k), len(keys)))
    return torch.from_numpy(scores), torch.from_numpy(indices).long()


def _group_ids(query_groups, key_groups):
    """Integer ids of the group labels; every query needs a key group."""
    ids = {}
    key_ids = torch.tensor([ids.setdefault(g, len(ids)) for g in key_groups])
    missing = [g for g in query_groups if g not in ids]
    if missing:
        raise ValueError(
            f"{len(missing)} queries have no correct key (e.g. group "
            f"{missing[0]!r}); drop them before ranking"
        )
    query_ids = torch.tensor([ids[g] for g in query_groups])
    return query_ids, key_ids


def grouped_ranks(
    queries, keys, query_groups, key_groups, block_size=4096, device=None
):
    """1-based rank of the best correct key when several keys are correct.

    A key is correct for a query when their group labels are equal (e.g.
    the sentence id shared by all recordings and translations of a
    sentence). The rank is one plus the number of *incorrect* keys scoring
    at least as high as the best correct one (ties count against the
    query); with one correct key per query it is :func:`target_ranks`.

    Arguments
    ---------
    queries : torch.Tensor
        ``[Nq, D]`` embeddings.
    keys : torch.Tensor
        ``[Nk, D]`` embeddings.
    query_groups : list
        Group label of each query (hashable); each must occur in
        ``key_groups``.
    key_groups : list
        Group label of each key.
    block_size : int
        Queries and keys compared at once.
    device : str, optional
        Where to compute; default the GPU when available, else the CPU.

    Returns
    -------
    torch.Tensor
        ``[Nq]`` long ranks on the CPU.

    Example
    -------
    >>> keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> queries = torch.tensor([[0.0, 1.0], [0.1, 1.0]])
    >>> grouped_ranks(queries, keys, ["a", "b"], ["a", "b", "a"])
    tensor([2, 1])
    """
    device = _search_device(device, queries)
    query_ids, key_ids = _group_ids(query_groups, key_groups)
    key_ids = key_ids.to(device)
    keys = _keys_on(keys, device)
    ranks = torch.empty(len(queries), dtype=torch.long)
    for q0 in range(0, len(queries), block_size):
        q = _unit(queries[q0 : q0 + block_size], device)
        ids = query_ids[q0 : q0 + block_size].to(device)
        best = torch.full((len(q),), -float("inf"), device=device)
        # Pass 1: best correct score; pass 2: incorrect keys at least as
        # good. Two matmuls per block instead of a [Nq, Nk] matrix.
        for k0, scores in _key_blocks(q, keys, block_size):
            correct = ids[:, None] == key_ids[None, k0 : k0 + block_size]
            masked = scores.masked_fill(~correct, -float("inf"))
            best = torch.maximum(best, masked.max(-1).values)
        better = torch.zeros(len(q), dtype=torch.long, device=device)
        for k0, scores in _key_blocks(q, keys, block_size):
            correct = ids[:, None] == key_ids[None, k0 : k0 + block_size]
            ahead = (scores >= best[:, None] - TIE_TOLERANCE) & ~correct
            better += ahead.sum(-1)
        ranks[q0 : q0 + block_size] = (better + 1).cpu()
    return ranks


def knn_mean_similarity(
    queries, keys, k=4, block_size=4096, device=None, backend="torch"
):
    """Mean cosine of each query to its ``k`` nearest keys.

    The neighbourhood density that the xSIM ratio margin divides by.

    Arguments
    ---------
    queries : torch.Tensor
        ``[Nq, D]`` embeddings.
    keys : torch.Tensor
        ``[Nk, D]`` embeddings.
    k : int
        Neighbours (capped at ``Nk``).
    block_size : int
        Blockwise search size.
    device : str, optional
        Where to compute.
    backend : str
        ``"torch"`` or ``"faiss"`` (see :func:`topk_search`).

    Returns
    -------
    torch.Tensor
        ``[Nq]`` float32 means.

    Example
    -------
    >>> keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> knn_mean_similarity(torch.tensor([[1.0, 0.0]]), keys, k=2)
    tensor([0.5000])
    """
    scores, _ = topk_search(queries, keys, k, block_size, device, backend)
    return scores.mean(-1)


def margin_search(
    sources, targets, k=4, block_size=4096, device=None, backend="torch"
):
    """Best target of each source by LASER's ratio margin.

    ``margin(x, y) = cos(x, y) / (mean_kNN(x) / 2 + mean_kNN(y) / 2)``,
    where ``mean_kNN(x)`` averages the cosines of ``x`` to its ``k``
    nearest targets and ``mean_kNN(y)`` those of ``y`` to its ``k`` nearest
    sources (the ``sum / 2k`` terms of Artetxe & Schwenk, 2019). The argmax
    is exact and blockwise; ties go to the lower target index.

    Arguments
    ---------
    sources : torch.Tensor
        ``[Ns, D]`` embeddings.
    targets : torch.Tensor
        ``[Nt, D]`` embeddings.
    k : int
        Neighbourhood size (4 in LASER's xSIM).
    block_size : int
        Blockwise search size.
    device : str, optional
        Where to compute.
    backend : str
        Search backend of the two neighbourhoods (the argmax is exact
        torch).

    Returns
    -------
    margins : torch.Tensor
        ``[Ns]`` best margin of each source.
    indices : torch.Tensor
        ``[Ns]`` index of the chosen target.

    Example
    -------
    >>> targets = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    >>> margin_search(torch.tensor([[0.9, 0.3]]), targets, k=2)[1]
    tensor([0])
    """
    device = _search_device(device, sources)
    source_density = knn_mean_similarity(
        sources, targets, k, block_size, device, backend
    ).to(device)
    target_density = knn_mean_similarity(
        targets, sources, k, block_size, device, backend
    ).to(device)

    def ratio_margin(scores, q0, k0):
        # [b, 1] + [1, bk] -> [b, bk] denominators
        """Turn a block of cosines into ratio margins.

        Arguments
        ---------
        scores : torch.Tensor
            Cosines of a block of sources to a block of targets, [b, bk].
        q0 : int
            Index of the block's first source.
        k0 : int
            Index of the block's first target.

        Returns
        -------
        torch.Tensor
            The block's margins, [b, bk].
        """
        x = source_density[q0 : q0 + scores.shape[0], None]
        y = target_density[None, k0 : k0 + scores.shape[1]]
        return scores / ((x + y) / 2)

    margins, indices = _blockwise_topk(
        sources, targets, 1, block_size, device, adjust=ratio_margin
    )
    return margins[:, 0], indices[:, 0]


def xsim_error(
    sources,
    targets,
    source_groups=None,
    target_groups=None,
    k=4,
    block_size=4096,
    device=None,
    backend="torch",
):
    """LASER's xSIM: error rate of margin-based retrieval.

    A source is an error when the target with the best ratio margin
    (:func:`margin_search`) is not a correct one. Without groups, source
    ``i`` and target ``i`` are translations (LASER's aligned sets).

    Arguments
    ---------
    sources : torch.Tensor
        ``[Ns, D]`` embeddings.
    targets : torch.Tensor
        ``[Nt, D]`` embeddings.
    source_groups : list, optional
        Group label of each source (see :func:`grouped_ranks`).
    target_groups : list, optional
        Group label of each target.
    k : int
        Neighbourhood size of the margin (4 in LASER).
    block_size : int
        Blockwise search size.
    device : str, optional
        Where to compute.
    backend : str
        Search backend of the neighbourhoods.

    Returns
    -------
    float
        Error rate in [0, 1].

    Example
    -------
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> xsim_error(x, torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    0.0
    """
    if source_groups is None or target_groups is None:
        if len(sources) != len(targets):
            raise ValueError(
                "without groups, sources and targets must be aligned "
                f"({len(sources)} != {len(targets)})"
            )
        source_groups = target_groups = list(range(len(sources)))
    if len(sources) == 0:
        return float("nan")
    source_ids, target_ids = _group_ids(source_groups, target_groups)
    _, chosen = margin_search(sources, targets, k, block_size, device, backend)
    return (target_ids[chosen.cpu()] != source_ids).float().mean().item()


def retrieval_metrics(
    queries,
    keys,
    query_groups,
    key_groups,
    ks=(1, 5, 10),
    xsim_k=4,
    block_size=4096,
    device=None,
    backend="torch",
):
    """Recall@k and xSIM error of one retrieval direction.

    Arguments
    ---------
    queries : torch.Tensor
        ``[Nq, D]`` embeddings.
    keys : torch.Tensor
        ``[Nk, D]`` candidate embeddings.
    query_groups : list
        Group label of each query (its correct keys share it).
    key_groups : list
        Group label of each key.
    ks : tuple of int
        Recall cut-offs.
    xsim_k : int
        Neighbourhood size of the xSIM margin.
    block_size : int
        Blockwise search size.
    device : str, optional
        Where to compute.
    backend : str
        Search backend of the xSIM neighbourhoods.

    Returns
    -------
    dict
        ``{"R@k": ..., "xsim": error, "count": Nq, "candidates": Nk,
        "chance@1": ...}``, recalls and errors in [0, 1]; the chance level
        is the mean over queries of (correct keys / Nk).

    Example
    -------
    >>> keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> out = retrieval_metrics(keys, keys, ["a", "b"], ["a", "b"], ks=(1,))
    >>> out["R@1"], out["xsim"], out["candidates"]
    (1.0, 0.0, 2)
    """
    ranks = grouped_ranks(
        queries, keys, query_groups, key_groups, block_size, device
    )
    out = recall_at_k(ranks, ks)
    out["xsim"] = xsim_error(
        queries,
        keys,
        query_groups,
        key_groups,
        xsim_k,
        block_size,
        device,
        backend,
    )
    out.update(count=len(queries), candidates=len(keys))
    # Random ranking finds one of g correct keys among n first with
    # probability g / n.
    correct = Counter(key_groups)
    out["chance@1"] = sum(correct[g] for g in query_groups) / (
        len(query_groups) * len(key_groups)
    )
    return out


def _macro_mean(rows):
    """Macro average of the numeric fields shared by ``rows``."""
    rows = list(rows)
    if not rows:
        return {}
    keys = [k for k in rows[0] if k.startswith(("R@", "xsim", "chance"))]
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    mean.update(
        count=sum(r["count"] for r in rows),
        candidates=sum(r["candidates"] for r in rows),
    )
    return mean


# Codes of one language in Common Voice and FLEURS that share no prefix:
# Mandarin (zh-CN/zh-TW, cmn_hans_cn) and Cantonese (zh-HK/yue,
# yue_hant_hk).
_LANGUAGE_ALIASES = {"zh-cn": "cmn", "zh-tw": "cmn", "zh-hk": "yue"}


def base_language(code):
    """The language of a locale code, comparable across datasets.

    Arguments
    ---------
    code : str
        A Common Voice locale (``sv-SE``, ``zh-CN``), a FLEURS code
        (``sv_se``, ``cmn_hans_cn``) or a bare language (``sv``).

    Returns
    -------
    str
        The lower-case language part (``sv``; ``cmn`` for Mandarin and
        ``yue`` for Cantonese, whichever dataset named them).

    Example
    -------
    >>> [base_language(c) for c in ("sv-SE", "sv_se", "zh-CN", "cmn_hans_cn")]
    ['sv', 'sv', 'cmn', 'cmn']
    """
    code = str(code).lower().replace("_", "-")
    return _LANGUAGE_ALIASES.get(code, code.split("-")[0])


def zero_shot_split(table, training_languages):
    """Macro means of a retrieval table over seen and zero-shot languages.

    A language is seen when a training language has its
    :func:`base_language`; a language pair (``"A->B"``) is seen when both
    are.

    Arguments
    ---------
    table : dict
        ``{lang or "A->B": row, "mean": row}`` (a direction of
        :func:`multilingual_retrieval`).
    training_languages : list of str
        The languages the model was trained on.

    Returns
    -------
    dict
        ``{"seen": [names], "zero_shot": [names], "mean (seen)": row,
        "mean (zero-shot)": row}``; a mean is absent when its group is
        empty.

    Example
    -------
    >>> rows = {"en_us": {"R@1": 0.9, "count": 1, "candidates": 1},
    ...         "hr_hr": {"R@1": 0.5, "count": 1, "candidates": 1}}
    >>> split = zero_shot_split(rows, ["en", "fr"])
    >>> split["zero_shot"], split["mean (zero-shot)"]["R@1"]
    (['hr_hr'], 0.5)
    """
    known = {base_language(lang) for lang in training_languages}
    groups = {"seen": [], "zero_shot": []}
    for name in table:
        if name == "mean":
            continue
        seen = all(base_language(lang) in known for lang in name.split("->"))
        groups["seen" if seen else "zero_shot"].append(name)
    out = dict(groups)
    for group, label in (
        ("seen", "mean (seen)"),
        ("zero_shot", "mean (zero-shot)"),
    ):
        if groups[group]:
            out[label] = _macro_mean(table[name] for name in groups[group])
    return out


def multilingual_retrieval(
    speech,
    text_keys,
    transcripts,
    languages,
    pair_ids=None,
    ks=(1, 5, 10),
    xsim_k=4,
    block_size=4096,
    device=None,
    backend="torch",
):
    """Speech-text and cross-lingual speech-speech retrieval metrics.

    * speech -> text, per language: each utterance against the distinct
      transcripts of its language;
    * text -> speech, per language: each distinct transcript against the
      utterances of its language (any recording of it is correct);
    * speech -> speech, per ordered language pair ``A -> B`` (A != B):
      each utterance of A whose ``pair_id`` occurs in B against all
      utterances of B; recordings of the same ``pair_id`` (the same
      sentence, translated) are correct.

    Each entry holds Recall@k, the xSIM margin error (:func:`xsim_error`),
    the query and candidate counts and the chance level of R@1; ``"mean"``
    is the macro average over languages (pairs).

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
    pair_ids : list, optional
        Sentence id shared by translations (``None`` or ``""`` for
        utterances without one); without any, speech -> speech is
        ``None``.
    ks : tuple of int
        Recall cut-offs.
    xsim_k : int
        Neighbourhood of the xSIM margin.
    block_size : int
        Blockwise search size.
    device : str, optional
        Where to compute (default: GPU when available).
    backend : str
        ``"torch"`` or ``"faiss"`` for the xSIM neighbourhoods.

    Returns
    -------
    dict
        ``{"speech_to_text": {lang: row, "mean": row}, "text_to_speech":
        {...}, "speech_to_speech": {"A->B": row, "mean": row} or None}``.

    Example
    -------
    >>> texts = ["hi", "bye", "salut", "ciao"]
    >>> vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    >>> keys = dict(zip(texts, vectors))
    >>> out = multilingual_retrieval(
    ...     vectors, keys, texts, ["en", "en", "fr", "fr"], [1, 2, 1, 2], (1,)
    ... )
    >>> out["speech_to_text"]["en"]["R@1"]
    1.0
    >>> out["speech_to_speech"]["en->fr"]["R@1"]
    1.0
    """
    options = {
        "ks": ks,
        "xsim_k": xsim_k,
        "block_size": block_size,
        "device": device,
        "backend": backend,
    }
    by_language = defaultdict(list)
    for i, language in enumerate(languages):
        by_language[language].append(i)
    s2t, t2s = {}, {}
    for language, indices in sorted(by_language.items()):
        texts = [transcripts[i] for i in indices]
        candidates = sorted(set(texts))
        keys = torch.stack([text_keys[t] for t in candidates])
        s2t[language] = retrieval_metrics(
            speech[indices], keys, texts, candidates, **options
        )
        t2s[language] = retrieval_metrics(
            keys, speech[indices], candidates, texts, **options
        )
    s2t["mean"] = _macro_mean(s2t.values())
    t2s["mean"] = _macro_mean(t2s.values())
    out = {"speech_to_text": s2t, "text_to_speech": t2s}

    s2s = {}
    if pair_ids is not None:
        for source, source_indices in sorted(by_language.items()):
            for target, target_indices in sorted(by_language.items()):
                if source == target:
                    continue
                target_pairs = [pair_ids[i] for i in target_indices]
                present = {p for p in target_pairs if p not in (None, "")}
                queries = [i for i in source_indices if pair_ids[i] in present]
                if not queries:
                    continue
                s2s[f"{source}->{target}"] = retrieval_metrics(
                    speech[queries],
                    speech[target_indices],
                    [pair_ids[i] for i in queries],
                    target_pairs,
                    **options,
                )
    if s2s:
        s2s["mean"] = _macro_mean(s2s.values())
    out["speech_to_speech"] = s2s or None
    return out
