"""Tests for ``speechbrain_sense.sensia.losses``."""

import math

import pytest
import torch
import torch.nn.functional as F

from speechbrain_sense.sensia.losses import (
    ALIGN_WEIGHTS,
    JOINT_WEIGHTS,
    POLISH_WEIGHTS,
    curriculum_weights,
    gathered_info_nce,
    info_nce,
    label_smoothed_lm_loss,
    last_token_state,
    sense_entropy,
    sense_mixture_pooling,
)

# ----------------------------------------------------------------------
# InfoNCE
# ----------------------------------------------------------------------


def test_info_nce_hand_computed_2x2():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # a @ b.T = [[1, .6], [0, .8]]; each row's CE is log(1 + e^(neg - pos)).
    a_to_b = (math.log1p(math.exp(-0.4)) + math.log1p(math.exp(-0.8))) / 2
    # Columns: [1, 0] with positive 1 and [.6, .8] with positive .8.
    b_to_a = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-0.2))) / 2
    got = info_nce(a, b, temperature=1.0, symmetric=False)
    assert got.item() == pytest.approx(a_to_b, abs=1e-6)
    got = info_nce(a, b, temperature=1.0)
    assert got.item() == pytest.approx((a_to_b + b_to_a) / 2, abs=1e-6)
    # Temperature divides the similarities.
    half = info_nce(a, b, temperature=0.5, symmetric=False)
    want = (math.log1p(math.exp(-0.8)) + math.log1p(math.exp(-1.6))) / 2
    assert half.item() == pytest.approx(want, abs=1e-6)


def test_info_nce_matches_naive_loop():
    torch.manual_seed(0)
    a = F.normalize(torch.randn(5, 7, dtype=torch.float64), dim=-1)
    b = F.normalize(torch.randn(5, 7, dtype=torch.float64), dim=-1)
    tau = 0.07

    def one_way(x, y):
        total = 0.0
        for i in range(len(x)):
            sims = [float(x[i] @ y[j]) / tau for j in range(len(y))]
            log_z = math.log(sum(math.exp(s) for s in sims))
            total += log_z - sims[i]
        return total / len(x)

    want = 0.5 * (one_way(a, b) + one_way(b, a))
    # The shared info_nce computes in float32.
    assert info_nce(a, b, tau).item() == pytest.approx(want, rel=1e-5)
    assert info_nce(a, b, tau, symmetric=False).item() == pytest.approx(
        one_way(a, b), rel=1e-5
    )
    # Rows are L2-normalised inside: scaling them changes nothing.
    assert info_nce(3 * a, 0.5 * b, tau).item() == pytest.approx(want, rel=1e-5)


def test_info_nce_is_the_package_one():
    from speechbrain_sense.training import losses

    assert info_nce is losses.info_nce


# ----------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------


def test_sense_mixture_pooling_matches_loops():
    torch.manual_seed(0)
    B, K, T, d = 2, 3, 4, 5
    senses = torch.randn(B, K, T, d, dtype=torch.float64)
    alpha = torch.softmax(torch.randn(B, K, T, T, dtype=torch.float64), -1)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    tau = 0.7
    pooled, weights = sense_mixture_pooling(senses, alpha, mask, tau)
    for b in range(B):
        acc, n = torch.zeros(d, dtype=torch.float64), 0
        for t in range(T):
            contrib = [
                sum(alpha[b, k, t, s] * senses[b, k, s] for s in range(T))
                for k in range(K)
            ]
            norms = torch.stack([c.norm() for c in contrib]) / tau
            p = torch.softmax(norms, 0)
            torch.testing.assert_close(weights[b, :, t], p.float())
            if mask[b, t]:
                acc += sum(p[k] * contrib[k] for k in range(K))
                n += 1
        want = acc / n
        torch.testing.assert_close(
            pooled[b], (want / want.norm()).float(), atol=1e-6, rtol=0
        )


def test_sense_mixture_pooling_ignores_padding_content():
    torch.manual_seed(0)
    senses = torch.randn(1, 2, 5, 4)
    alpha = torch.softmax(torch.randn(1, 2, 5, 5), -1).tril()
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    pooled, _ = sense_mixture_pooling(senses, alpha, mask)
    # Real targets only read real sources (causal alpha), so the padded
    # tail of both tensors may hold anything.
    senses2, alpha2 = senses.clone(), alpha.clone()
    senses2[:, :, 3:] = 100.0
    alpha2[:, :, 3:] = 0.3
    pooled2, _ = sense_mixture_pooling(senses2, alpha2, mask)
    torch.testing.assert_close(pooled, pooled2)


