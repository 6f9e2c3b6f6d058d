"""Tests for exact blockwise retrieval ranks and Recall@k."""

import math

import pytest
import torch

from speechbrain_sense.retrieval import (
    chance_recall,
    recall_at_k,
    speech_to_text_recall,
    target_ranks,
)


def naive_ranks(queries, keys, targets):
    """1 + number of keys strictly more similar than the target (cosine)."""
    q = queries / queries.norm(dim=-1, keepdim=True)
    k = keys / keys.norm(dim=-1, keepdim=True)
    scores = q @ k.T
    ranks = []
    for i, t in enumerate(targets.tolist()):
        others = [j for j in range(len(keys)) if j != t]
        ranks.append(1 + sum(int(scores[i, j] > scores[i, t]) for j in others))
    return torch.tensor(ranks)


@pytest.mark.parametrize(
    ("n_queries", "n_keys", "block_size"),
    [(23, 17, 7), (9, 30, 7), (8, 8, 1), (12, 5, 4096)],
)
def test_target_ranks_match_naive(n_queries, n_keys, block_size):
    generator = torch.Generator().manual_seed(n_queries * 100 + n_keys)
    queries = torch.randn(n_queries, 5, generator=generator) * 3
    keys = torch.randn(n_keys, 5, generator=generator)
    targets = torch.randint(0, n_keys, (n_queries,), generator=generator)
    ranks = target_ranks(queries, keys, targets, block_size=block_size)
    assert ranks.dtype == torch.long
    assert torch.equal(ranks, naive_ranks(queries, keys, targets))
    assert ranks.min() >= 1 and ranks.max() <= n_keys
    # a spread of ranks, not a degenerate case
    assert len(set(ranks.tolist())) > 2


def test_target_ranks_independent_of_block_size():
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(50, 6, generator=generator)
    keys = torch.randn(40, 6, generator=generator)
    targets = torch.randint(0, 40, (50,), generator=generator)
    reference = target_ranks(queries, keys, targets)
    for block_size in (1, 3, 7, 39, 40, 41):
        assert torch.equal(
            target_ranks(queries, keys, targets, block_size), reference
        )


def test_own_key_ranks_first():
    generator = torch.Generator().manual_seed(1)
    keys = torch.randn(20, 8, generator=generator)
    ranks = target_ranks(2.5 * keys, keys, torch.arange(20), block_size=7)
    assert ranks.tolist() == [1] * 20


def test_ties_count_against_the_query():
    keys = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    queries = torch.tensor([[2.0, 0.5], [1.0, 0.2], [0.0, 1.0]])
    ranks = target_ranks(queries, keys, torch.tensor([0, 1, 2]), block_size=2)
    assert ranks.tolist() == [2, 2, 1]
    # targeting the third key, both copies rank ahead; targeting a copy
    # from an orthogonal query, the other copy ties and the third key wins
    ranks = target_ranks(queries, keys, torch.tensor([2, 2, 0]), block_size=2)
    assert ranks.tolist() == [3, 3, 3]


def test_constant_embedding_ranks_last():
    keys = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    zero = torch.zeros(3, 4)
    ranks = target_ranks(zero, keys, torch.tensor([0, 3, 5]), block_size=4)
    assert ranks.tolist() == [6, 6, 6]


def test_recall_at_k_values():
    ranks = torch.tensor([1, 2, 3, 10, 11, 1, 5, 6])
    out = recall_at_k(ranks, ks=(1, 2, 5, 10, 100))
    assert out == pytest.approx(
        {"R@1": 2 / 8, "R@2": 3 / 8, "R@5": 5 / 8, "R@10": 7 / 8, "R@100": 1}
    )
    assert list(out) == ["R@1", "R@2", "R@5", "R@10", "R@100"]
    empty = recall_at_k(torch.tensor([], dtype=torch.long), ks=(1, 5))
    assert set(empty) == {"R@1", "R@5"}
    assert all(math.isnan(v) for v in empty.values())


def _unit(degrees):
    radians = math.radians(degrees)
    return torch.tensor([math.cos(radians), math.sin(radians)])


def test_speech_to_text_recall_per_language_and_pooled():
    # keys on the unit circle: en "a" 0 deg, "b" 90 deg; fr "c" 10, "d" 100
    keys = {"a": _unit(0), "b": _unit(90), "c": _unit(10), "d": _unit(100)}
    speech = torch.stack(
        [
            _unit(8),  # en "a": first among en, but "c" is closer (rank 2)
            _unit(90),  # en "b": first everywhere
            _unit(10),  # fr "c": first everywhere
            _unit(48),  # fr "d": second in fr (c), fourth overall
        ]
    )
    out = speech_to_text_recall(
        speech,
        keys,
        ["a", "b", "c", "d"],
        ["en", "en", "fr", "fr"],
        ks=(1, 2, 5),
        block_size=3,
    )
    assert set(out) == {"en", "fr", "all", "mean"}
    assert out["en"] == pytest.approx(
        {"R@1": 1.0, "R@2": 1.0, "R@5": 1.0, "count": 2, "candidates": 2}
    )
    assert out["fr"] == pytest.approx(
        {"R@1": 0.5, "R@2": 1.0, "R@5": 1.0, "count": 2, "candidates": 2}
    )
    # pooled ranks: 2, 1, 1, 4
    assert out["all"] == pytest.approx(
        {"R@1": 0.5, "R@2": 0.75, "R@5": 1.0, "count": 4, "candidates": 4}
    )
    assert out["mean"] == pytest.approx(
        {"R@1": 0.75, "R@2": 1.0, "R@5": 1.0, "count": 4, "candidates": 4}
    )


def test_speech_to_text_recall_unique_candidates():
    # repeated transcripts are one candidate; "ok" is shared by en and de
    keys = {"ok": _unit(0), "yes": _unit(60), "ja": _unit(120)}
    speech = torch.stack([_unit(5), _unit(-5), _unit(58), _unit(3), _unit(70)])
    out = speech_to_text_recall(
        speech,
        keys,
        ["ok", "ok", "yes", "ok", "ja"],
        ["en", "en", "en", "de", "de"],
        ks=(1,),
    )
    assert out["en"]["candidates"] == 2 and out["en"]["count"] == 3
    assert out["de"]["candidates"] == 2 and out["de"]["count"] == 2
    assert out["all"]["candidates"] == 3 and out["all"]["count"] == 5
    assert out["mean"]["candidates"] == 4
    assert out["en"]["R@1"] == 1.0
    # de "ja" at 70 deg: "ja" is 50 deg away, "ok" 70 deg: rank 1 in de
    assert out["de"]["R@1"] == 1.0
    # pooled: "ja" at 70 deg is nearer "yes" (10 deg) than "ja" (50 deg)
    assert out["all"]["R@1"] == pytest.approx(4 / 5)


@pytest.mark.parametrize(
    ("candidates", "k", "value"),
    [(20, 5, 0.25), (100, 1, 0.01), (3, 5, 1.0), (10, 10, 1.0), (7, 1, 1 / 7)],
)
def test_chance_recall(candidates, k, value):
    assert chance_recall(candidates, k) == pytest.approx(value)
