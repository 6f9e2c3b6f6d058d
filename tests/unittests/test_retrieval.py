"""Tests for exact blockwise retrieval ranks and Recall@k."""

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from speechbrain_sense import retrieval
from speechbrain_sense.retrieval import (
    chance_recall,
    grouped_ranks,
    knn_mean_similarity,
    margin_search,
    multilingual_retrieval,
    recall_at_k,
    retrieval_metrics,
    score_error_bound,
    speech_to_text_recall,
    target_ranks,
    topk_search,
    xsim_error,
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


# --------------------------------------------------------------------------
# Top-k search, grouped ranks and xSIM, against full-matrix implementations.


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def naive_topk(queries, keys, k):
    """Full similarity matrix, stable sort: ties go to the lower index."""
    scores = unit(queries) @ unit(keys).T
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    return scores.gather(1, order[:, :k]), order[:, :k]


def naive_grouped_ranks(queries, keys, query_groups, key_groups):
    scores = unit(queries) @ unit(keys).T
    ranks = []
    for i, group in enumerate(query_groups):
        correct = [j for j, g in enumerate(key_groups) if g == group]
        best = max(scores[i, j] for j in correct)
        ahead = sum(
            int(scores[i, j] >= best)
            for j in range(len(keys))
            if j not in correct
        )
        ranks.append(1 + ahead)
    return torch.tensor(ranks)


def naive_xsim(sources, targets, source_groups, target_groups, k=4):
    """LASER's ratio margin written out with the full matrix."""
    scores = unit(sources) @ unit(targets).T
    k_t = min(k, len(targets))
    k_s = min(k, len(sources))
    density_x = scores.topk(k_t, dim=1).values.sum(1) / (2 * k_t)
    density_y = scores.topk(k_s, dim=0).values.sum(0) / (2 * k_s)
    errors = 0
    for i in range(len(sources)):
        margins = [
            scores[i, j] / (density_x[i] + density_y[j])
            for j in range(len(targets))
        ]
        best = max(range(len(targets)), key=lambda j: (margins[j], -j))
        errors += int(target_groups[best] != source_groups[i])
    return errors / len(sources)


@pytest.mark.parametrize(
    ("n_queries", "n_keys", "k", "block_size"),
    [(23, 17, 5, 7), (9, 30, 1, 4), (8, 8, 8, 3), (12, 5, 10, 4096)],
)
def test_topk_search_matches_full_matrix(n_queries, n_keys, k, block_size):
    generator = torch.Generator().manual_seed(n_queries + 7 * n_keys)
    queries = torch.randn(n_queries, 6, generator=generator)
    keys = torch.randn(n_keys, 6, generator=generator)
    scores, indices = topk_search(queries, keys, k, block_size, device="cpu")
    expected_scores, expected_indices = naive_topk(queries, keys, k)
    assert indices.shape == (n_queries, min(k, n_keys))
    assert torch.equal(indices, expected_indices)
    assert torch.allclose(scores, expected_scores, atol=1e-6)
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_topk_ties_go_to_the_lower_index_whatever_the_blocks():
    # keys 1, 3, 4 and 6 are the same vector: a query on it ties four ways
    base = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    keys = base[[1, 0, 2, 0, 0, 2, 0, 1]]
    queries = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    for block_size in (1, 2, 3, 5, 8):
        _, indices = topk_search(queries, keys, 3, block_size, device="cpu")
        assert indices.tolist() == [[1, 3, 4], [2, 5, 0], [0, 7, 2]]


def test_known_neighbours():
    keys = torch.stack([_unit(a) for a in (0, 30, 60, 90, 180)])
    queries = torch.stack([_unit(40), _unit(170)])
    scores, indices = topk_search(queries, keys, 2, block_size=2)
    assert indices.tolist() == [[1, 2], [4, 3]]
    cos = math.cos(math.radians(10))
    assert scores[:, 0].tolist() == pytest.approx([cos, cos])


@pytest.mark.skipif(
    importlib.util.find_spec("faiss") is None, reason="faiss-cpu not installed"
)
def test_faiss_backend_matches_torch():
    generator = torch.Generator().manual_seed(3)
    queries = torch.randn(40, 8, generator=generator)
    keys = torch.randn(60, 8, generator=generator)
    exact = topk_search(queries, keys, 5, block_size=16, device="cpu")
    faiss = topk_search(queries, keys, 5, backend="faiss")
    assert torch.equal(faiss[1], exact[1])
    assert torch.allclose(faiss[0], exact[0], atol=1e-5)


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="backend"):
        topk_search(torch.ones(1, 2), torch.ones(1, 2), 1, backend="annoy")


