"""Query latency of exact search against FAISS IVF, and where they cross.

The vectors are a mixture of Gaussian clusters on the unit sphere
(:func:`mixture`); uniform random vectors have no neighbourhood structure
and make IVF look worse than on real embeddings.

Authors
 * speechbrain-sense developers 2026
"""

import math
import time

import numpy as np
import torch
from measurement import Clock


def latency_ms(seconds):
    """Median and 95th percentile of single-query times, in ms.

    Arguments
    ---------
    seconds : list of float
        One time per query.

    Returns
    -------
    tuple
        ``(median_ms, p95_ms)``.

    Example
    -------
    >>> latency_ms([0.001 * i for i in range(1, 101)])
    (50.5, 95.05)
    """
    values = np.asarray(seconds) * 1000
    return float(np.median(values)), float(np.percentile(values, 95))


def recall_at_k(found, truth):
    """Mean share of each query's true top-k that a search returned.

    Arguments
    ---------
    found : numpy.ndarray
        ``[Q, k]`` rows returned (``-1`` for none).
    truth : numpy.ndarray
        ``[Q, k]`` exact top-k rows.

    Returns
    -------
    float

    Example
    -------
    >>> recall_at_k(np.array([[1, 2], [3, -1]]), np.array([[2, 1], [3, 4]]))
    0.75
    """
    hits = [len(set(f) & set(t)) for f, t in zip(found, truth)]
    return sum(hits) / truth.size


#: Synthetic embedding workloads (:func:`mixture`): Gaussian clusters
#: with random centres in all D dimensions, which never overlap; or
#: clusters in a random 64-d subspace as wide as their centres' spacing,
#: plus isotropic noise, which overlap as topics do.
WORKLOADS = {
    "separated": {"subspace": None, "isotropic": 0.0},
    "overlapping": {"subspace": 64, "isotropic": 0.5},
}


def mixture(rng, clusters, dim, workload="overlapping"):
    """A mixture of Gaussian clusters on the unit sphere.

    Each cluster has a random unit centre and isotropic noise of standard
    deviation ``scale / sqrt(d)`` per dimension of the space it lives in
    (``scale`` uniform in 0.7-1.3: some topics are tighter than others).
    ``"separated"``: that space is all ``D`` dimensions, where random
    centres are nearly orthogonal, so every row's neighbours are in its
    own cluster (a row lies at cosine ~0.7 to its centre, ~0.5 to a
    sibling) and IVF cells follow clusters: the easy case.
    ``"overlapping"``: the clusters live in a random ``d = 64``
    dimensional subspace (embeddings of real models have a low effective
    rank) with noise as large as the centres, so neighbourhoods straddle
    clusters; the rows are mapped to ``D`` dimensions, normalised, and
    get isotropic noise of norm 0.5 (top-1 cosine ~0.5).

    Arguments
    ---------
    rng : numpy.random.Generator
        Source of the centres.
    clusters : int
        Number of clusters ``C``.
    dim : int
        Dimension ``D``.
    workload : str
        A key of :data:`WORKLOADS`.

    Returns
    -------
    callable
        ``draw(rng, count)``: ``[count, D]`` float32 unit rows.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = mixture(rng, 4, 256)(rng, 8)
    >>> x.shape, bool(np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5))
    ((8, 256), True)
    """
    facts = WORKLOADS[workload]
    space = facts["subspace"] or dim
    centres = rng.standard_normal((clusters, space), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    scales = rng.uniform(0.7, 1.3, clusters).astype(np.float32)
    projection = None
    if facts["subspace"]:
        projection = rng.standard_normal((space, dim), dtype=np.float32)
        projection /= math.sqrt(space)

    def unit(rows):
        """Rows scaled to unit length."""
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def draw(rng, count):
        """``count`` rows drawn from the mixture."""
        which = rng.integers(0, clusters, count)
        noise = rng.standard_normal((count, space), dtype=np.float32)
        sigma = scales[which] / math.sqrt(space)
        rows = centres[which] + sigma[:, None] * noise
        if projection is None:
            return unit(rows)
        rows = unit(rows @ projection)  # [count, d] -> [count, D]
        noise = rng.standard_normal((count, dim), dtype=np.float32)
        return unit(rows + facts["isotropic"] / math.sqrt(dim) * noise)

    return draw


def write_matrix(
    path, count, dim, clusters, queries, workload, seed=0, chunk=65536
):
    """Writes ``[count, dim]`` float16 clustered rows as a ``.npy``.

    Written in chunks through ``np.lib.format.open_memmap`` (10^6 x 1024
    is 2 GB in float16, 4 GB while drawn in float32).

    Arguments
    ---------
    path : Path
        The ``.npy`` file.
    count, dim : int
        Matrix shape.
    clusters : int
        Mixture components.
    queries : int
        Fresh draws from the same mixture to return as queries.
    workload : str
        A key of :data:`WORKLOADS`.
    seed : int
        Seed of centres and rows.
    chunk : int
        Rows drawn at a time.

    Returns
    -------
    numpy.ndarray
        ``[queries, dim]`` float32 unit queries.
    """
    rng = np.random.default_rng(seed)
    draw = mixture(rng, clusters, dim, workload)
    matrix = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float16, shape=(count, dim)
    )
    for start in range(0, count, chunk):
        rows = min(chunk, count - start)
        matrix[start : start + rows] = draw(rng, rows)
    matrix.flush()
    del matrix
    return draw(rng, queries)


