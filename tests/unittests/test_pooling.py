"""Tests for length-masked attentive pooling and the SENSE embedding head."""

import pytest
import torch

from speechbrain_sense.encoders.pooling import (
    AttentivePooling,
    SenseEmbeddingHead,
    masked_softmax,
)

LENGTHS = (7, 3, 5)
PADDED = 9
DIM = 6


def _padded_batch(fill, seed=0):
    """Random frames for ``LENGTHS``, padded to ``PADDED`` with ``fill``."""
    generator = torch.Generator().manual_seed(seed)
    frames = torch.randn(len(LENGTHS), PADDED, DIM, generator=generator)
    for b, n in enumerate(LENGTHS):
        if fill == "large":
            frames[b, n:] = 1e4 * torch.rand(
                PADDED - n, DIM, generator=generator
            )
        elif fill == "nan":
            frames[b, n:] = float("nan")
        elif fill == "inf":
            frames[b, n:] = float("inf")
            frames[b, n:, ::2] = float("-inf")
    return frames, torch.tensor(LENGTHS)


@pytest.fixture
def pool():
    torch.manual_seed(0)
    return AttentivePooling(DIM)


# --------------------------------------------------------------------------
# masked_softmax / AttentivePooling
# --------------------------------------------------------------------------


def test_masked_softmax_known_values():
    scores = torch.tensor([[0.0, 1.0, 5.0], [2.0, 2.0, 2.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = masked_softmax(scores, mask)
    e = torch.e
    expected = torch.tensor([[1 / (1 + e), e / (1 + e), 0.0], [0.0] * 3])
    torch.testing.assert_close(out, expected)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_broken_real_frame_breaks_only_its_utterance(pool, bad):
    # NaN/inf on a real frame must reach the output (and training's NaN
    # guard), not be zeroed into a plausible embedding; the other
    # utterances of the batch, and padding anywhere, are unaffected.
    frames, counts = _padded_batch("nan")
    with torch.no_grad():
        clean = pool(frames, counts)
        frames[1, 1, 0] = bad
        broken = pool(frames, counts)
        weights = pool.attention_weights(frames, counts)
    assert not torch.isfinite(broken[1]).all()
    if bad != bad:  # NaN: its score, hence the whole softmax row, is NaN
        assert torch.isnan(weights[1]).all()
    torch.testing.assert_close(broken[[0, 2]], clean[[0, 2]])
    assert torch.isfinite(weights[[0, 2]]).all()


def test_masked_softmax_keeps_nan_of_real_scores():
    scores = torch.tensor([[0.0, float("nan"), 1.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    out = masked_softmax(scores, mask)
    assert torch.isnan(out[0]).all()
    torch.testing.assert_close(out[1], torch.tensor([0.5, 0.5, 0.0]))


@pytest.mark.parametrize("fill", ["large", "nan", "inf"])
def test_pooling_ignores_padding(pool, fill):
    frames, counts = _padded_batch(fill)
    with torch.no_grad():
        batched = pool(frames, counts)
        weights = pool.attention_weights(frames, counts)
        assert torch.isfinite(batched).all()
        for b, n in enumerate(LENGTHS):
            alone = pool(frames[b : b + 1, :n], torch.tensor([n]))
            torch.testing.assert_close(
                batched[b : b + 1], alone, atol=1e-5, rtol=0
            )
            # exactly zero on padding, a proper distribution on real frames
            assert (weights[b, n:] == 0).all()
            assert (weights[b, :n] > 0).all()
            assert weights[b].sum().item() == pytest.approx(1.0, abs=1e-6)


def test_pooling_invariant_to_padding_content(pool):
    with torch.no_grad():
        outs = [pool(*_padded_batch(fill)) for fill in ("large", "nan")]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-6, rtol=0)


def test_pooling_matches_hand_computed_softmax(pool):
    torch.manual_seed(1)
    frames = torch.randn(1, 4, DIM)
    with torch.no_grad():
        w = pool.attn_pooling_w.weight[0]
        b = pool.attn_pooling_w.bias[0]
        scores = [float(frames[0, t] @ w + b) for t in range(4)]
        exp = [pow(2.718281828459045, s - max(scores)) for s in scores]
        alpha = [x / sum(exp) for x in exp]
        expected = sum(a * frames[0, t] for t, a in enumerate(alpha))
        out = pool(frames, torch.tensor([4]))
        weights = pool.attention_weights(frames, torch.tensor([4]))
    torch.testing.assert_close(out[0], expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        weights[0], torch.tensor(alpha), atol=1e-6, rtol=1e-5
    )


def test_zero_length_utterance_pools_to_zero(pool):
    frames = torch.randn(2, 3, DIM)
    with torch.no_grad():
        out = pool(frames, torch.tensor([3, 0]))
    assert torch.equal(out[1], torch.zeros(DIM))


def test_pooling_gradient_ignores_padding(pool):
    frames, counts = _padded_batch("large")
    frames.requires_grad_(True)
    pool(frames, counts).sum().backward()
    for b, n in enumerate(LENGTHS):
        assert (frames.grad[b, n:] == 0).all()
        assert frames.grad[b, :n].abs().sum() > 0


# --------------------------------------------------------------------------
# precision
# --------------------------------------------------------------------------


def test_bf16_module_and_input_give_float32_close_to_float32(pool):
    frames, counts = _padded_batch("large")
    with torch.no_grad():
        reference = pool(frames, counts)
        low = AttentivePooling(DIM)
        low.load_state_dict(pool.state_dict())
        low = low.to(torch.bfloat16)
        out = low(frames.to(torch.bfloat16), counts)
        weights = low.attention_weights(frames.to(torch.bfloat16), counts)
    assert out.dtype == torch.float32
    assert weights.dtype == torch.float32
    torch.testing.assert_close(out, reference, atol=1e-2, rtol=1e-2)
    for b, n in enumerate(LENGTHS):
        assert (weights[b, n:] == 0).all()


def test_pooling_under_bf16_autocast_returns_float32(pool):
    frames, counts = _padded_batch("large")
    with torch.no_grad():
        reference = pool(frames, counts)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = pool(frames.to(torch.bfloat16), counts)
    torch.testing.assert_close(out.float(), reference, atol=1e-2, rtol=1e-2)
    assert out.dtype == torch.float32


def test_head_with_projection_under_bf16_autocast():
    torch.manual_seed(0)
    head = SenseEmbeddingHead(DIM, 4)
    frames, counts = _padded_batch("large")
    with torch.no_grad():
        reference = head(frames, counts)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = head(frames.to(torch.bfloat16), counts)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference, atol=1e-2, rtol=1e-2)


def test_bf16_head_with_projection():
    torch.manual_seed(0)
    head = SenseEmbeddingHead(DIM, 4)
    frames, counts = _padded_batch("large")
    with torch.no_grad():
        reference = head(frames, counts)
        out = head.to(torch.bfloat16)(frames.to(torch.bfloat16), counts)
    torch.testing.assert_close(out.float(), reference, atol=2e-2, rtol=2e-2)


# --------------------------------------------------------------------------
# SenseEmbeddingHead
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output_dim", "projection", "layers", "out_dim"),
    [
        (None, "none", 0, DIM),
        (DIM, "none", 0, DIM),
        # equal widths still get the projection they ask for
        (None, "linear_tanh", 2, DIM),
        (DIM, "linear", 1, DIM),
        (4, "linear_tanh", 2, 4),
        (10, "linear", 1, 10),
    ],
)
def test_head_structure_is_the_one_asked_for(
    output_dim, projection, layers, out_dim
):
    torch.manual_seed(0)
    head = SenseEmbeddingHead(DIM, output_dim, projection=projection)
    assert head.projection_type == projection
    assert head.output_dim == out_dim
    frames, counts = _padded_batch("nan")
    with torch.no_grad():
        emb = head(frames, counts)
    assert emb.shape == (3, out_dim)
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    if layers == 0:
        assert head.projection is None
        return
    assert len(head.projection) == layers
    assert isinstance(head.projection[0], torch.nn.Linear)
    assert head.projection[0].in_features == DIM
    assert head.projection[0].out_features == out_dim
    tanh = isinstance(head.projection[-1], torch.nn.Tanh)
    assert tanh == (projection == "linear_tanh")
    # the same keys whether a tanh follows or not (checkpoints interchange)
    assert {k for k in head.state_dict() if k.startswith("projection")} == {
        "projection.0.weight",
        "projection.0.bias",
    }


def test_head_default_is_the_papers_projection_and_tanh():
    head = SenseEmbeddingHead(DIM, DIM)
    assert head.projection_type == "linear_tanh"
    assert isinstance(head.projection[-1], torch.nn.Tanh)


def test_head_equals_pool_project_normalise():
    torch.manual_seed(0)
    head = SenseEmbeddingHead(DIM, 4)
    frames, counts = _padded_batch("inf")
    with torch.no_grad():
        pooled = head.pooling(frames, counts)
        linear = head.projection[0]
        expected = torch.tanh(pooled @ linear.weight.T + linear.bias)
        expected = expected / expected.norm(dim=-1, keepdim=True)
        torch.testing.assert_close(head(frames, counts), expected)


def test_head_linear_has_no_tanh():
    torch.manual_seed(0)
    head = SenseEmbeddingHead(DIM, 4, projection="linear")
    assert not any(isinstance(m, torch.nn.Tanh) for m in head.modules())
    frames, counts = _padded_batch("large")
    with torch.no_grad():
        pooled = head.pooling(frames, counts)
        expected = head.projection[0](pooled)
        expected = expected / expected.norm(dim=-1, keepdim=True)
        torch.testing.assert_close(head(frames, counts), expected)


def test_head_without_projection_is_normalised_pooling():
    torch.manual_seed(0)
    head = SenseEmbeddingHead(DIM, projection="none")
    frames, counts = _padded_batch("large")
    with torch.no_grad():
        pooled = head.pooling(frames, counts)
        torch.testing.assert_close(
            head(frames, counts), pooled / pooled.norm(dim=-1, keepdim=True)
        )


def test_head_none_with_unequal_widths_is_refused():
    with pytest.raises(ValueError, match="projection none .* 4-d"):
        SenseEmbeddingHead(DIM, 4, projection="none")


@pytest.mark.parametrize("projection", ["tanh", "Linear", None, "", True])
def test_head_invalid_projection(projection):
    with pytest.raises(ValueError, match="projection must be one of"):
        SenseEmbeddingHead(DIM, 4, projection=projection)


def test_head_keeps_upstream_parameter_name():
    head = SenseEmbeddingHead(DIM, 4)
    keys = set(head.state_dict())
    assert "pooling.attn_pooling_w.weight" in keys
    assert "pooling.attn_pooling_w.bias" in keys


# --------------------------------------------------------------------------
# the whole student path
# --------------------------------------------------------------------------


def test_student_path_padding_invariant(tiny_w2v_bert_dir):
    from speechbrain_sense.encoders.w2v_bert import (
        SenseW2VBert,
        W2VBertFeatures,
    )

    source = str(tiny_w2v_bert_dir)
    encoder = SenseW2VBert(source, save_path=source).eval()
    featurize = W2VBertFeatures(source)
    torch.manual_seed(0)
    head = SenseEmbeddingHead(encoder.output_dim, 16).eval()
    generator = torch.Generator().manual_seed(3)
    waves = [
        0.1 * torch.randn(int(seconds * 16000), generator=generator)
        for seconds in (0.5, 1.3, 2.1)
    ]
    feats = [featurize(w) for w in waves]
    counts = torch.tensor([f.shape[0] for f in feats])
    assert counts.tolist() == [24, 64, 104]
    batch = torch.full((3, int(counts.max()), 160), 7.0)
    for b, f in enumerate(feats):
        batch[b, : f.shape[0]] = f
    with torch.no_grad():
        batched = head(encoder.forward_features(batch, counts), counts)
        for b, f in enumerate(feats):
            n = torch.tensor([f.shape[0]])
            alone = head(encoder.forward_features(f[None], n), n)
            torch.testing.assert_close(
                batched[b : b + 1], alone, atol=1e-5, rtol=0
            )
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize(
    ("output_dim", "activation", "force", "projection"),
    [
        (None, "tanh", None, "none"),  # equal widths: no projection
        (DIM, None, False, "none"),
        (DIM, "tanh", True, "linear_tanh"),
        (DIM, "none", True, "linear"),
        (4, "tanh", None, "linear_tanh"),
        (4, "none", None, "linear"),
    ],
)
def test_head_0_1_0_arguments_build_the_0_1_0_structure(
    output_dim, activation, force, projection
):
    """Model folders exported by 0.1.0 name this class with them."""
    with pytest.warns(FutureWarning, match="deprecated"):
        head = SenseEmbeddingHead(
            DIM, output_dim, activation=activation, force_projection=force
        )
    assert head.projection_type == projection