@pytest.mark.parametrize("block_size", [1, 3, 4096])
def test_grouped_ranks_match_naive(block_size):
    generator = torch.Generator().manual_seed(4)
    keys = torch.randn(30, 5, generator=generator)
    key_groups = [i % 7 for i in range(30)]  # 4 or 5 correct keys each
    queries = torch.randn(25, 5, generator=generator)
    query_groups = [(3 * i) % 7 for i in range(25)]
    ranks = grouped_ranks(
        queries, keys, query_groups, key_groups, block_size, device="cpu"
    )
    expected = naive_grouped_ranks(queries, keys, query_groups, key_groups)
    assert torch.equal(ranks, expected)
    assert len(set(ranks.tolist())) > 2


def test_grouped_ranks_with_one_correct_key_equal_target_ranks():
    generator = torch.Generator().manual_seed(5)
    keys = torch.randn(20, 4, generator=generator)
    queries = torch.randn(15, 4, generator=generator)
    targets = torch.randint(0, 20, (15,), generator=generator)
    ranks = grouped_ranks(queries, keys, targets.tolist(), list(range(20)))
    assert torch.equal(ranks, target_ranks(queries, keys, targets))


def test_grouped_ranks_counts_only_incorrect_keys_and_ties_against():
    keys = torch.stack([_unit(0), _unit(0), _unit(45), _unit(90)])
    # group "s" has two identical keys: they never push each other down;
    # group "t" (90 deg) ties with nothing, "u" at 45 deg ties with a copy
    queries = torch.stack([_unit(0), _unit(80), _unit(45)])
    ranks = grouped_ranks(queries, keys, ["s", "t", "u"], ["s", "s", "u", "t"])
    assert ranks.tolist() == [1, 1, 1]
    keys = torch.stack([_unit(45), _unit(45), _unit(0)])
    ranks = grouped_ranks(queries[2:], keys, ["u"], ["v", "u", "w"])
    assert ranks.tolist() == [2]  # the tied incorrect copy ranks ahead


def test_grouped_ranks_reject_queries_without_a_correct_key():
    with pytest.raises(ValueError, match="no correct key"):
        grouped_ranks(torch.ones(2, 2), torch.ones(2, 2), [1, 9], [1, 2])


def test_margin_discounts_hub_targets():
    # target 0 (a "hub" between everything) is each source's nearest by
    # cosine, but the margin prefers each source's own, isolated target
    # (with k = 1 the hub's density equals its own cosine: no discount).
    hub = unit(torch.tensor([1.0, 1.0, 1.0]))
    own = torch.eye(3)
    targets = torch.cat([hub[None], own])
    sources = unit(own + 1.2 * hub)
    nearest = topk_search(sources, targets, 1)[1][:, 0]
    assert nearest.tolist() == [0, 0, 0]
    _, chosen = margin_search(sources, targets, k=2)
    assert chosen.tolist() == [1, 2, 3]
    assert xsim_error(sources, targets, [1, 2, 3], [0, 1, 2, 3], k=2) == 0.0
    assert margin_search(sources, targets, k=1)[1].tolist() == [0, 0, 0]


