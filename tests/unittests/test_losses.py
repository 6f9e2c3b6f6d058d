"""Tests for the alignment objectives."""

import math

import pytest
import torch

from speechbrain_sense.training.losses import cosine_alignment_loss, info_nce


def test_cosine_loss_known_values():
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
    assert cosine_alignment_loss(a, a).item() == pytest.approx(0, abs=1e-6)
    # invariant to the scale of either side
    assert cosine_alignment_loss(a, 7 * a).item() == pytest.approx(0, abs=1e-6)
    assert cosine_alignment_loss(a, -a).item() == pytest.approx(2.0)
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert cosine_alignment_loss(
        orthogonal, orthogonal.flip(0)
    ).item() == pytest.approx(1.0)
    # mean over rows: (0 + 2) / 2, then scaled
    b = torch.stack([a[0], -a[1]])
    assert cosine_alignment_loss(a, b).item() == pytest.approx(1.0)
    assert cosine_alignment_loss(a, b, scale=3.0).item() == pytest.approx(3.0)
    # 60 degrees: 1 - 1/2
    x = torch.tensor([[1.0, 0.0]])
    y = torch.tensor([[0.5, math.sqrt(3) / 2]])
    assert cosine_alignment_loss(x, y).item() == pytest.approx(0.5)


def test_cosine_loss_dtype_and_gradient():
    student = torch.randn(4, 6, dtype=torch.bfloat16, requires_grad=True)
    teacher = torch.randn(4, 6)
    loss = cosine_alignment_loss(student, teacher)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    loss.backward()
    assert student.grad is not None and student.grad.dtype == torch.bfloat16


def naive_info_nce(queries, keys, temperature, symmetric):
    def cos(u, v):
        return float(u @ v / (u.norm() * v.norm()))

    n = len(queries)

    def one_direction(a, b):
        total = 0.0
        for i in range(n):
            logits = [cos(a[i], b[j]) / temperature for j in range(n)]
            log_z = math.log(sum(math.exp(x) for x in logits))
            total += log_z - logits[i]
        return total / n

    forward = one_direction(queries, keys)
    if not symmetric:
        return forward
    return 0.5 * (forward + one_direction(keys, queries))


@pytest.mark.parametrize("temperature", [1.0, 0.1, 0.05])
@pytest.mark.parametrize("symmetric", [True, False])
def test_info_nce_matches_naive_loop(temperature, symmetric):
    generator = torch.Generator().manual_seed(7)
    queries = torch.randn(4, 3, generator=generator) * 2
    keys = torch.randn(4, 3, generator=generator)
    loss = info_nce(queries, keys, temperature, symmetric=symmetric)
    expected = naive_info_nce(queries, keys, temperature, symmetric)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_info_nce_direction_matters():
    generator = torch.Generator().manual_seed(3)
    queries = torch.randn(4, 3, generator=generator)
    keys = torch.randn(4, 3, generator=generator)
    forward = info_nce(queries, keys, 0.5, symmetric=False)
    backward = info_nce(keys, queries, 0.5, symmetric=False)
    assert not math.isclose(forward.item(), backward.item(), rel_tol=1e-3)
    symmetric = info_nce(queries, keys, 0.5)
    assert symmetric.item() == pytest.approx(
        0.5 * (forward.item() + backward.item()), rel=1e-6
    )
    assert symmetric.item() == pytest.approx(
        info_nce(keys, queries, 0.5).item(), rel=1e-6
    )


def test_info_nce_perfect_and_uniform():
    eye = torch.eye(3)
    # perfect pairs, orthogonal negatives: -log(e^(1/t) / (e^(1/t) + 2))
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert info_nce(eye, eye, t).item() == pytest.approx(expected, rel=1e-6)
    # identical rows everywhere: chance, log B
    same = torch.ones(5, 4)
    assert info_nce(same, same, 0.1).item() == pytest.approx(math.log(5))
