"""Language re-balancing and duration-based dynamic batching for SENSE.

SENSE trains on a multilingual corpus whose languages are very unevenly
represented. Following SAMU-XLSR, utterances are drawn with per-language
weights that flatten the language distribution (``language_ratios``), and the
drawn utterances are packed into batches of bounded *padded* audio duration
(``LanguageBalancedDynamicBatchSampler``), which is what bounds GPU memory for
a speech encoder.

The sampler is a plain ``torch.utils.data.Sampler`` that yields lists of
dataset indices. It shards itself across DDP ranks, so it must be given to a
DataLoader that the recipe builds itself, e.g.::

    sampler = LanguageBalancedDynamicBatchSampler(durations, weights, 200.0)
    loader = make_dataloader(dataset, batch_sampler=sampler)
    brain.fit(epoch_counter, loader, valid_loader)  # a DataLoader: not wrapped

and ``sampler.set_epoch(epoch)`` must be called at the start of each training
epoch (e.g. in ``Brain.on_stage_start``). Do not pass the dataset plus
``batch_sampler`` in ``train_loader_kwargs`` to ``Brain.fit``: under DDP
SpeechBrain would wrap the sampler in ``DistributedSamplerWrapper`` and shard
the already-sharded batches a second time.

Authors
 * speechbrain-sense contributors
"""

from __future__ import annotations

import heapq
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

__all__ = [
    "LanguageBalancedDynamicBatchSampler",
    "language_ratios",
    "load_language_ratios",
    "pack_by_duration",
    "save_language_ratios",
    "utterance_weights",
]


# --------------------------------------------------------------------------
# Language re-balancing (SAMU-XLSR)
# --------------------------------------------------------------------------