@pytest.mark.parametrize(("k", "block_size"), [(4, 5), (1, 3), (10, 4096)])
def test_xsim_matches_naive_margin(k, block_size):
    generator = torch.Generator().manual_seed(6)
    sources = torch.randn(30, 6, generator=generator)
    # noisy translations: some errors, not all
    targets = sources[:24] + 1.1 * torch.randn(24, 6, generator=generator)
    source_groups = [i % 24 for i in range(30)]
    target_groups = list(range(24))
    error = xsim_error(
        sources,
        targets,
        source_groups,
        target_groups,
        k=k,
        block_size=block_size,
    )
    expected = naive_xsim(sources, targets, source_groups, target_groups, k)
    assert error == pytest.approx(expected)
    assert 0.0 < error < 1.0


def test_xsim_aligned_sets_default():
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(10, 4, generator=generator)
    assert xsim_error(x, x.clone()) == 0.0
    with pytest.raises(ValueError, match="aligned"):
        xsim_error(x, x[:5])


def test_knn_mean_similarity_values():
    keys = torch.stack([_unit(0), _unit(60), _unit(90)])
    means = knn_mean_similarity(torch.stack([_unit(0)]), keys, k=2)
    assert means.tolist() == pytest.approx([(1 + 0.5) / 2])


def test_retrieval_metrics_fields_and_values():
    keys = torch.stack([_unit(0), _unit(90), _unit(180)])
    queries = torch.stack([_unit(10), _unit(100), _unit(60)])
    out = retrieval_metrics(
        queries, keys, ["a", "b", "c"], ["a", "b", "c"], ks=(1, 2)
    )
    # ranks 1, 1, 3 (the third query is nearest "b", then "a")
    assert out["R@1"] == pytest.approx(2 / 3)
    assert out["R@2"] == pytest.approx(2 / 3)
    assert out["count"] == 3 and out["candidates"] == 3
    assert out["chance@1"] == pytest.approx(1 / 3)
    assert 0.0 <= out["xsim"] <= 1.0


def test_multilingual_retrieval_known_values():
    # en: two sentences, each read twice; fr: translations, read once;
    # de: one sentence with no translation in the set.
    texts = {
        "one": _unit(0),
        "two": _unit(90),
        "un": _unit(5),
        "deux": _unit(80),
        "drei": _unit(180),
    }
    rows = [
        ("one", "en", 1, 2),  # (transcript, language, pair id, angle)
        ("one", "en", 1, -3),
        ("two", "en", 2, 88),
        ("two", "en", 2, 40),  # closer to "one" than to "two"
        ("un", "fr", 1, 6),
        ("deux", "fr", 2, 82),
        ("drei", "de", 3, 175),
    ]
    speech = torch.stack([_unit(angle) for *_, angle in rows])
    out = multilingual_retrieval(
        speech,
        texts,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        ks=(1, 2),
        block_size=2,
    )
    s2t = out["speech_to_text"]
    assert s2t["en"]["R@1"] == pytest.approx(3 / 4)
    assert s2t["en"]["candidates"] == 2 and s2t["en"]["count"] == 4
    assert s2t["en"]["chance@1"] == pytest.approx(1 / 2)
    assert s2t["fr"]["R@1"] == 1.0 and s2t["de"]["R@1"] == 1.0
    assert s2t["mean"]["R@1"] == pytest.approx((3 / 4 + 1 + 1) / 3)
    # text -> speech in en: "one" finds a reading of itself; "two" at 90
    # deg finds its reading at 88 deg first.
    t2s = out["text_to_speech"]
    assert t2s["en"]["R@1"] == 1.0 and t2s["en"]["count"] == 2
    assert t2s["en"]["candidates"] == 4
    assert t2s["en"]["chance@1"] == pytest.approx(2 / 4)
    s2s = out["speech_to_speech"]
    # de has no translation anywhere: no de pairs; the en reading at 40 deg
    # is nearer "un" (5 deg) than "deux" (82 deg).
    assert set(s2s) == {"en->fr", "fr->en", "mean"}
    assert s2s["en->fr"]["R@1"] == pytest.approx(3 / 4)
    assert s2s["en->fr"]["count"] == 4 and s2s["en->fr"]["candidates"] == 2
    assert s2s["fr->en"]["R@1"] == 1.0
    assert s2s["fr->en"]["chance@1"] == pytest.approx(2 / 4)
    without_pairs = multilingual_retrieval(
        speech, texts, [r[0] for r in rows], [r[1] for r in rows]
    )
    assert without_pairs["speech_to_speech"] is None


