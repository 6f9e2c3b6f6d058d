"""Tests for w2v-BERT frame arithmetic, worker-side features and the encoder."""

import random

import numpy as np
import pytest
import torch
from speechbrain.integrations.huggingface.w2v_bert import W2VBert

from speechbrain_sense.encoders.w2v_bert import (
    SenseW2VBert,
    W2VBertFeatures,
    frame_mask,
    w2v_bert_frame_count,
)

FIXED_LENGTHS = [
    400,
    559,
    560,
    719,
    720,
    879,
    880,
    16000,
    16159,
    16160,
    16161,
    16239,
    16240,
    33333,
]
RANDOM_LENGTHS = random.Random(1234).sample(range(560, 48000), 12)
LENGTHS = FIXED_LENGTHS + RANDOM_LENGTHS


@pytest.fixture(scope="module")
def extractor(tiny_w2v_bert_dir):
    from transformers import AutoFeatureExtractor

    return AutoFeatureExtractor.from_pretrained(str(tiny_w2v_bert_dir))


@pytest.fixture(scope="module")
def featurize(tiny_w2v_bert_dir):
    return W2VBertFeatures(tiny_w2v_bert_dir)


@pytest.fixture(scope="module")
def encoder(tiny_w2v_bert_dir):
    source = str(tiny_w2v_bert_dir)
    return SenseW2VBert(source, save_path=source).eval()


def _wave(num_samples, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(num_samples, generator=generator)


# --------------------------------------------------------------------------
# frame arithmetic
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_samples", "frames"),
    [
        (0, 0),
        (399, 0),
        (400, 0),  # one fbank frame, half a pair
        (559, 0),
        (560, 1),  # two fbank frames
        (719, 1),
        (720, 1),
        (880, 2),
        (16000, 49),
        (16160, 49),
        (16239, 49),
        (16240, 50),
        (32000, 99),
    ],
)
def test_frame_count_known_values(num_samples, frames):
    assert w2v_bert_frame_count(num_samples) == frames
    assert isinstance(w2v_bert_frame_count(num_samples), int)


# One fbank frame (400-559 samples) has no variance to normalise by.
SINGLE_FRAME_WARNINGS = [
    "ignore:Degrees of freedom:RuntimeWarning",
    "ignore:invalid value encountered:RuntimeWarning",
]


@pytest.mark.filterwarnings(*SINGLE_FRAME_WARNINGS)
def test_frame_count_matches_hf_extractor(extractor):
    for n in LENGTHS:
        wave = _wave(n, seed=n).numpy()
        inputs = extractor(wave, sampling_rate=16000, return_tensors="np")
        valid = int(inputs["attention_mask"].sum())
        assert w2v_bert_frame_count(n) == valid, n


@pytest.mark.filterwarnings(*SINGLE_FRAME_WARNINGS)
def test_frame_count_matches_hf_extractor_in_a_padded_batch(extractor):
    lengths = [559, 560, 16161, 33333, 721]
    waves = [_wave(n, seed=n).numpy() for n in lengths]
    inputs = extractor(
        waves, sampling_rate=16000, return_tensors="np", padding=True
    )
    assert inputs["attention_mask"].sum(axis=1).tolist() == [
        w2v_bert_frame_count(n) for n in lengths
    ]


def test_frame_count_tensor_agrees_with_int():
    lengths = LENGTHS + list(range(300, 1300)) + [0, 1, 399]
    tensor = w2v_bert_frame_count(torch.tensor(lengths))
    assert tensor.dtype == torch.long
    assert tensor.tolist() == [w2v_bert_frame_count(n) for n in lengths]
    # 0-d tensors too
    assert w2v_bert_frame_count(torch.tensor(16240)).item() == 50


def test_frame_count_tensor_exact_for_long_inputs():
    lengths = [16777839, 16778159, 20000399, 2**25 + 399]
    tensor = w2v_bert_frame_count(torch.tensor(lengths))
    assert tensor.tolist() == [w2v_bert_frame_count(n) for n in lengths]


def test_frame_mask():
    mask = frame_mask(torch.tensor([0, 2, 4]), 4)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [
        [False] * 4,
        [True, True, False, False],
        [True] * 4,
    ]


# --------------------------------------------------------------------------
# W2VBertFeatures
# --------------------------------------------------------------------------


