"""Tests for ``speechbrain_sense.sensia.sense_collapse``: known answers and
invariants of the authors' sense-collapse probe."""

import math

import pytest
import torch

from speechbrain_sense.backpack.language_modeling import next_token_nll
from speechbrain_sense.sensia.analysis import analyze
from speechbrain_sense.sensia.sense_collapse import (
    collapsed_hidden,
    contribution_usage,
    mean_offdiagonal_cosine,
    sense_collapse,
    sense_contributions,
)


def noisy(model, scale=0.5):
    """The model with weights large enough that the modes differ."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, scale)
    return model


def test_contributions_sum_to_the_models_hidden_state(tiny_backpack):
    model = noisy(tiny_backpack())
    ids = torch.randint(0, 60, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    out = model(ids, attention_mask=mask, return_senses=True)
    c = sense_contributions(out.senses, out.contextualization)
    assert c.shape == (2, 4, 6, 16)
    torch.testing.assert_close(collapsed_hidden(c, "full"), out.hidden)
    # The authors' "uniform" is the full state over K.
    torch.testing.assert_close(collapsed_hidden(c, "uniform"), out.hidden / 4)


def test_top_k_keeps_the_largest_norm_contributions():
    # K = 3 at one position, norms 1, 3 and 2.
    c = torch.tensor([[[[1.0, 0.0]], [[0.0, 3.0]], [[2.0, 0.0]]]])
    torch.testing.assert_close(
        collapsed_hidden(c, "top_k", 1)[0, 0], torch.tensor([0.0, 3.0])
    )
    torch.testing.assert_close(
        collapsed_hidden(c, "top_k", 2)[0, 0], torch.tensor([1.0, 1.5])
    )
    torch.testing.assert_close(
        collapsed_hidden(c, "top_k", 3), collapsed_hidden(c, "uniform")
    )
    with pytest.raises(ValueError, match="top_k=4"):
        collapsed_hidden(c, "top_k", 4)
    with pytest.raises(ValueError, match="median"):
        collapsed_hidden(c, "median")
    with pytest.raises(ValueError, match="B, K, S, d"):
        sense_contributions(torch.zeros(2, 3), torch.zeros(1, 2, 3, 4))


def test_usage_shares_and_offdiagonal_cosine_known_answers():
    c = torch.tensor([[[[3.0, 4.0]], [[0.0, 1.0]]]])  # norms 5 and 1
    torch.testing.assert_close(
        contribution_usage(c)[0, :, 0], torch.tensor([5 / 6, 1 / 6])
    )
    # Two orthogonal senses at position 0, opposite ones at position 1.
    senses = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[0.0, 2.0], [-3.0, 0]]]])
    assert mean_offdiagonal_cosine(senses) == pytest.approx((0.0 - 1.0, 2.0))
    # A masked position does not count.
    mask = torch.tensor([[1, 0]])
    assert mean_offdiagonal_cosine(senses, mask) == pytest.approx((0.0, 1.0))
    with pytest.raises(ValueError, match="K >= 2"):
        mean_offdiagonal_cosine(torch.ones(1, 1, 2, 3))


def test_full_cross_entropy_is_the_models_own(tiny_backpack):
    model = noisy(tiny_backpack())
    ids = torch.randint(0, 60, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    out = sense_collapse(model, [(ids, mask)])
    total, n = next_token_nll(model(ids, attention_mask=mask).logits, ids)
    assert out["tokens"] == n == 18
    assert out["ce_full"] == pytest.approx(total / n, rel=1e-6)
    assert out["delta_top_k"] == out["ce_top_k"] - out["ce_full"]
    assert abs(out["delta_top_k"]) > 1e-4 and abs(out["delta_uniform"]) > 1e-4
    assert 0 < out["usage_entropy"] < out["max_entropy"] == math.log(4)
    assert -1 <= out["offdiag_cosine"] <= 1


def test_padding_and_batching_do_not_change_the_figures(tiny_backpack):
    # The invariant the authors' script lacks: the same sentences give the
    # same figures alone or padded together in one batch.
    model = noisy(tiny_backpack(seed=1))
    a = torch.randint(0, 60, (1, 8))
    b = torch.randint(0, 60, (1, 5))
    alone = sense_collapse(
        model,
        [(a, torch.ones_like(a)), (b, torch.ones_like(b))],
        top_k=2,
    )
    ids = torch.zeros(2, 8, dtype=torch.long)
    ids[0], ids[1, :5] = a[0], b[0]
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    together = sense_collapse(model, [(ids, mask)], top_k=2)
    assert together.keys() == alone.keys()
    for key, value in alone.items():
        assert together[key] == pytest.approx(value, rel=1e-5), key


def test_one_sense_cannot_collapse(tiny_backpack):
    model = noisy(tiny_backpack(num_senses=1))
    ids = torch.randint(0, 60, (2, 5))
    out = sense_collapse(model, [(ids, torch.ones_like(ids))])
    assert out["delta_top_k"] == pytest.approx(0.0, abs=1e-6)
    assert out["delta_uniform"] == pytest.approx(0.0, abs=1e-6)
    assert out["usage_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert out["offdiag_cosine"] is None


def test_no_batches_is_an_error(tiny_backpack):
    with pytest.raises(ValueError, match="empty"):
        sense_collapse(tiny_backpack(), [])


def test_analyze_refuses_a_top_k_beyond_the_senses(tiny_backpack, tokenizer):
    model = tiny_backpack()
    with pytest.raises(ValueError, match="collapse_top_k=5: must be 1 to K=4"):
        analyze(
            model,
            model,
            tokenizer,
            [("cat", "chat")],
            ["le chat"],
            collapse_top_k=5,
        )
