"""Exporting an XLS-R SENSE student (the SAMU-XLSR baseline) and using it.

The reference is the training code path: per-utterance ``XLSRFeatures``
in the workers, then ``SenseStudent`` on the padded batch. An exported
folder must embed raw padded waveforms exactly so, load through this
package and through SpeechBrain's ``foreign_class`` alone, and give the
downstream recipes frames with exact counts.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_sense.data.dataio import (
    audio_feature_pipeline,
    encoder_features_class,
)
from speechbrain_sense.encoders.export import export_student
from speechbrain_sense.encoders.inference import SenseEncoder, pad_waveforms
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.pretrained import XLSRFromConfig
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.w2v_bert import W2VBertFeatures
from speechbrain_sense.encoders.xls_r import (
    SenseXLSR,
    XLSRFeatures,
    xls_r_frame_count,
)
from speechbrain_sense.tasks.downstream import SenseFrameEncoder
from speechbrain_sense.testing.tiny_models import save_tiny_xls_r

LENGTHS = (16000, 9000, 4321)


@pytest.fixture(scope="module")
def xls_r_dir(tmp_path_factory):
    return save_tiny_xls_r(tmp_path_factory.mktemp("xls_r"))


@pytest.fixture(scope="module")
def student(xls_r_dir):
    torch.manual_seed(0)
    d = str(xls_r_dir)
    student = SenseStudent(
        SenseXLSR(d, save_path=d, output_norm=True),
        SenseEmbeddingHead(32, 16, projection="linear_tanh"),
    )
    # Not the random initialisation a fresh load would reproduce by chance.
    with torch.no_grad():
        for param in student.parameters():
            param.add_(0.01 * torch.randn_like(param))
    return student.eval()


@pytest.fixture(scope="module")
def model_dir(student, xls_r_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("xls_r_sense")
    return export_student(
        student.state_dict(), str(xls_r_dir), out, output_norm=True
    )


def clips(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(n, generator=generator) for n in LENGTHS]


def student_embeddings(student, xls_r_dir, waves):
    """The training path: worker features, then the padded student."""
    featurize = XLSRFeatures(xls_r_dir)
    inputs = [featurize(w) for w in waves]
    counts = torch.tensor([len(x) for x in inputs])
    padded = torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True)
    with torch.no_grad():
        return student(padded, counts)


def test_the_folder_is_self_contained_and_builds_xls_r(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert {
        "hyperparams.yaml",
        "custom.py",
        "embedding_model.ckpt",
        "config.json",
        "preprocessor_config.json",
        "README.md",
    } <= names
    yaml_text = (model_dir / "hyperparams.yaml").read_text()
    assert not re.search(r"^[^#]*!(include|PLACEHOLDER)", yaml_text, re.M)
    assert "!new:custom.XLSRFromConfig" in yaml_text
    assert "W2VBertFromConfig" not in yaml_text
    assert "model_type: wav2vec2\n" in yaml_text
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "wav2vec2"
    assert (
        "class XLSRFromConfig(SenseXLSR):"
        in (model_dir / "custom.py").read_text()
    )


def test_round_trip_student_export_load_same_embedding(
    student, xls_r_dir, model_dir, tmp_path
):
    model = SenseEncoder.from_hparams(str(model_dir), savedir=str(tmp_path))
    assert isinstance(model.mods.embedding_model.encoder, XLSRFromConfig)
    waves = clips()
    expected = student_embeddings(student, xls_r_dir, waves)
    padded, lens = pad_waveforms(waves)
    emb = model.encode_batch(padded, lens)
    assert emb.shape == (3, 1, 16)
    torch.testing.assert_close(emb[:, 0], expected, atol=1e-5, rtol=0)
    # Not trivially equal: another student embeds them differently.
    other = SenseStudent(
        SenseXLSR(str(xls_r_dir), save_path=str(xls_r_dir), output_norm=True),
        SenseEmbeddingHead(32, 16, projection="linear_tanh"),
    ).eval()
    assert (
        student_embeddings(other, xls_r_dir, waves) - expected
    ).abs().max() > 1e-3


def test_batched_embeddings_equal_single_ones_whatever_the_padding(
    model_dir, tmp_path
):
    model = SenseEncoder.from_hparams(str(model_dir), savedir=str(tmp_path))
    waves = clips(seed=3)
    padded, lens = pad_waveforms(waves)
    # Loud garbage in the padding must not reach the short clips.
    for i, w in enumerate(waves):
        padded[i, len(w) :] = 5.0
    batched = model.encode_batch(padded, lens)
    for i, w in enumerate(waves):
        alone = model.encode_batch(w[None])
        torch.testing.assert_close(batched[i], alone[0], atol=1e-5, rtol=0)
    # Per-utterance normalisation: a clip's scale does not matter ...
    louder = model.encode_batch(10.0 * waves[1][None])
    torch.testing.assert_close(
        louder, model.encode_batch(waves[1][None]), atol=1e-5, rtol=0
    )
    frames, counts = model.encode_frames(padded, lens)
    assert counts.tolist() == [xls_r_frame_count(n) for n in LENGTHS]
    assert frames.shape == (3, xls_r_frame_count(LENGTHS[0]), 32)


def test_foreign_class_loads_it_with_speechbrain_alone(model_dir, tmp_path):
    """A fresh interpreter: SpeechBrain's loader and the folder's custom.py."""
    wav = clips()[1]
    torch.save(wav, tmp_path / "wav.pt")
    script = textwrap.dedent(
        f"""
        import sys
        import torch
        from speechbrain.inference.interfaces import foreign_class

        model = foreign_class(
            source={str(model_dir)!r},
            pymodule_file="custom.py",
            classname="SenseEncoderInterface",
            savedir="fetched",
        )
        assert type(model).__module__ == "custom", type(model).__module__
        assert "speechbrain_sense.encoders.pretrained" not in sys.modules
        wav = torch.load("wav.pt")
        torch.save(model.encode_batch(wav[None]), "emb.pt")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    emb = torch.load(tmp_path / "emb.pt")
    model = SenseEncoder.from_hparams(
        str(model_dir), savedir=str(tmp_path / "s")
    )
    torch.testing.assert_close(
        emb, model.encode_batch(wav[None]), atol=1e-5, rtol=0
    )