def test_features_shape_matches_frame_count(featurize):
    for n in LENGTHS:
        if n < 560:
            continue
        feats = featurize(_wave(n, seed=n))
        assert feats.shape == (w2v_bert_frame_count(n), 160), n
        assert feats.dtype == torch.float32
        assert torch.isfinite(feats).all()


def _hf_valid_frames(extractor, wave):
    inputs = extractor(wave.numpy(), sampling_rate=16000, return_tensors="np")
    valid = inputs["attention_mask"][0].astype(bool)
    return inputs["input_features"][0][valid]


def test_unvectorized_features_are_the_hf_extractors(tiny_w2v_bert_dir):
    featurize = W2VBertFeatures(tiny_w2v_bert_dir, vectorized=False)
    assert featurize.fbank is None
    extractor = featurize.extractor
    for n in (16161, 33333):
        wave = _wave(n, seed=n)
        np.testing.assert_array_equal(
            featurize(wave).numpy(), _hf_valid_frames(extractor, wave)
        )


def test_vectorized_features_match_the_hf_extractor(featurize, extractor):
    assert featurize.fbank is not None
    # A harmonic "voiced" signal with a silent stretch, and white noise:
    # different spectra and dynamic ranges per mel bin.
    t = torch.arange(48000) / 16000
    voiced = sum(
        torch.sin(2 * torch.pi * 140 * k * t) / k for k in range(1, 20)
    ) * (0.3 + 0.2 * torch.sin(2 * torch.pi * 3 * t))
    voiced[20000:26000] = 1e-4 * torch.randn(6000)
    waves = [voiced, 0.1 * voiced] + [_wave(n, seed=n) for n in LENGTHS]
    for wave in waves:
        if len(wave) < 560:
            continue
        ours = featurize(wave).numpy()
        # The extractor rounds its spectrum to complex64 and sums in
        # another order: ~1e-4 on unit-variance features.
        np.testing.assert_allclose(
            ours, _hf_valid_frames(extractor, wave), atol=1e-3, rtol=0
        )


@pytest.mark.parametrize("n", [0, 1, 399, 400, 559])
def test_features_too_short_raises(featurize, n):
    with pytest.raises(ValueError, match="shorter than one w2v-BERT frame"):
        featurize(_wave(n))


# --------------------------------------------------------------------------
# SenseW2VBert
# --------------------------------------------------------------------------


def test_forward_features_matches_raw_waveform_forward(encoder, featurize):
    lengths = [16000, 9999]
    waves = torch.zeros(2, max(lengths))
    for b, n in enumerate(lengths):
        waves[b, :n] = _wave(n, seed=b)
    wav_lens = torch.tensor(lengths, dtype=torch.float) / max(lengths)
    feats = [featurize(waves[b, :n]) for b, n in enumerate(lengths)]
    counts = torch.tensor([f.shape[0] for f in feats])
    batch = torch.zeros(2, int(counts.max()), 160)
    for b, f in enumerate(feats):
        batch[b, : f.shape[0]] = f
    with torch.no_grad():
        ours = encoder.forward_features(batch, counts)
        raw = encoder(waves, wav_lens)
        # SpeechBrain's own path: the HuggingFace extractor on the batch.
        upstream = W2VBert.forward(encoder, waves, wav_lens)
    assert ours.shape == (2, int(counts.max()), encoder.output_dim)
    # Training (features in workers) and inference (raw waveforms) compute
    # the same numbers.
    torch.testing.assert_close(raw, ours, atol=0, rtol=0)
    assert upstream.shape[0] == 2
    for b, n in enumerate(counts.tolist()):
        torch.testing.assert_close(
            ours[b, :n], upstream[b, :n], atol=2e-3, rtol=0
        )


def test_attention_runs_through_sdpa_and_equals_eager(tiny_w2v_bert_dir):
    # The Conformer's relative-key position bias reaches SDPA as an
    # additive mask (so the memory-efficient kernel, not flash, on CUDA):
    # same frames as the eager softmax, padding included.
    source = str(tiny_w2v_bert_dir)
    encoder = SenseW2VBert(source, save_path=source).eval()
    assert encoder.model.config._attn_implementation == "sdpa"
    features = torch.randn(2, 40, 160, generator=torch.Generator())
    counts = torch.tensor([40, 23])
    with torch.no_grad():
        sdpa = encoder.forward_features(features, counts)
        encoder.model.set_attn_implementation("eager")
        assert encoder.model.config._attn_implementation == "eager"
        eager = encoder.forward_features(features, counts)
    for b, n in enumerate(counts.tolist()):
        torch.testing.assert_close(sdpa[b, :n], eager[b, :n])