def _language_distribution(
    counts: Mapping[str, int], alpha: float
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Returns (p_l, q_l, r_l) after validating ``counts`` and ``alpha``."""
    if not counts:
        raise ValueError("counts is empty: need at least one language")
    bad = {
        lang: n
        for lang, n in counts.items()
        if isinstance(n, bool) or not math.isfinite(n) or n <= 0
    }
    if bad:
        raise ValueError(
            "every language needs a positive, finite utterance count; "
            f"got {bad}"
        )
    try:
        valid_alpha = 0.0 < float(alpha) <= 1.0
    except (TypeError, ValueError):
        valid_alpha = False
    if not valid_alpha:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    alpha = float(alpha)
    langs = list(counts)
    n = np.array([float(counts[lang]) for lang in langs], dtype=np.float64)
    p = n / n.sum()
    # p ** alpha rather than exp(alpha * log p): same value, clearer intent;
    # p > 0 is guaranteed above so neither under- nor overflows matter here.
    q = p**alpha
    q = q / q.sum()
    r = q / p
    return (
        dict(zip(langs, p.tolist())),
        dict(zip(langs, q.tolist())),
        dict(zip(langs, r.tolist())),
    )


def language_ratios(
    counts: Mapping[str, int], alpha: float = 0.05
) -> dict[str, float]:
    """Per-utterance sampling weights that re-balance languages (SAMU-XLSR).

    With ``p_l = n_l / sum_k n_k`` the share of language ``l`` in the corpus,
    each utterance of ``l`` gets the weight

        r_l = (1 / p_l) * p_l**alpha / sum_k p_k**alpha,

    so that language ``l`` as a whole is drawn with probability
    ``q_l = n_l r_l / sum_k n_k r_k = p_l**alpha / sum_k p_k**alpha``.
    ``alpha = 1`` keeps the natural distribution (all weights 1); ``alpha ->
    0`` makes all languages equally likely. The weights are normalised so
    that ``sum_l n_l r_l = sum_l n_l``: an epoch of ``len(corpus)`` draws
    holds on average ``r_l`` copies of each utterance of ``l``.

    Arguments
    ---------
    counts : Mapping[str, int]
        Number of training utterances per language (all > 0).
    alpha : float
        Smoothing exponent in (0, 1]. SAMU-XLSR uses 0.05.

    Returns
    -------
    dict[str, float]
        ``r_l`` for every language of ``counts``, in the same order.

    Raises
    ------
    ValueError
        If ``counts`` is empty, holds a non-positive or non-finite count, or
        ``alpha`` is outside (0, 1].

    Example
    -------
    >>> r = language_ratios({"a": 900, "b": 100}, alpha=0.5)
    >>> # p = (0.9, 0.1); q = (3, 1) / 4 since sqrt(0.9) = 3 sqrt(0.1);
    >>> # r = q / p = (0.75 / 0.9, 0.25 / 0.1)
    >>> {lang: round(v, 4) for lang, v in r.items()}
    {'a': 0.8333, 'b': 2.5}
    >>> language_ratios({"a": 900, "b": 100}, alpha=1.0)
    {'a': 1.0, 'b': 1.0}
    """
    return _language_distribution(counts, alpha)[2]


def utterance_weights(
    languages: Sequence[str], ratios: Mapping[str, float]
) -> torch.Tensor:
    """Looks up the sampling weight of every utterance from its language.

    Arguments
    ---------
    languages : Sequence[str]
        Language of each utterance, in dataset order.
    ratios : Mapping[str, float]
        Per-utterance weight of each language, from ``language_ratios`` or
        ``load_language_ratios``.

    Returns
    -------
    torch.Tensor
        Float64 tensor of shape ``[len(languages)]``.

    Raises
    ------
    ValueError
        If a language of ``languages`` has no ratio.

    Example
    -------
    >>> utterance_weights(["b", "a", "b"], {"a": 0.5, "b": 2.0})
    tensor([2.0000, 0.5000, 2.0000], dtype=torch.float64)
    """
    missing = sorted(set(languages) - set(ratios))
    if missing:
        raise ValueError(
            f"no sampling ratio for language(s) {missing}; "
            f"ratios cover {sorted(ratios)}"
        )
    return torch.tensor(
        [float(ratios[lang]) for lang in languages], dtype=torch.float64
    )


def save_language_ratios(
    path: str | Path, counts: Mapping[str, int], alpha: float = 0.05
) -> dict[str, float]:
    """Computes the language ratios and writes them with their provenance.

    The JSON holds ``alpha``, ``counts``, the corpus shares ``probabilities``
    (p_l), the per-language draw shares ``sampling_share`` (q_l) and the
    per-utterance ``ratios`` (r_l), so the file documents the re-balancing.

    Arguments
    ---------
    path : str or Path
        Output JSON file; parent directories are created.
    counts : Mapping[str, int]
        Number of training utterances per language.
    alpha : float
        Smoothing exponent in (0, 1].

    Returns
    -------
    dict[str, float]
        The ratios r_l, as ``language_ratios`` returns them.

    Example
    -------
    >>> import tempfile, os
    >>> tmp = tempfile.mkdtemp()
    >>> path = os.path.join(tmp, "ratios.json")
    >>> r = save_language_ratios(path, {"a": 900, "b": 100}, alpha=0.5)
    >>> load_language_ratios(path) == r
    True
    """
    p, q, r = _language_distribution(counts, alpha)
    record = {
        "alpha": float(alpha),
        "counts": {lang: int(n) for lang, n in counts.items()},
        "probabilities": p,
        "sampling_share": q,
        "ratios": r,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return r


def load_language_ratios(path: str | Path) -> dict[str, float]:
    """Reads the per-utterance ratios r_l written by ``save_language_ratios``.

    Arguments
    ---------
    path : str or Path
        JSON file written by ``save_language_ratios``.

    Returns
    -------
    dict[str, float]
        The ratios r_l per language.

    Raises
    ------
    ValueError
        If the file has no ``ratios`` mapping.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "r.json")
    >>> _ = save_language_ratios(path, {"x": 1, "y": 1}, alpha=0.05)
    >>> load_language_ratios(path)
    {'x': 1.0, 'y': 1.0}
    """
    record = json.loads(Path(path).read_text())
    ratios = record.get("ratios") if isinstance(record, dict) else None
    if not isinstance(ratios, dict):
        raise ValueError(f"{path} holds no 'ratios' mapping")
    return {lang: float(v) for lang, v in ratios.items()}


# --------------------------------------------------------------------------
# Dynamic batch sampler
# --------------------------------------------------------------------------


@dataclass
class _Plan:
    """One epoch's batches, shared by all ranks.

    ``flat`` holds the drawn dataset indices in packing order; global batch
    ``b`` (in training order, before sharding) is ``flat[starts[b]:ends[b]]``.
    The batches tile ``flat`` exactly, which is what makes the ranks' shards
    disjoint and complete.
    """

    epoch: int
    flat: np.ndarray  # [num_samples] int64 dataset indices
    starts: np.ndarray  # [num_batches] int64
    ends: np.ndarray  # [num_batches] int64
    num_oversize: int


def _draw_weighted(
    weights: torch.Tensor,
    num_samples: int,
    replacement: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """Draws ``num_samples`` indices with probability proportional to weight.

    Implemented by hand (inverse CDF with replacement, exponential race
    without) rather than with ``torch.multinomial``, which is limited to
    2**24 categories; large multilingual corpora exceed that.
    """
    if replacement:
        cdf = torch.cumsum(weights, 0)  # [N] float64
        u = torch.rand(num_samples, generator=generator, dtype=torch.float64)
        idx = torch.searchsorted(cdf, u * cdf[-1], right=True)
        # u * total can round up to total; clamp onto the last index with
        # positive weight so a trailing zero-weight item is never drawn.
        last = int(torch.nonzero(weights > 0)[-1])
        return idx.clamp_(max=last)
    # Efraimidis-Spirakis: the num_samples smallest E_i / w_i, E_i ~ Exp(1),
    # are a weighted draw without replacement; zero weights give +inf keys.
    e = torch.empty(weights.shape, dtype=torch.float64).exponential_(
        generator=generator
    )
    keys = e / weights
    return torch.topk(keys, num_samples, largest=False, sorted=True).indices


def pack_by_duration(
    durations: Sequence[float],
    max_batch_seconds: float,
    max_batch_size: int | None = None,
) -> tuple[list[int], int]:
    """Greedy packing of consecutive utterances into capped batches.

    Utterances are taken in order; a batch is closed when one more would
    make its padded duration ``len(batch) * max(duration)`` exceed
    ``max_batch_seconds`` or its size exceed ``max_batch_size``. An
    utterance longer than the cap gets a batch of its own. A plain Python
    loop: it is sequential by nature and a single pass over floats costs
    well under a second per million utterances.

    Arguments
    ---------
    durations : Sequence[float]
        Seconds, in packing order.
    max_batch_seconds : float
        Cap on the padded duration of a batch.
    max_batch_size : int or None
        Cap on the number of utterances of a batch.

    Returns
    -------
    tuple
        The end offset of every batch, and the number of oversize
        utterances.

    Example
    -------
    >>> pack_by_duration([1.0, 1.0, 3.0, 9.0, 2.0], max_batch_seconds=6.0)
    ([2, 3, 4, 5], 1)
    """
    cap = max_batch_seconds
    max_size = max_batch_size or len(durations)
    ends: list[int] = []
    num_oversize = 0
    size = 0
    longest = 0.0
    for i, d in enumerate(durations):
        if d > cap:
            # Alone in its own batch: close the open batch first.
            if size:
                ends.append(i)
            ends.append(i + 1)
            num_oversize += 1
            size, longest = 0, 0.0
            continue
        new_longest = d if d > longest else longest
        if size and (size == max_size or (size + 1) * new_longest > cap):
            ends.append(i)
            size, new_longest = 0, d
        size += 1
        longest = new_longest
    if size:
        ends.append(len(durations))
    return ends, num_oversize


class LanguageBalancedDynamicBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Weighted re-sampling plus dynamic batching by padded duration, DDP-safe.

    Every epoch, with a generator seeded with ``seed + epoch``:

    1. ``num_samples`` dataset indices are drawn with probability
       proportional to ``weights`` (with or without replacement), or as a
       uniform permutation when ``weights`` is None.
    2. The draw is cut into windows of ``sort_window`` consecutive drawn
       utterances, sorted by duration inside each window (alternately
       ascending and descending, so the batch straddling two windows joins
       similar lengths). Batches are thus homogeneous in length but their
       composition stays random across epochs.
    3. Utterances are packed greedily so that the padded duration
       ``len(batch) * max(duration in batch)`` never exceeds
       ``max_batch_seconds`` and ``len(batch) <= max_batch_size``. An
       utterance longer than ``max_batch_seconds`` gets a batch of its own
       (counted in ``batch_statistics()["num_oversize"]`` and logged).
    4. If the number of batches is not a multiple of ``num_replicas``, the
       batches with the most utterances are split in two until it is, so
       every rank gets the same number of batches (otherwise DDP hangs)
       without dropping or duplicating data; halves still respect the caps.
    5. The batch order is shuffled, and rank ``r`` takes batches
       ``r, r + num_replicas, ...``.

    All ranks compute the same plan, so the shards are disjoint and together
    exactly the epoch's batches. The plan is computed lazily and cached per
    epoch; ``len()`` is this rank's number of batches for the current epoch.

    The sampler does its own sharding: build the DataLoader yourself (e.g.
    ``speechbrain.dataio.dataloader.make_dataloader(dataset,
    batch_sampler=sampler)``), give that DataLoader to ``Brain.fit`` and call
    ``set_epoch`` at the start of every epoch.

    Planning 1M utterances takes well under a second on one CPU core.

    Arguments
    ---------
    durations : Sequence[float]
        Duration of every dataset item in seconds, shape ``[N]``.
    weights : Sequence[float] or torch.Tensor or None
        Non-negative sampling weight of every item, shape ``[N]`` (e.g. from
        ``utterance_weights``); None samples uniformly without replacement.
    max_batch_seconds : float
        Cap on the padded batch duration ``len(batch) * max(durations)``, in
        seconds.
    num_samples : int or None
        Utterances drawn per epoch (over all ranks); default ``N``.
    replacement : bool
        Whether the weighted draw is with replacement. Ignored when
        ``weights`` is None: a uniform epoch is always a permutation
        (repeated permutations if ``num_samples > N``).
    shuffle : bool
        If False, the uniform draw is the identity order and batches are not
        shuffled (deterministic, for evaluation). A weighted draw is random
        regardless.
    seed : int
        Base seed; epoch ``e`` uses ``seed + e``. Must be equal on all ranks.
    num_replicas : int or None
        Number of DDP ranks; default the world size if ``torch.distributed``
        is initialised, else 1.
    rank : int or None
        This process's rank; default from ``torch.distributed``, else 0.
    max_batch_size : int or None
        Optional cap on the number of utterances per batch.
    sort_window : int or None
        Number of consecutive drawn utterances sorted together. Larger means
        less padding but less random batch composition; 1 disables sorting.
        Default: 100 typical batches, i.e. ``100 * max(1, max_batch_seconds
        // median duration)`` (bounded by ``max_batch_size``).

    Raises
    ------
    ValueError
        On invalid arguments; and from ``len()`` / iteration if an epoch's
        draw has too few utterances to give every rank the same number of
        batches (fewer than ``num_batches`` rounded up to a multiple of
        ``num_replicas``).

    Example
    -------
    >>> durations = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    >>> sampler = LanguageBalancedDynamicBatchSampler(
    ...     durations, None, max_batch_seconds=8.0, seed=1
    ... )
    >>> batches = list(sampler)
    >>> len(batches) == len(sampler)
    True
    >>> sorted(i for b in batches for i in b)  # a permutation per epoch
    [0, 1, 2, 3, 4, 5]
    >>> all(len(b) * max(durations[i] for i in b) <= 8.0 for b in batches)
    True
    """

    def __init__(
        self,
        durations: Sequence[float],
        weights: Sequence[float] | torch.Tensor | None,
        max_batch_seconds: float,
        *,
        num_samples: int | None = None,
        replacement: bool = True,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        max_batch_size: int | None = None,
        sort_window: int | None = None,
    ):
        durations = np.asarray(durations, dtype=np.float64)
        if durations.ndim != 1 or durations.size == 0:
            raise ValueError("durations must be a non-empty 1-D sequence")
        if not np.all(np.isfinite(durations)) or np.any(durations < 0):
            raise ValueError("durations must be finite and non-negative")
        num_items = durations.size

        if weights is not None:
            weights = torch.as_tensor(weights, dtype=torch.float64).flatten()
            weights = weights.detach().cpu().contiguous()
            if weights.numel() != num_items:
                raise ValueError(
                    f"got {weights.numel()} weights for {num_items} durations"
                )
            if not bool(torch.isfinite(weights).all()) or bool(
                (weights < 0).any()
            ):
                raise ValueError("weights must be finite and non-negative")
            if not bool((weights > 0).any()):
                raise ValueError("at least one weight must be positive")

        if not max_batch_seconds > 0:
            raise ValueError(
                f"max_batch_seconds must be > 0, got {max_batch_seconds!r}"
            )
        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1: {max_batch_size}")
        if num_samples is None:
            num_samples = num_items
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if weights is not None and not replacement:
            nonzero = int((weights > 0).sum())
            if num_samples > nonzero:
                raise ValueError(
                    f"cannot draw {num_samples} utterances without "
                    f"replacement from {nonzero} with positive weight"
                )

        if num_replicas is None:
            num_replicas = (
                dist.get_world_size()
                if dist.is_available() and dist.is_initialized()
                else 1
            )
        if rank is None:
            rank = (
                dist.get_rank()
                if dist.is_available() and dist.is_initialized()
                else 0
            )
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"invalid rank {rank} for num_replicas {num_replicas}"
            )
        if num_samples < num_replicas:
            raise ValueError(
                f"num_samples={num_samples} is smaller than num_replicas="
                f"{num_replicas}: some rank would get no batch"
            )

        if sort_window is None:
            median = float(np.median(durations))
            typical = (
                int(max_batch_seconds // median) if median > 0 else num_items
            )
            if max_batch_size is not None:
                typical = min(typical, max_batch_size)
            sort_window = 100 * max(1, typical)
        if sort_window < 1:
            raise ValueError(f"sort_window must be >= 1, got {sort_window}")

        self.durations = durations
        self.weights = weights
        self.max_batch_seconds = float(max_batch_seconds)
        self.num_samples = int(num_samples)
        self.replacement = bool(replacement)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.max_batch_size = max_batch_size
        self.sort_window = int(sort_window)
        self.epoch = 0
        self._plan: _Plan | None = None

    # -- public API --------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose draw and batches the sampler yields.

        Arguments
        ---------
        epoch : int
            Epoch number; must be the same on all ranks.
        """
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Number of batches this rank yields in the current epoch.

        Plans the epoch if needed; equal on every rank.

        Returns
        -------
        int
            The epoch's batch count divided by ``num_replicas``.
        """
        return len(self._get_plan().starts) // self.num_replicas

    def __iter__(self) -> Iterator[list[int]]:
        """Yields this rank's batches of the current epoch, in order.

        Yields
        ------
        list[int]
            Dataset indices of one batch (every ``num_replicas``-th batch
            of the plan, from ``rank``).
        """
        plan = self._get_plan()
        starts = plan.starts[self.rank :: self.num_replicas].tolist()
        ends = plan.ends[self.rank :: self.num_replicas].tolist()
        for start, end in zip(starts, ends):
            yield plan.flat[start:end].tolist()

    def global_batches(self) -> list[list[int]]:
        """All ranks' batches of the current epoch, in training order.

        Rank ``r`` yields ``global_batches()[r::num_replicas]``.

        Returns
        -------
        list[list[int]]
            Dataset indices of every batch.
        """
        plan = self._get_plan()
        return [
            plan.flat[s:e].tolist()
            for s, e in zip(plan.starts.tolist(), plan.ends.tolist())
        ]

    def batch_statistics(
        self, languages: Sequence[str] | None = None
    ) -> dict[str, object]:
        """Summarises the current epoch's plan (all ranks together).

        Arguments
        ---------
        languages : Sequence[str] or None
            Language of every dataset item, shape ``[N]``; if given, the
            per-language number of drawn utterances is reported.

        Returns
        -------
        dict
            ``num_batches`` (all ranks), ``batches_per_rank``,
            ``num_utterances`` (drawn), ``unique_utterances``,
            ``mean_batch_size``, ``max_batch_size`` (largest batch seen),
            ``real_seconds``, ``padded_seconds``, ``padding_fraction``
            (``1 - real / padded``), ``num_oversize`` (utterances longer
            than ``max_batch_seconds``, each alone in a batch) and, with
            ``languages``, ``language_counts``.
        """
        plan = self._get_plan()
        order = np.argsort(plan.starts, kind="stable")
        starts = plan.starts[order]
        sizes = plan.ends[order] - starts
        dur = self.durations[plan.flat]  # [num_samples] seconds, packed order
        batch_max = np.maximum.reduceat(dur, starts)
        real = float(dur.sum())
        padded = float((sizes * batch_max).sum())
        stats: dict[str, object] = {
            "num_batches": int(sizes.size),
            "batches_per_rank": int(sizes.size // self.num_replicas),
            "num_utterances": int(plan.flat.size),
            "unique_utterances": int(np.unique(plan.flat).size),
            "mean_batch_size": float(sizes.mean()),
            "max_batch_size": int(sizes.max()),
            "real_seconds": real,
            "padded_seconds": padded,
            "padding_fraction": 1.0 - real / padded if padded > 0 else 0.0,
            "num_oversize": plan.num_oversize,
        }
        if languages is not None:
            if len(languages) != self.durations.size:
                raise ValueError(
                    f"got {len(languages)} languages for "
                    f"{self.durations.size} utterances"
                )
            langs = np.asarray(languages, dtype=object)
            stats["language_counts"] = dict(
                sorted(Counter(langs[plan.flat].tolist()).items())
            )
        return stats

    # -- pickling: the plan is a cache, recomputed deterministically -------

    def __getstate__(self) -> dict:
        """Pickled state, without the cached plan (recomputed on demand).

        Returns
        -------
        dict
            A copy of ``__dict__`` with ``_plan`` set to None.
        """
        state = self.__dict__.copy()
        state["_plan"] = None
        return state

    # -- planning ----------------------------------------------------------

    def _get_plan(self) -> _Plan:
        """The current epoch's plan, computed once and cached.

        Returns
        -------
        _Plan
            The plan of ``self.epoch`` (recomputed when the epoch changed).
        """
        if self._plan is None or self._plan.epoch != self.epoch:
            self._plan = self._make_plan(self.epoch)
        return self._plan

    def _draw(self, generator: torch.Generator) -> np.ndarray:
        """Draws the epoch's ``num_samples`` dataset indices.

        Weighted draws follow ``weights`` (with or without replacement);
        otherwise the indices are concatenated permutations (identity order
        when ``shuffle`` is False), cut to ``num_samples``.

        Arguments
        ---------
        generator : torch.Generator
            The epoch's seeded generator, equal on every rank.

        Returns
        -------
        np.ndarray
            ``[num_samples]`` int64 dataset indices, in draw order.
        """
        num_items = self.durations.size
        if self.weights is not None:
            idx = _draw_weighted(
                self.weights, self.num_samples, self.replacement, generator
            )
            return idx.numpy().astype(np.int64, copy=False)
        reps = -(-self.num_samples // num_items)
        if self.shuffle:
            perms = [
                torch.randperm(num_items, generator=generator).numpy()
                for _ in range(reps)
            ]
        else:
            perms = [np.arange(num_items)] * reps
        return np.concatenate(perms)[: self.num_samples].astype(np.int64)

    def _make_plan(self, epoch: int) -> _Plan:
        """Computes an epoch's batches: draw, window-sort, pack, split, shuffle.

        Arguments
        ---------
        epoch : int
            The epoch; seeds the generator with ``seed + epoch``.

        Returns
        -------
        _Plan
            The epoch's drawn indices in packing order and the bounds of
            every batch (a multiple of ``num_replicas``), in training order.
        """
        generator = torch.Generator().manual_seed(self.seed + epoch)
        drawn = self._draw(generator)  # [num_samples] dataset indices
        dur = self.durations[drawn]

        # Sort inside windows, alternating direction (snake order) so that
        # consecutive windows meet at similar lengths. lexsort is stable, so
        # ties keep their random draw order.
        window = np.arange(drawn.size) // self.sort_window
        key = np.where(window % 2 == 0, dur, -dur)
        order = np.lexsort((key, window))
        flat = drawn[order]
        ends, num_oversize = self._pack(dur[order].tolist())
        ends = np.asarray(ends, dtype=np.int64)
        starts = np.concatenate(([0], ends[:-1])).astype(np.int64)

        starts, ends = self._split_to_multiple(starts, ends)
        if self.shuffle:
            perm = torch.randperm(starts.size, generator=generator).numpy()
            starts, ends = starts[perm], ends[perm]

        if num_oversize and self.rank == 0:
            logger.warning(
                "Epoch %d: %d utterance(s) longer than max_batch_seconds=%g "
                "s; each was given a batch of its own.",
                epoch,
                num_oversize,
                self.max_batch_seconds,
            )
        return _Plan(epoch, flat, starts, ends, num_oversize)

    def _pack(self, durations: list[float]) -> tuple[list[int], int]:
        """Packs durations under this sampler's caps (:func:`pack_by_duration`).

        Arguments
        ---------
        durations : list[float]
            Seconds of the drawn utterances, in packing order.

        Returns
        -------
        tuple[list[int], int]
            The end offset of every batch, and the number of oversize
            utterances.
        """
        return pack_by_duration(
            durations, self.max_batch_seconds, self.max_batch_size
        )

    def _split_to_multiple(
        self, starts: np.ndarray, ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Splits the largest batches until num_replicas divides the count.

        Halves of a batch have no more items and no longer an utterance than
        the batch, so both caps still hold. Ties are broken by position, so
        every rank makes the same splits.
        """
        num_batches = starts.size
        missing = -num_batches % self.num_replicas
        if missing == 0:
            return starts, ends
        num_items = int(ends[-1]) if ends.size else 0
        if num_batches + missing > num_items:
            raise ValueError(
                f"cannot split {num_batches} batches of {num_items} "
                f"utterances into a multiple of num_replicas="
                f"{self.num_replicas}: draw more utterances (num_samples)"
            )
        heap = [
            (-(e - s), s, e) for s, e in zip(starts.tolist(), ends.tolist())
        ]
        heapq.heapify(heap)
        for _ in range(missing):
            _, s, e = heapq.heappop(heap)
            # Cannot fail: the check above guarantees enough splittable items.
            mid = s + (e - s) // 2
            heapq.heappush(heap, (-(mid - s), s, mid))
            heapq.heappush(heap, (-(e - mid), mid, e))
        bounds = sorted((s, e) for _, s, e in heap)
        arr = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
        return arr[:, 0].copy(), arr[:, 1].copy()