def test_long_input_is_windowed_as_with_w2v_bert(model_dir, tmp_path):
    # 30 s windows every 20 s, in 50 Hz frames, as sense_inference.yaml.
    model = SenseEncoder.from_hparams(str(model_dir), savedir=str(tmp_path))
    utterance = model.mods.embedding_model
    assert utterance.long_form_window == 1500
    assert utterance.long_form_stride == 1000
    assert utterance.long_form_batch_size == 4
    long_form = utterance._long_form()
    assert (long_form.hop, long_form.receptive_field) == (320, 400)


def test_long_form_windows_of_xls_r_are_cut_from_the_samples(
    model_dir, tmp_path
):
    """Set ``long_form_window``: windows start where frames start."""
    model = SenseEncoder.from_hparams(str(model_dir), savedir=str(tmp_path))
    utterance = model.mods.embedding_model
    wav = 0.1 * torch.randn(2, 16000 * 3, generator=torch.Generator())
    lens = torch.tensor([1.0, 0.6])
    with torch.no_grad():
        whole, whole_counts = utterance.encode_frames(wav, lens)
        # One window longer than the talk: the plain encoding, exactly.
        utterance.long_form_window, utterance.long_form_stride = 500, 400
        assert utterance._long_form().hop == 320
        torch.testing.assert_close(
            utterance.encode_frames(wav, lens)[0], whole, atol=1e-5, rtol=0
        )
        # Windows of 1 s every 0.6 s: the same frame counts, one embedding.
        utterance.long_form_window, utterance.long_form_stride = 50, 30
        frames, counts = utterance.encode_frames(wav, lens)
        embeddings = model.encode_batch(wav, lens)
    assert counts.tolist() == whole_counts.tolist() == [149, 89]
    assert frames.shape == whole.shape
    assert torch.isfinite(embeddings).all() and embeddings.shape[-1] == 16


def test_export_refuses_an_encoder_whose_batches_depend_on_padding(
    tmp_path, student
):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor

    base = tmp_path / "base"
    # wav2vec2-base: group norm over the padded time axis.
    Wav2Vec2Config(feat_extract_norm="group").save_pretrained(base)
    Wav2Vec2FeatureExtractor().save_pretrained(base)
    with pytest.raises(ValueError, match="feat_extract_norm='group'"):
        export_student(student.state_dict(), str(base), tmp_path / "m")
    assert not (tmp_path / "m" / "hyperparams.yaml").exists()


# --------------------------------------------------------- downstream use
def test_feature_pipeline_picks_the_encoders_input(
    xls_r_dir, model_dir, sense_model_dir, tiny_w2v_bert_dir, tmp_path
):
    assert encoder_features_class(model_dir) is XLSRFeatures
    assert encoder_features_class(xls_r_dir) is XLSRFeatures
    assert encoder_features_class(sense_model_dir) is W2VBertFeatures
    assert encoder_features_class(tiny_w2v_bert_dir) is W2VBertFeatures
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="is a 'bert' model"):
        encoder_features_class(bert)

    import soundfile

    wave = clips()[1]
    soundfile.write(tmp_path / "a.wav", wave.numpy(), 16000, subtype="FLOAT")
    data = DynamicItemDataset(
        {"a": {"wav": str(tmp_path / "a.wav")}},
        dynamic_items=[audio_feature_pipeline(str(model_dir))],
        output_keys=["features", "num_frames", "load_error"],
    )
    item = data[0]
    assert item["load_error"] is None and item["num_frames"] == len(wave)
    assert item["features"].shape == (len(wave), 1)
    torch.testing.assert_close(item["features"], XLSRFeatures(xls_r_dir)(wave))