def timed_queries(search, queries, budget_s, at_least):
    """Times ``search`` on queries one at a time, within a time budget.

    Arguments
    ---------
    search : callable
        ``search(query [1, D]) -> rows [1, k]``.
    queries : torch.Tensor
        ``[Q, D]`` queries.
    budget_s : float
        Stop after this many seconds (once ``at_least`` are timed).
    at_least : int
        Queries timed whatever the budget.

    Returns
    -------
    tuple
        ``(seconds per query, rows [n, k])`` for the ``n`` queries timed.
    """
    search(queries[:1])  # first call: lazy set-up, page faults
    times, rows = [], []
    began = time.perf_counter()
    for i in range(len(queries)):
        start = time.perf_counter()
        rows.append(search(queries[i : i + 1])[0])
        times.append(time.perf_counter() - start)
        if i + 1 >= at_least and time.perf_counter() - began > budget_s:
            break
    return times, np.stack(rows)


def measure_queries(size, options, folder):
    """Exact, FAISS IVF and flat-fp16 single-query latency at one size.

    Arguments
    ---------
    size : int
        Passages ``N``.
    options : argparse.Namespace
        Benchmark options.
    folder : Path
        Where the matrix is written (and deleted after).

    Returns
    -------
    list of dict
        One row per search: ``search``, ``n_timed``, ``median_ms``,
        ``p95_ms``, ``recall``, ``build_s``, ``nprobe``, ``nlist``.
    """
    import faiss

    from speechbrain_sense.search.query import build_faiss_index, search_matrix

    path = folder / f"matrix-{size}.npy"
    # A fixed cluster count would leave 5 rows per cluster at 10^4, whose
    # top-10 is then mostly noise; real archives grow in topics too.
    clusters = max(10, min(options.clusters, size // options.cluster_size))
    with Clock() as made:
        queries = write_matrix(
            path, size, options.dim, clusters, 100, options.workload
        )
    queries = torch.from_numpy(queries[: options.queries])
    matrix = np.load(path, mmap_mode="r")  # as SearchIndex.matrix() maps it
    k = 10

    def exact(query):
        """One exact search, as a query runs it."""
        return search_matrix(query, matrix, k, backend="exact")[1]

    truth = exact(queries)  # all queries in one pass: the reference answer
    times, rows = timed_queries(
        exact, queries, options.exact_budget_s, options.min_timed
    )
    med, p95 = latency_ms(times)
    out = [
        {
            "size": size,
            "search": "exact (search_matrix, memmap fp16)",
            "n_timed": len(times),
            "median_ms": med,
            "p95_ms": p95,
            "recall": recall_at_k(rows, truth[: len(rows)]),
            "generate_s": made.wall,
            "clusters": clusters,
        }
    ]

    with Clock() as built:
        ivf = build_faiss_index(matrix)
    default = ivf.nprobe
    sweep = [int(n) for n in options.nprobe_sweep.split(",") if n]
    for nprobe in [default] + [n for n in sweep if n != default]:
        if nprobe > ivf.nlist:
            continue
        ivf.nprobe = nprobe

        def approximate(query):
            """One FAISS search at this ``nprobe``."""
            return search_matrix(query, matrix, k, "faiss", ivf)[1]

        times, rows = timed_queries(approximate, queries, 60.0, len(queries))
        med, p95 = latency_ms(times)
        out.append(
            {
                "size": size,
                "search": "FAISS IVF (build_faiss_index)"
                + ("" if nprobe == default else ", nprobe swept"),
                "n_timed": len(times),
                "median_ms": med,
                "p95_ms": p95,
                "recall": recall_at_k(rows, truth),
                "build_s": built.wall,
                "nprobe": nprobe,
                "nlist": ivf.nlist,
                "default": nprobe == default,
            }
        )
    ivf = None  # frees its 4 GB at 10^6 before the next index

    if options.flat_reference:
        with Clock() as built:
            flat = faiss.IndexScalarQuantizer(
                options.dim,
                faiss.ScalarQuantizer.QT_fp16,
                faiss.METRIC_INNER_PRODUCT,
            )
            for start in range(0, size, 65536):
                flat.add(np.asarray(matrix[start : start + 65536], np.float32))

        def scan(query):
            """One FAISS flat float16 scan (the reference)."""
            return flat.search(query.numpy(), k)[1]

        times, rows = timed_queries(scan, queries, 60.0, len(queries))
        med, p95 = latency_ms(times)
        out.append(
            {
                "size": size,
                "search": "reference: FAISS flat fp16 scan (in RAM)",
                "n_timed": len(times),
                "median_ms": med,
                "p95_ms": p95,
                "recall": recall_at_k(rows, truth),
                "build_s": built.wall,
            }
        )
        flat = None
    matrix = None  # unmaps the file before it is deleted
    path.unlink()
    return out


def crossover(points, limit_ms):
    """Smallest size at which latency reaches ``limit_ms``, interpolated.

    Exact search costs ``a + b N``: between two measured sizes the
    crossing is interpolated linearly; below the smallest, latency is
    taken as proportional to ``N``.

    Arguments
    ---------
    points : list of (int, float)
        ``(N, median_ms)``, increasing ``N``.
    limit_ms : float
        The latency bound.

    Returns
    -------
    float or None
        ``N`` at the bound; None when no measured size reaches it.

    Example
    -------
    >>> crossover([(10_000, 50.0), (100_000, 500.0)], 100.0)
    20000.0
    >>> crossover([(10_000, 200.0)], 100.0), crossover([(10, 1.0)], 100.0)
    (5000.0, None)
    """
    previous = (0, 0.0)
    for size, ms in points:
        if ms >= limit_ms:
            (n0, t0), (n1, t1) = previous, (size, ms)
            return n0 + (limit_ms - t0) * (n1 - n0) / (t1 - t0)
        previous = (size, ms)
    return None


def round_size(size):
    """A size rounded down to one significant digit.

    Example
    -------
    >>> round_size(23_456), round_size(180_000)
    (20000, 100000)
    """
    scale = 10 ** int(math.floor(math.log10(size)))
    return int(size // scale * scale)


def recommended_faiss_min(rows, limit_ms, min_recall):
    """The size from which ``backend="auto"`` should use FAISS.

    The smallest ``N`` at which exact single-query latency reaches
    ``limit_ms`` (:func:`crossover`), provided the default IVF at the
    next measured size is at least ``min_recall`` and faster than exact;
    otherwise the smallest measured size where it is both.

    Arguments
    ---------
    rows : list of dict
        :func:`measure_queries`' rows, every size.
    limit_ms : float
        Latency bound for exact search.
    min_recall : float
        Recall@10 FAISS must reach.

    Returns
    -------
    tuple
        ``(N or None, reason)``.
    """
    exact = [
        (r["size"], r["median_ms"]) for r in rows if r["search"][:5] == "exact"
    ]
    ivf = {r["size"]: r for r in rows if r.get("default")}
    fast = {
        size: ivf[size]["recall"] >= min_recall and ivf[size]["median_ms"] < ms
        for size, ms in exact
        if size in ivf
    }
    at = crossover(exact, limit_ms)
    if at is not None:
        above = [size for size in sorted(fast) if size >= at]
        if above and fast[above[0]]:
            return round_size(at), (
                f"exact reaches {limit_ms:g} ms at about {at:,.0f} passages; "
                f"FAISS at {above[0]:,} is faster at recall@10 "
                f"{ivf[above[0]]['recall']:.3f}"
            )
    if at is None:
        # Exact answers are worth keeping while they are fast enough,
        # however much faster FAISS is.
        return None, (
            f"exact stays under {limit_ms:g} ms up to {exact[-1][0]:,} "
            "passages: keep it there"
        )
    good = [size for size in sorted(fast) if fast[size] and size >= at]
    if good:
        return good[0], (
            f"exact reaches {limit_ms:g} ms at about {at:,.0f} passages; "
            f"{good[0]:,} is the smallest larger size where FAISS is "
            f"faster at recall@10 >= {min_recall}"
        )
    return None, "no measured size where FAISS is both faster and accurate"
