"""Exact search over the float16 matrix gives the float32 answer."""

import numpy as np
import pytest
import torch

from speechbrain_sense.search.query import exact_unit_topk, search_matrix


def _unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _dense_matrix(count, dim, seed=0):
    """Rows packed close together, so that float16 scores tie often and
    the first candidates cannot prove the answer (retries happen)."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal(dim)
    rows = centre + 0.05 * rng.standard_normal((count, dim))
    return _unit(rows).astype(np.float16), centre


@pytest.mark.parametrize("k", [1, 10, 300])
def test_the_answer_is_the_float32_one(k):
    matrix, centre = _dense_matrix(5000, 64)
    queries = torch.from_numpy(
        _unit(centre + 0.05 * np.random.default_rng(1).standard_normal((4, 64)))
    ).float()
    scores, rows = exact_unit_topk(queries, matrix, k, block_size=700)
    reference = torch.from_numpy(matrix.astype(np.float32)) @ queries.T
    for i in range(len(queries)):
        order = torch.sort(reference[:, i], descending=True, stable=True)
        # The same rows in the same order, up to rows whose float32 scores
        # differ by less than the summation order of two BLAS calls does.
        assert torch.allclose(
            reference[rows[i], i], order.values[:k], atol=1e-6
        )
        assert torch.allclose(scores[i], order.values[:k], atol=1e-6)
        assert len(set(rows[i].tolist())) == k


def test_ties_go_to_the_lower_row_and_k_is_capped():
    matrix = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float16)
    scores, rows = search_matrix(torch.tensor([[1.0, 0.0]]), matrix, 9)
    assert rows.tolist() == [[0, 2, 3, 1]]
    assert np.allclose(scores, [[1.0, 1.0, 0.6, 0.0]], atol=1e-3)
    empty = search_matrix(torch.ones(1, 2), matrix[:0], 5)
    assert empty[0].shape == (1, 0)
