"""Frame-level SENSE encoder and length adaptor."""

import json

import pytest
import torch

from speechbrain_sense.encoders.inference import SenseEncoder
from speechbrain_sense.encoders.w2v_bert import W2VBertFeatures
from speechbrain_sense.tasks.downstream import (
    LengthAdaptor,
    SenseFrameEncoder,
    conv_output_length,
)


def test_adaptor_output_is_independent_of_padding():
    torch.manual_seed(0)
    adaptor = LengthAdaptor(8, 6, num_layers=3).eval()
    lengths = [37, 9, 20]
    utterances = [torch.randn(n, 8) for n in lengths]
    batch = torch.zeros(3, 37, 8)
    for i, x in enumerate(utterances):
        # Garbage in the padding must not leak into the real outputs.
        batch[i] = 1e3
        batch[i, : len(x)] = x
    out, counts = adaptor(batch, torch.tensor(lengths))
    for i, x in enumerate(utterances):
        alone, n = adaptor(x[None], torch.tensor([len(x)]))
        assert counts[i] == n[0] == alone.shape[1]
        torch.testing.assert_close(out[i, : n[0]], alone[0], atol=1e-5, rtol=0)
        assert out[i, n[0] :].abs().max() == 0 if n[0] < out.shape[1] else True


def test_adaptor_counts_match_unpadded_convolutions():
    adaptor = LengthAdaptor(4, 4, num_layers=2, kernel_size=5, stride=3)
    for n in range(1, 60):
        out, counts = adaptor(torch.randn(1, n, 4), torch.tensor([n]))
        assert counts.item() == out.shape[1], n
    assert conv_output_length(torch.tensor([50]), 3, 2).item() == 25


def test_adaptor_without_layers_projects():
    adaptor = LengthAdaptor(4, 7, num_layers=0)
    out, counts = adaptor(torch.randn(2, 5, 4), torch.tensor([5, 2]))
    assert out.shape == (2, 5, 7) and counts.tolist() == [5, 2]
    assert out[1, 2:].abs().max() == 0


def test_frames_equal_the_exported_encoder(sense_model_dir, tmp_path):
    torch.manual_seed(1)
    wav = torch.randn(12000)
    reference, ref_counts = SenseEncoder.from_hparams(
        str(sense_model_dir), savedir=str(tmp_path / "a")
    ).encode_frames(wav[None])
    encoder = SenseFrameEncoder.from_pretrained(
        sense_model_dir, savedir=tmp_path / "b"
    )
    features = W2VBertFeatures(sense_model_dir)(wav)
    frames, counts = encoder(features[None], torch.tensor([len(features)]))
    assert counts.tolist() == ref_counts.tolist()
    n = counts[0]
    torch.testing.assert_close(
        frames[:, :n], reference[:, :n], atol=1e-5, rtol=1e-5
    )


def test_padding_does_not_change_frames(sense_model_dir, tmp_path):
    encoder = SenseFrameEncoder.from_pretrained(
        sense_model_dir, savedir=tmp_path
    )
    torch.manual_seed(2)
    short, long = torch.randn(9, 160), torch.randn(20, 160)
    batch = torch.zeros(2, 20, 160)
    batch[0, :9], batch[1] = short, long
    frames, _ = encoder(batch, torch.tensor([9, 20]))
    alone, _ = encoder(short[None], torch.tensor([9]))
    torch.testing.assert_close(frames[0, :9], alone[0], atol=1e-5, rtol=1e-5)
    assert frames[0, 9:].abs().max() == 0


def test_freezing(sense_model_dir, tiny_w2v_bert_dir, tmp_path):
    frozen = SenseFrameEncoder.from_pretrained(
        sense_model_dir, savedir=tmp_path / "a"
    )
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.encoder.model.training

    tuned = SenseFrameEncoder.from_pretrained(
        tiny_w2v_bert_dir, freeze=False, freeze_first_layers=1
    ).train()
    layers = tuned.encoder.model.encoder.layers
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[1].parameters())
    frames, _ = tuned(torch.randn(2, 6, 160), torch.tensor([6, 3]))
    frames.sum().backward()
    grads = [p.grad for p in layers[1].parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None for p in layers[0].parameters())


def test_rejects_other_models(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="neither an exported SENSE model"):
        SenseFrameEncoder.from_pretrained(tmp_path)


def test_loading_writes_nothing_into_savedir(sense_model_dir, tmp_path):
    # DDP ranks build the encoder at the same time from one yaml: links
    # created in a shared savedir would race (FileExistsError).
    savedir = tmp_path / "shared"
    for _ in range(2):
        SenseFrameEncoder.from_pretrained(sense_model_dir, savedir=savedir)
    assert not savedir.exists() or not any(savedir.iterdir())