def test_fbank_buffers_stay_out_of_checkpoints(encoder):
    assert encoder.fbank is not None
    assert not any("fbank" in key for key in encoder.state_dict())


def test_forward_features_output_norm_and_all_hiddens(tiny_w2v_bert_dir):
    source = str(tiny_w2v_bert_dir)
    encoder = SenseW2VBert(
        source, save_path=source, output_norm=True, output_all_hiddens=True
    ).eval()
    feats = torch.randn(2, 6, 160)
    with torch.no_grad():
        out = encoder.forward_features(feats, torch.tensor([6, 3]))
    # [L + 1, B, T, D]
    assert out.shape == (3, 2, 6, 32)
    torch.testing.assert_close(
        out.mean(-1), torch.zeros(3, 2, 6), atol=1e-5, rtol=0
    )


def test_frozen_encoder_gives_no_gradient(tiny_w2v_bert_dir):
    source = str(tiny_w2v_bert_dir)
    encoder = SenseW2VBert(source, save_path=source, freeze=True)
    out = encoder.forward_features(torch.randn(1, 5, 160), torch.tensor([5]))
    assert not out.requires_grad
    assert not any(p.requires_grad for p in encoder.parameters())


def test_trainable_encoder_gives_gradient(tiny_w2v_bert_dir):
    source = str(tiny_w2v_bert_dir)
    encoder = SenseW2VBert(source, save_path=source).eval()
    out = encoder.forward_features(torch.randn(1, 5, 160), torch.tensor([5]))
    assert out.requires_grad
    out.sum().backward()
    grad = encoder.model.encoder.layers[-1].final_layer_norm.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_partial_freezing(tiny_w2v_bert_dir):
    source = str(tiny_w2v_bert_dir)
    encoder = SenseW2VBert(
        source,
        save_path=source,
        freeze_first_layers=1,
        freeze_feature_projection=True,
    )
    frozen = {
        name
        for name, param in encoder.model.named_parameters()
        if not param.requires_grad
    }
    expected = {
        name
        for name, _ in encoder.model.named_parameters()
        if name.startswith(("encoder.layers.0.", "feature_projection."))
    }
    assert expected, "no parameter matched the frozen prefixes"
    # SpecAugment is off by default: its mask embedding is never used.
    expected.add("masked_spec_embed")
    assert any(
        n.startswith("encoder.layers.1.")
        for n, _ in encoder.model.named_parameters()
    )
    assert frozen == expected


def test_no_freezing_by_default(tiny_w2v_bert_dir):
    source = str(tiny_w2v_bert_dir)
    encoder = SenseW2VBert(source, save_path=source, apply_spec_augment=True)
    assert all(p.requires_grad for p in encoder.parameters())


def test_unused_spec_augment_embedding_is_frozen(tiny_w2v_bert_dir):
    source = str(tiny_w2v_bert_dir)
    encoder = SenseW2VBert(source, save_path=source)
    frozen = [
        n for n, p in encoder.model.named_parameters() if not p.requires_grad
    ]
    assert frozen == ["masked_spec_embed"]


@pytest.mark.parametrize("layers", [3, 24])
def test_freezing_too_many_layers_raises(tiny_w2v_bert_dir, layers):
    source = str(tiny_w2v_bert_dir)
    with pytest.raises(ValueError, match="freeze_first_layers"):
        SenseW2VBert(source, save_path=source, freeze_first_layers=layers)


def test_freezing_all_layers_allowed(tiny_w2v_bert_dir):
    source = str(tiny_w2v_bert_dir)
    encoder = SenseW2VBert(source, save_path=source, freeze_first_layers=2)
    assert not any(
        p.requires_grad for p in encoder.model.encoder.layers.parameters()
    )
    assert all(
        p.requires_grad for p in encoder.model.feature_projection.parameters()
    )


def test_loads_weights_from_local_directory(encoder, tiny_w2v_bert_dir):
    from transformers import Wav2Vec2BertModel

    reference = Wav2Vec2BertModel.from_pretrained(str(tiny_w2v_bert_dir))
    ours = encoder.model.state_dict()
    theirs = reference.state_dict()
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    assert encoder.output_dim == 32
    assert type(encoder.feature_extractor).__name__ == (
        "SeamlessM4TFeatureExtractor"
    )
