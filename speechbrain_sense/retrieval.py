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
    keys = _keys_on(keys, queries.device)
    targets = targets.to(queries.device)
    ranks = torch.empty(len(queries), dtype=torch.long, device=queries.device)
    for q0 in range(0, len(queries), block_size):
        q = _unit(queries[q0 : q0 + block_size], queries.device)
        t = targets[q0 : q0 + block_size]
        # [b] similarity of each query with its own target
        target_keys = F.normalize(keys[t].float(), dim=-1)
        target_scores = (q * target_keys).sum(-1, keepdim=True)
        better = torch.zeros(len(q), dtype=torch.long, device=q.device)
        for _, scores in _key_blocks(q, keys, block_size):
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


def topk_search(
    queries, keys, k, block_size=4096, device=None, backend="torch"
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
    return _blockwise_topk(queries, keys, k, block_size, device)


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
