"""Tests for ``speechbrain_sense.backpack.language_modeling`` and the
pretrained-config reader."""

import math

import pytest
import torch
import torch.nn.functional as F

from speechbrain_sense.backpack import BackpackConfig, BackpackLM
from speechbrain_sense.backpack.language_modeling import (
    lengths_to_mask,
    next_token_loss,
    next_token_nll,
    pack_blocks,
    warmup_cosine,
    warmup_linear,
)


def test_lengths_to_mask_matches_padded_batch():
    from speechbrain.dataio.batch import PaddedBatch

    batch = PaddedBatch(
        [
            {"x": torch.tensor([1, 2, 3])},
            {"x": torch.tensor([4])},
            {"x": torch.tensor([5, 6, 7, 8, 9, 10, 11])},
        ]
    )
    ids, lengths = batch.x
    mask = lengths_to_mask(lengths, ids.shape[1])
    assert mask.sum(dim=1).tolist() == [3, 1, 7]
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0]


def test_next_token_loss_and_nll_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6)
    ids = torch.tensor([[1, 2, 3, 4], [5, 0, 1, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    # Targets are ids[:, 1:] read at positions 0..T-2; the pad target goes.
    terms = []
    for b, t in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]:
        terms.append(-F.log_softmax(logits[b, t], -1)[ids[b, t + 1]])
    want = torch.stack(terms)
    loss = next_token_loss(logits, ids, mask)
    torch.testing.assert_close(loss, want.mean())
    total, count = next_token_nll(logits, ids, mask)
    assert count == 5
    assert total == pytest.approx(want.sum().item(), rel=1e-6)
    # Smoothing moves the loss towards the uniform cross-entropy.
    smooth = next_token_loss(logits, ids, mask, smoothing=1.0)
    uniform = torch.stack(
        [
            -F.log_softmax(logits[b, t], -1).mean()
            for b, t in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
        ]
    ).mean()
    torch.testing.assert_close(smooth, uniform)


def test_pack_blocks():
    blocks = pack_blocks([[2, 10, 11, 3], [2, 12, 3], [2, 13, 14, 15, 3]], 5)
    assert blocks.tolist() == [[2, 10, 11, 3, 2], [12, 3, 2, 13, 14]]
    assert pack_blocks([[1, 2]], 3).shape == (0, 3)


def test_warmup_cosine_shape():
    assert warmup_cosine(0.0, warmup=0.1) == 0.0
    assert warmup_cosine(0.05, warmup=0.1) == pytest.approx(0.5)
    assert warmup_cosine(0.1, warmup=0.1) == pytest.approx(1.0)
    mid = 0.1 + 0.9 / 2
    assert warmup_cosine(mid, 0.1, final_scale=0.0) == pytest.approx(0.5)
    assert warmup_cosine(1.0, 0.1, final_scale=0.2) == pytest.approx(0.2)
    assert warmup_cosine(5.0, 0.1, final_scale=0.2) == pytest.approx(0.2)
    grid = [warmup_cosine(0.1 + 0.9 * i / 50, 0.1) for i in range(51)]
    assert all(a >= b for a, b in zip(grid, grid[1:]))
    assert warmup_cosine(0.5, warmup=0.0) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))
    )


@pytest.mark.parametrize(
    "progress, want",
    [(0.0, 0.0), (0.01, 0.5), (0.02, 1.0), (0.51, 0.5), (1.0, 0.0)],
)
def test_warmup_linear_known_values(progress, want):
    """2% warm-up (the SENSIA authors' run), then linear decay to 0."""
    assert warmup_linear(progress, warmup=0.02) == pytest.approx(want)


def test_warmup_linear_shape_and_final_scale():
    assert warmup_linear(0.51, 0.02, final_scale=0.1) == pytest.approx(0.55)
    assert warmup_linear(1.0, 0.02, final_scale=0.1) == pytest.approx(0.1)
    assert warmup_linear(-1.0) == 0.0 and warmup_linear(3.0) == 0.0
    assert warmup_linear(0.5, warmup=0.0) == pytest.approx(0.5)
    grid = [warmup_linear(0.02 + 0.98 * i / 50) for i in range(51)]
    # Equal steps down: a straight line.
    steps = [a - b for a, b in zip(grid, grid[1:])]
    assert steps == pytest.approx([1 / 50] * 50)


def test_warmup_linear_is_the_transformers_schedule():
    """The authors' get_scheduler("linear", 2% of 150k warm-up steps)."""
    transformers = pytest.importorskip("transformers")
    total, warmup_steps = 150_000, int(150_000 * 0.02)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = transformers.get_linear_schedule_with_warmup(
        optimizer, warmup_steps, total
    )
    lr_lambda = schedule.lr_lambdas[0]
    for step in (0, 1, 1500, 2999, 3000, 3001, 76_500, 149_999, total):
        assert warmup_linear(step / total, warmup=0.02) == pytest.approx(
            lr_lambda(step), abs=1e-12
        )


def test_config_from_pretrained(tmp_path):
    cfg = BackpackConfig(
        vocab_size=40,
        n_positions=8,
        n_embd=8,
        n_layer=1,
        n_head=2,
        num_senses=2,
    )
    BackpackLM(cfg).save_pretrained(tmp_path)
    assert BackpackConfig.from_pretrained(tmp_path) == cfg
    again = BackpackConfig.from_pretrained(tmp_path / "config.json", dropout=0)
    assert again.dropout == 0 and again.n_embd == 8