def frame_encoder_inputs(source):
    featurize = encoder_features_class(source)(source)
    inputs = [featurize(w) for w in clips()]
    counts = torch.tensor([len(x) for x in inputs])
    return torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True), counts


def test_frame_encoder_on_an_exported_xls_r_model(model_dir, tmp_path):
    encoder = SenseFrameEncoder.from_pretrained(model_dir, savedir=tmp_path)
    assert isinstance(encoder.encoder, XLSRFromConfig)
    assert encoder.output_dim == 32
    padded, samples = frame_encoder_inputs(model_dir)
    frames, counts = encoder(padded, samples)
    assert counts.tolist() == [xls_r_frame_count(n) for n in LENGTHS]
    assert frames.shape == (3, xls_r_frame_count(LENGTHS[0]), 32)
    for i, n in enumerate(counts.tolist()):
        assert frames[i, n:].abs().max() == 0 if n < frames.shape[1] else True
    # The frames the exported model pools (layer-normalised, as trained).
    reference, ref_counts = SenseEncoder.from_hparams(
        str(model_dir), savedir=str(tmp_path / "ref")
    ).encode_frames(*pad_waveforms(clips()))
    assert ref_counts.tolist() == counts.tolist()
    for i, n in enumerate(counts.tolist()):
        torch.testing.assert_close(
            frames[i, :n], reference[i, :n], atol=1e-5, rtol=0
        )


def test_frame_encoder_on_a_plain_xls_r_model(xls_r_dir, tmp_path):
    """The non-semantic baseline: XLS-R itself, fine-tuned above its CNN."""
    encoder = SenseFrameEncoder.from_pretrained(
        xls_r_dir, freeze=False, freeze_first_layers=1
    )
    assert isinstance(encoder.encoder, SenseXLSR)
    assert not encoder.encoder.frame_norm
    model = encoder.encoder.model
    assert not any(
        p.requires_grad for p in model.feature_extractor.parameters()
    )
    assert not any(
        p.requires_grad for p in model.encoder.layers[0].parameters()
    )
    assert all(p.requires_grad for p in model.encoder.layers[1].parameters())
    encoder.eval()
    padded, samples = frame_encoder_inputs(xls_r_dir)
    with torch.no_grad():
        frames, counts = encoder(padded, samples)
        alone, alone_counts = encoder(padded[1:2, : LENGTHS[1]], samples[1:2])
    assert counts.tolist() == [xls_r_frame_count(n) for n in LENGTHS]
    assert alone_counts.tolist() == [xls_r_frame_count(LENGTHS[1])]
    n = alone_counts.item()
    torch.testing.assert_close(frames[1, :n], alone[0], atol=1e-5, rtol=0)


def test_frame_encoder_refuses_other_models_clearly(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "hubert"}')
    with pytest.raises(ValueError, match="nor a w2v-BERT 2.0 or XLS-R"):
        SenseFrameEncoder.from_pretrained(tmp_path)


@pytest.fixture(scope="module")
def onnx_dir(model_dir, tmp_path_factory):
    """The XLS-R model folder exported to ONNX (fp32 and int8), checked."""
    from speechbrain_sense.encoders.onnx_export import export_onnx

    return export_onnx(model_dir, tmp_path_factory.mktemp("onnx"))


def test_onnx_export_of_xls_r_reads_normalised_samples(onnx_dir):
    config = json.loads((onnx_dir / "onnx_config.json").read_text())
    assert config["input"] == "samples" and "fbank" not in config
    assert config["samples"] == {
        "normalize": True,
        "receptive_field": 400,
        "hop": 320,
    }
    assert config["feature_dim"] == 1 and config["embedding_dim"] == 16
    # export_onnx raises below MIN_COSINE; int8 is recorded.
    assert config["check"]["fp32"]["min_cosine"] >= 0.9999
    assert config["check"]["int8"]["min_cosine"] > 0.95


def test_onnx_xls_r_matches_eager_and_ignores_padding(
    onnx_dir, model_dir, tmp_path
):
    from speechbrain_sense.encoders.onnx_export import (
        OnnxSenseEncoder,
        row_cosines,
    )

    model = SenseEncoder.from_hparams(str(model_dir), savedir=str(tmp_path))
    onnx_model = OnnxSenseEncoder.from_folder(onnx_dir)
    waves = clips(seed=3)
    wav, lens = pad_waveforms(waves)
    batch = onnx_model.encode_batch(wav, lens)
    with torch.no_grad():
        eager = model.encode_batch(wav, lens)[:, 0]
    assert row_cosines(batch.numpy(), eager.numpy()).min() >= 0.9999
    for i, wave in enumerate(waves):
        alone = onnx_model.encode_batch(wave[None])
        torch.testing.assert_close(alone[0], batch[i], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="shorter than one XLS-R frame"):
        onnx_model.encode_batch(torch.randn(1, 399))