def _stable_sort_topk(scores, k):
    """Reference: the k best columns by one stable full sort per row."""
    order = torch.sort(scores, dim=-1, descending=True, stable=True)
    return order.values[:, :k], order.indices[:, :k]


@pytest.mark.parametrize("levels", [None, 3, 7])
def test_block_topk_equals_a_stable_full_sort(levels):
    from speechbrain_sense.retrieval import _block_topk

    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(64, 50, generator=generator)
    if levels:
        # Few distinct values: ties at and above the k-th place everywhere
        # (the general path); without rounding, the no-tie fast path.
        scores = torch.round(scores * levels) / levels
    for k in (1, 5, 50):
        values, columns = _block_topk(scores, k)
        expected_values, expected_columns = _stable_sort_topk(scores, k)
        assert torch.equal(values, expected_values)
        assert torch.equal(columns, expected_columns)


# --------------------------------------------------------------------------
# Low-precision scoring with exact fp32 answers
# --------------------------------------------------------------------------


def count_fp32_rescans(monkeypatch):
    """Counts the queries that the low-precision paths search again."""
    calls = []
    original_topk = retrieval._blockwise_topk
    original_ranks = retrieval._exact_target_ranks

    def topk(queries, *args, **kwargs):
        calls.append(len(queries))
        return original_topk(queries, *args, **kwargs)

    def ranks(queries, *args, **kwargs):
        calls.append(len(queries))
        return original_ranks(queries, *args, **kwargs)

    monkeypatch.setattr(retrieval, "_blockwise_topk", topk)
    monkeypatch.setattr(retrieval, "_exact_target_ranks", ranks)
    return calls


def clustered(n_queries, n_keys, dim, seed):
    """Queries near one key each, so neighbours are well separated."""
    generator = torch.Generator().manual_seed(seed)
    keys = torch.randn(n_keys, dim, generator=generator)
    targets = torch.randint(n_keys, (n_queries,), generator=generator)
    queries = keys[targets] + 0.3 * torch.randn(
        n_queries, dim, generator=generator
    )
    return queries, keys, targets


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize(
    ("n_queries", "n_keys", "k", "block_size"),
    [(50, 300, 5, 64), (33, 200, 1, 4096), (20, 12, 20, 5)],
)
def test_low_precision_topk_equals_fp32(
    precision, n_queries, n_keys, k, block_size
):
    queries, keys, _ = clustered(n_queries, n_keys, 48, n_keys + k)
    reference = topk_search(queries, keys, k, block_size, "cpu", "torch")
    scores, indices = topk_search(
        queries, keys, k, block_size, "cpu", precision=precision
    )
    assert torch.equal(indices, reference[1])
    assert torch.allclose(scores, reference[0], atol=1e-6)
    assert scores.dtype == torch.float32


def test_fp16_topk_answers_separated_neighbours_without_rescanning(
    monkeypatch,
):
    # Without this, a path that always fell back to fp32 would pass the
    # equality tests.
    calls = count_fp32_rescans(monkeypatch)
    queries, keys, targets = clustered(64, 500, 64, 0)
    _, indices = topk_search(queries, keys, 3, 128, "cpu", precision="fp16")
    assert calls == []
    assert torch.equal(indices[:, 0], targets)