@pytest.mark.parametrize(
    "mask, want",
    [
        ([[1, 1, 1, 0], [1, 1, 1, 1]], [2, 3]),  # right padding
        ([[0, 0, 1, 1], [0, 1, 1, 1]], [3, 3]),  # left padding
        (None, [3, 3]),
    ],
)
def test_last_token_state(mask, want):
    hidden = torch.randn(2, 4, 6)
    got = last_token_state(hidden, None if mask is None else torch.tensor(mask))
    expect = F.normalize(hidden[torch.arange(2), torch.tensor(want)], dim=-1)
    torch.testing.assert_close(got, expect)


# ----------------------------------------------------------------------
# LM loss and entropy
# ----------------------------------------------------------------------


def test_label_smoothed_lm_loss_formula():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, dtype=torch.float64)
    targets = torch.tensor([[1, 4, 0], [5, 2, 3]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    eps = 0.1
    total, n = 0.0, 0
    for b in range(2):
        for t in range(3):
            if not mask[b, t]:
                continue
            logp = torch.log_softmax(logits[b, t], -1)
            nll = -logp[targets[b, t]]
            total += (1 - eps) * nll - eps * logp.mean()
            n += 1
    got = label_smoothed_lm_loss(logits, targets, mask, smoothing=eps)
    assert got.item() == pytest.approx(float(total / n), rel=1e-10)


def test_label_smoothed_lm_loss_ignore_index_and_empty():
    logits = torch.randn(1, 3, 5)
    targets = torch.tensor([[2, -100, -100]])
    want = F.cross_entropy(logits[0, :1], targets[0, :1])
    torch.testing.assert_close(label_smoothed_lm_loss(logits, targets), want)
    none = torch.zeros(1, 3)
    assert label_smoothed_lm_loss(logits, targets.clamp(0), none).item() == 0


def test_sense_entropy():
    uniform = torch.full((2, 4, 3), 0.25)  # [B, K, T]
    torch.testing.assert_close(
        sense_entropy(uniform), torch.full((2, 3), math.log(4))
    )
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])  # [T, K]
    torch.testing.assert_close(
        sense_entropy(p, dim=-1), torch.tensor([math.log(2), 0.0])
    )
    # Masked mean over real positions: five uniform mixtures, one one-hot,
    # and one padded position that must not count.
    weights = uniform.clone()
    weights[1, :, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    weights[1, :, 1] = torch.tensor([0.7, 0.1, 0.1, 0.1])
    mask = torch.tensor([[1, 1, 1], [1, 0, 1]])
    got = sense_entropy(weights, mask)
    assert got.item() == pytest.approx(4 * math.log(4) / 5, abs=1e-6)


# ----------------------------------------------------------------------
# Curriculum
# ----------------------------------------------------------------------


def test_curriculum_phase_boundaries():
    raw = {"normalize": False}
    assert curriculum_weights(0.0, **raw) == ALIGN_WEIGHTS
    assert curriculum_weights(0.2, **raw) == JOINT_WEIGHTS
    assert curriculum_weights(0.5, **raw) == POLISH_WEIGHTS
    assert curriculum_weights(1.0, **raw) == POLISH_WEIGHTS
    assert curriculum_weights(0.8, **raw) == POLISH_WEIGHTS
    # Out-of-range progress is clipped.
    assert curriculum_weights(-1.0, **raw) == ALIGN_WEIGHTS
    assert curriculum_weights(3.0, **raw) == POLISH_WEIGHTS
    # Midway through a phase the half-cosine is exactly halfway.
    mid = curriculum_weights(0.1, **raw)
    for k in mid:
        assert mid[k] == pytest.approx(
            (ALIGN_WEIGHTS[k] + JOINT_WEIGHTS[k]) / 2
        )


def test_curriculum_phase_character():
    align, joint, polish = (curriculum_weights(p) for p in (0.0, 0.2, 0.9))
    assert align["lm"] < 0.05 < align["context"] + align["sense"]
    assert joint["lm"] > align["lm"] and joint["context"] > 0.3
    assert polish["lm"] > polish["context"] + polish["sense"]
    for w in (align, joint, polish):
        assert sum(w.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("normalize", [True, False])
def test_curriculum_continuous_at_boundaries(normalize):
    for boundary in (0.2, 0.5):
        before = curriculum_weights(boundary - 1e-9, normalize=normalize)
        after = curriculum_weights(boundary, normalize=normalize)
        for k in before:
            assert before[k] == pytest.approx(after[k], abs=1e-6)


@pytest.mark.parametrize("normalize", [True, False])
def test_curriculum_ramps_are_monotone(normalize):
    for lo, hi in ((0.0, 0.2), (0.2, 0.5)):
        grid = [lo + (hi - lo) * i / 200 for i in range(201)]
        values = [curriculum_weights(p, normalize=normalize) for p in grid]
        for k in values[0]:
            series = [v[k] for v in values]
            diffs = [b - a for a, b in zip(series, series[1:])]
            assert all(d >= -1e-12 for d in diffs) or all(
                d <= 1e-12 for d in diffs
            ), (k, lo, hi)


def test_curriculum_custom_phases_and_validation():
    w = curriculum_weights(
        0.5,
        phases=(0.5, 0.25, 0.25),
        align={"x": 1.0},
        joint={"x": 3.0},
        polish={"x": 5.0},
        normalize=False,
    )
    assert w == {"x": 3.0}
    with pytest.raises(ValueError, match="sum to 1"):
        curriculum_weights(0.1, phases=(0.2, 0.2, 0.2))
    with pytest.raises(ValueError, match="same keys"):
        curriculum_weights(0.1, align={"x": 1.0})


# ----------------------------------------------------------------------
# InfoNCE with negatives from every DDP rank
# ----------------------------------------------------------------------


def naive_info_nce(a, b, tau):
    """Symmetric InfoNCE by loops: row i of ``a`` is paired with row i of
    ``b``, every other row of the other side is a negative."""
    a, b = (F.normalize(x.detach().double(), dim=-1) for x in (a, b))

    def one_way(x, y):
        total = 0.0
        for i in range(len(x)):
            sims = [float(x[i] @ y[j]) / tau for j in range(len(y))]
            total += math.log(sum(math.exp(v) for v in sims)) - sims[i]
        return total / len(x)

    return 0.5 * (one_way(a, b) + one_way(b, a))


def rank_gather(rank, shards):
    """What ``gather_with_grad`` returns on ``rank``: the ranks' rows in
    rank order, only the local ones carrying a gradient.

    Arguments
    ---------
    rank : int
        The simulated rank.
    shards : dict
        Side name -> one ``[B_r, D]`` tensor per rank.

    Returns
    -------
    callable
        The ``gather`` argument of ``gathered_info_nce``.
    """

    def gather(local):
        (parts,) = [p for p in shards.values() if p[rank] is local]
        return torch.cat(
            [local if r == rank else p.detach() for r, p in enumerate(parts)]
        )

    return gather


def test_gathered_info_nce_without_ddp_is_info_nce():
    """One process: the same loss and gradients, bit for bit."""
    torch.manual_seed(0)
    q = torch.randn(6, 8, requires_grad=True)
    k = torch.randn(6, 8, requires_grad=True)
    for symmetric in (True, False):
        got = gathered_info_nce(q, k, 0.07, symmetric)
        want = info_nce(q, k, 0.07, symmetric)
        assert torch.equal(got, want)
        got_grads = torch.autograd.grad(got, (q, k))
        want_grads = torch.autograd.grad(want, (q, k))
        for g, w in zip(got_grads, want_grads):
            assert torch.equal(g, w)


def test_gathered_info_nce_is_the_loss_of_the_concatenated_batch():
    """Three simulated ranks of 2, 3 and 4 pairs: each rank's loss is the
    hand-computed InfoNCE of the 9 pairs, the positives of rank r's pairs
    at rows offset_r + i; its local rows get that loss's gradient."""
    torch.manual_seed(0)
    sizes = (2, 3, 4)
    shards = {
        side: [torch.randn(n, 5, requires_grad=True) for n in sizes]
        for side in ("src", "tgt")
    }
    src, tgt = (torch.cat(shards[side]) for side in ("src", "tgt"))
    want = naive_info_nce(src, tgt, 0.05)
    # The single-process gradient on the concatenated batch.
    whole = [x.detach().clone().requires_grad_() for x in (src, tgt)]
    whole_grads = torch.autograd.grad(info_nce(*whole, 0.05), whole)
    offset = 0
    for rank, n in enumerate(sizes):
        local = (shards["src"][rank], shards["tgt"][rank])
        loss = gathered_info_nce(
            *local, temperature=0.05, gather=rank_gather(rank, shards)
        )
        assert loss.item() == pytest.approx(want, rel=1e-5)
        for grad, full in zip(torch.autograd.grad(loss, local), whole_grads):
            torch.testing.assert_close(grad, full[offset : offset + n])
        offset += n
    # Each rank's own InfoNCE (no gathering) is another, larger loss: the
    # gathered batch has more negatives.
    alone = info_nce(shards["src"][2], shards["tgt"][2], 0.05).item()
    assert alone != pytest.approx(want, rel=1e-3)


def test_sense_mixture_pooling_stays_fp32_under_autocast():
    """Mixed-precision training (the paper config's fp16) must not lower
    the sense products: under CPU bf16 autocast the result is fp32's."""
    torch.manual_seed(0)
    senses = torch.randn(2, 4, 6, 16) * 3
    alpha = torch.softmax(torch.randn(2, 4, 6, 6), -1)
    mask = torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0]])
    want, want_weights = sense_mixture_pooling(senses, alpha, mask, 0.7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, weights = sense_mixture_pooling(senses, alpha, mask, 0.7)
    assert got.dtype == weights.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(weights, want_weights, atol=1e-6, rtol=0)