def ring(cosines, dim=8):
    """Unit keys whose cosines with ``e0`` are ``cosines``."""
    cosines = torch.tensor(cosines, dtype=torch.float64)
    keys = torch.zeros(len(cosines), dim, dtype=torch.float64)
    keys[:, 0] = cosines
    keys[:, 1] = (1 - cosines**2).sqrt()
    return keys.float()


def test_low_precision_topk_resolves_near_ties_below_its_resolution():
    # Cosines 4e-5 apart: one fp16 unit at 0.9 is 4.9e-4, so fp16 sees
    # a block of equal scores; fp32 separates them. Keys are shuffled so
    # that index order does not give the answer away.
    cosines = [0.9 + 4e-5 * i for i in range(40)] + [0.1] * 60
    permutation = torch.randperm(
        100, generator=torch.Generator().manual_seed(1)
    )
    keys = ring(cosines)[permutation]
    query = torch.zeros(1, 8)
    query[0, 0] = 1.0
    for precision in ("fp16", "bf16"):
        _, indices = topk_search(
            query, keys, 10, 16, "cpu", precision=precision
        )
        expected = torch.argsort(permutation)[torch.arange(39, 29, -1)]
        assert indices[0].tolist() == expected.tolist()


def test_low_precision_topk_ties_go_to_the_lower_index(monkeypatch):
    # 45 copies of the best key: more than the 26 candidates kept for
    # k = 10, so the low-precision scan alone cannot know which copies
    # have the lowest indices; the answer must still be the first ten.
    generator = torch.Generator().manual_seed(2)
    keys = torch.randn(200, 16, generator=generator)
    copies = torch.randperm(200, generator=generator)[:45]
    keys[copies] = keys[0].clone()
    query = keys[:1] + 1e-3 * torch.randn(1, 16, generator=generator)
    calls = count_fp32_rescans(monkeypatch)
    _, indices = topk_search(query, keys, 10, 32, "cpu", precision="fp16")
    tied = sorted({0, *copies.tolist()})
    assert indices[0].tolist() == tied[:10]
    assert calls == [1]  # found unsure, searched again in fp32


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_low_precision_target_ranks_equal_fp32(precision):
    queries, keys, targets = clustered(80, 400, 32, 5)
    # Some hard queries (random ones rank deep, with many keys in the
    # rounding band) and an exact tie with the target.
    queries[:10] = torch.randn(10, 32, generator=torch.Generator())
    keys[7] = keys[targets[20]]
    reference = target_ranks(queries, keys, targets, 64, precision="fp32")
    ranks = target_ranks(queries, keys, targets, 64, precision=precision)
    assert torch.equal(ranks, reference)
    assert ranks[20] == 2  # the exact copy of its target counts against it
    assert (ranks[:10] > 20).all()


def test_fp16_target_ranks_rescan_only_the_unsure_queries(monkeypatch):
    queries, keys, targets = clustered(60, 300, 64, 6)
    queries[5] = keys[targets[5]]
    keys[11] = keys[targets[5]]  # a tie: query 5 must be rescanned
    calls = count_fp32_rescans(monkeypatch)
    ranks = target_ranks(queries, keys, targets, 32, precision="fp16")
    assert calls == [1]
    assert ranks[5] == 2  # the tie counts against the query
    assert (ranks[torch.arange(60) != 5] == 1).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_score_error_bound_holds(dtype):
    generator = torch.Generator().manual_seed(3)
    dim = 256
    x = F.normalize(torch.randn(300, dim, generator=generator), dim=-1)
    y = F.normalize(torch.randn(300, dim, generator=generator), dim=-1)
    y[:100] = F.normalize(x[:100] + 0.05 * y[:100], dim=-1)  # cosines ~1
    low = (x.to(dtype) @ y.to(dtype).T).double()
    exact = x.double() @ y.double().T
    error = (low - exact).abs().max().item()
    bound = score_error_bound(dtype, dim)
    assert error <= bound
    assert error > bound / 20  # the bound is not vacuous


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be"):
        topk_search(torch.ones(2, 3), torch.ones(4, 3), 1, precision="fp8")
