"""Loading exported SENSE models and embedding audio with them.

The reference is the training code path: per-utterance ``W2VBertFeatures``
then ``SenseStudent`` on the padded features.
"""

import sys

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.inference.classifiers import EncoderClassifier
from speechbrain.inference.interfaces import foreign_class

from speechbrain_sense.audio import load_audio, resample
from speechbrain_sense.encoders.export import export_student
from speechbrain_sense.encoders.inference import (
    SenseEncoder,
    duration_batches,
    frame_times,
    pad_waveforms,
)
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.w2v_bert import (
    SenseW2VBert,
    W2VBertFeatures,
    check_waveform_batch,
    w2v_bert_frame_count,
)


@pytest.fixture(scope="module")
def trained(tiny_w2v_bert_dir, tmp_path_factory):
    """A student with non-default head weights, and its exported folder."""
    source = str(tiny_w2v_bert_dir)
    torch.manual_seed(3)
    student = SenseStudent(
        SenseW2VBert(source, source), SenseEmbeddingHead(32, 24)
    ).eval()
    # A peaked attention, so that the pooling weights matter.
    with torch.no_grad():
        student.head.pooling.attn_pooling_w.weight.mul_(20.0)
    out = export_student(
        student.state_dict(), source, tmp_path_factory.mktemp("model")
    )
    return student, source, out


def training_embeddings(student, source, wavs, wav_lens):
    """What the recipe computes for the same audio."""
    features = W2VBertFeatures(source)
    samples = torch.round(wav_lens * wavs.shape[1]).long()
    feats = [features(wavs[i, : samples[i]]) for i in range(len(wavs))]
    counts = torch.tensor([len(f) for f in feats])
    padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    with torch.no_grad():
        return student(padded, counts)


def noise_batch(lengths, seed=0):
    generator = torch.Generator().manual_seed(seed)
    wavs = [0.1 * torch.randn(n, generator=generator) for n in lengths]
    return pad_waveforms(wavs)


@pytest.fixture
def isolated_custom_module(monkeypatch):
    """Undoes what stock loaders do to ``sys.path`` and ``sys.modules``.

    ``foreign_class`` appends the model folder to ``sys.path`` and the yaml
    imports ``custom`` from it; neither may leak into other tests.

    Arguments
    ---------
    monkeypatch : pytest.MonkeyPatch
        Restores ``sys.path`` after the test.

    Yields
    ------
    None
    """
    monkeypatch.setattr(sys, "path", list(sys.path))
    previous = sys.modules.pop("custom", None)
    yield
    sys.modules.pop("custom", None)
    if previous is not None:
        sys.modules["custom"] = previous


def check_stock_model(model, student, source):
    """A stock-loaded model embeds as training does, padding or not.

    Arguments
    ---------
    model : EncoderClassifier
        The loaded model.
    student : SenseStudent
        The trained student it was exported from.
    source : str
        The student's encoder folder (for its features).
    """
    wavs, lens = noise_batch([24000, 16000, 7001, 20000])
    emb = model.encode_batch(wavs, lens)
    assert emb.shape == (4, 1, 24)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(4, 1), atol=1e-5)
    expected = training_embeddings(student, source, wavs, lens)
    assert torch.allclose(emb[:, 0], expected, atol=1e-5)
    # Padding never changes an utterance's embedding.
    alone = model.encode_batch(wavs[2:3, :7001], torch.ones(1))
    assert torch.allclose(alone[0], emb[2], atol=1e-5)


def test_foreign_class_equals_training(
    trained, tmp_path, isolated_custom_module
):
    student, source, model_dir = trained
    model = foreign_class(
        source=str(model_dir),
        pymodule_file="custom.py",
        classname="SenseEncoderInterface",
        savedir=str(tmp_path),
    )
    # The folder's own classes, not the package's.
    assert type(model).__module__ != "speechbrain_sense.encoders.pretrained"
    assert isinstance(model, EncoderClassifier)
    check_stock_model(model, student, source)


def test_stock_encoder_classifier_with_custom_on_the_path(
    trained, tmp_path, isolated_custom_module
):
    student, source, model_dir = trained
    # SpeechBrain >= 1.1: from_hparams does not fetch custom.py itself.
    with pytest.raises(ImportError, match="custom.W2VBertFromConfig"):
        EncoderClassifier.from_hparams(str(model_dir), savedir=str(tmp_path))
    sys.path.insert(0, str(model_dir))
    model = EncoderClassifier.from_hparams(
        source=str(model_dir), savedir=str(tmp_path)
    )
    check_stock_model(model, student, source)


def test_loads_from_any_working_directory(trained, tmp_path, monkeypatch):
    student, source, model_dir = trained
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    wavs, lens = noise_batch([12000])
    reference = training_embeddings(student, source, wavs, lens)
    # savedir given (hyperparams.yaml is symlinked there) and not given
    for savedir in ("fetched", None):
        model = SenseEncoder.from_hparams(str(model_dir), savedir=savedir)
        emb = model.encode_batch(wavs, lens)
        assert torch.allclose(emb[:, 0], reference, atol=1e-5)
    # a relative source from the model's parent folder
    monkeypatch.chdir(model_dir.parent)
    model = SenseEncoder.from_hparams(model_dir.name, savedir=str(tmp_path))
    assert torch.allclose(
        model.encode_batch(wavs, lens)[:, 0], reference, atol=1e-5
    )


@pytest.fixture(scope="module")
def sense_encoder(trained, tmp_path_factory):
    _, _, model_dir = trained
    return SenseEncoder.from_hparams(
        str(model_dir), savedir=str(tmp_path_factory.mktemp("savedir"))
    )


def test_encode_file_resamples_and_mixes_channels(sense_encoder, tmp_path):
    rate = 44100
    generator = np.random.default_rng(0)
    stereo = 0.1 * generator.standard_normal((int(1.3 * rate), 2))
    stereo[:, 1] *= 0.5
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, rate, subtype="FLOAT")
    emb = sense_encoder.encode_file(path)
    assert emb.shape == (24,)
    stored, _ = soundfile.read(path, dtype="float32")
    mono = torch.from_numpy(stored.mean(axis=1))
    expected = sense_encoder.encode_batch(
        resample(mono, rate, 16000)[None], torch.ones(1)
    )[0, 0]
    assert torch.allclose(emb, expected, atol=1e-5)
    # Stock Pretrained.load_audio (soundfile + AudioNormalizer) works too.
    stock = EncoderClassifier.load_audio(sense_encoder, str(path))
    assert stock.shape == load_audio(path).shape


def test_encode_files_batches_by_duration_in_input_order(
    sense_encoder, tmp_path
):
    generator = torch.Generator().manual_seed(1)
    paths, singles = [], []
    for i, seconds in enumerate([0.3, 0.9, 0.5, 0.7, 0.4]):
        wav = 0.1 * torch.randn(int(seconds * 16000), generator=generator)
        path = tmp_path / f"{i}.wav"
        soundfile.write(path, wav.numpy(), 16000)
        paths.append(str(path))
        singles.append(sense_encoder.encode_file(path))
    emb = sense_encoder.encode_files(paths, max_batch_seconds=1.6)
    assert emb.shape == (5, 24)
    assert torch.allclose(emb, torch.stack(singles), atol=1e-5)


def test_frames_and_attention_weights(sense_encoder):
    wavs, lens = noise_batch([16000, 9000])
    frames, counts = sense_encoder.encode_frames(wavs, lens)
    assert counts.tolist() == [
        w2v_bert_frame_count(16000),
        w2v_bert_frame_count(9000),
    ]
    assert frames.shape[0] == 2 and frames.shape[2] == 32
    weights, counts2 = sense_encoder.attention_weights(wavs, lens)
    assert torch.equal(counts, counts2)
    assert torch.allclose(weights.sum(-1), torch.ones(2), atol=1e-5)
    assert (weights[1, counts[1] :] == 0).all()
    # The embedding is the head applied to the weighted frame average.
    head = sense_encoder.mods.embedding_model.head
    pooled = torch.einsum("bt,btd->bd", weights, frames)
    expected = torch.nn.functional.normalize(head.projection(pooled), dim=-1)
    emb = sense_encoder.encode_batch(wavs, lens)[:, 0]
    assert torch.allclose(emb, expected, atol=1e-5)
    # The weights are peaked (the head was scaled), not uniform.
    assert weights[0].max() > 3.0 / counts[0]


def test_bad_inputs_are_clear_errors(sense_encoder):
    with pytest.raises(ValueError, match="mono"):
        sense_encoder.mods.embedding_model(torch.zeros(1, 800, 2))
    with pytest.raises(ValueError, match="shorter than one"):
        sense_encoder.encode_batch(torch.zeros(2, 800), torch.tensor([1, 0.4]))


def test_weights_that_do_not_match_the_hparams_fail_loudly(trained, tmp_path):
    import shutil

    _, _, model_dir = trained
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    state = torch.load(broken / "embedding_model.ckpt")
    del state["head.pooling.attn_pooling_w.bias"]
    torch.save(state, broken / "embedding_model.ckpt")
    with pytest.raises(RuntimeError, match="attn_pooling_w.bias"):
        SenseEncoder.from_hparams(str(broken), savedir=str(tmp_path / "s"))


def test_duration_batches_bound_padded_seconds():
    durations = [3.0, 1.0, 2.5, 0.5, 7.0, 1.2, 1.1]
    batches = duration_batches(durations, max_batch_seconds=5.0)
    assert sorted(i for batch in batches for i in batch) == list(range(7))
    for batch in batches:
        longest = max(durations[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 5.0
    assert [4] in batches  # longer than the bound: alone


def test_frame_times_match_frame_count():
    # the last frame of n samples ends within the waveform
    for samples in (720, 16000, 33333):
        frames = w2v_bert_frame_count(samples)
        end = frame_times(frames)[-1] + 0.0175
        assert end * 16000 <= samples + 1e-6


def test_batches_that_would_embed_wrongly_are_refused(sense_encoder):
    """Too few wav_lens no longer drops utterances; NaN/inf audio no longer
    gives a plausible unit-norm embedding; integer PCM is refused."""
    wavs, _ = noise_batch([8000, 8000, 8000])
    with pytest.raises(ValueError, match="2 entries for a batch of 3"):
        sense_encoder.encode_batch(wavs, torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        sense_encoder.encode_batch(wavs, torch.tensor([1.0, 1.5, 1.0]))
    for bad in (float("nan"), float("inf")):
        poisoned = wavs.clone()
        poisoned[1, 100] = bad
        with pytest.raises(ValueError, match=r"waveforms \[1\].*NaN or inf"):
            sense_encoder.encode_batch(poisoned, torch.ones(3))
    # Integer PCM is refused before EncoderClassifier's wavs.float() would
    # turn it into audio 32768 times too loud, on every entry point.
    pcm = (wavs * 3e4).short()
    with pytest.raises(ValueError, match="floating-point"):
        sense_encoder.encode_batch(pcm, torch.ones(3))
    with pytest.raises(ValueError, match="floating-point"):
        sense_encoder.encode_frames(pcm)
    with pytest.raises(ValueError, match="floating-point"):
        check_waveform_batch(pcm, torch.ones(3))
    # The valid batch itself still encodes.
    assert sense_encoder.encode_batch(wavs, torch.ones(3)).shape[0] == 3


def test_an_empty_batch_has_an_empty_answer(sense_encoder):
    emb = sense_encoder.encode_batch(torch.zeros(0, 16000), torch.zeros(0))
    assert emb.shape == (0, 1, 24)
    frames, counts = sense_encoder.encode_frames(torch.zeros(0, 16000))
    assert frames.shape == (0, 0, 32) and counts.shape == (0,)
    assert sense_encoder.encode_files([]).shape == (0, 24)


def test_the_long_form_window_is_stated_in_the_hparams(sense_encoder):
    model = sense_encoder.mods.embedding_model
    assert sense_encoder.hparams.long_form_window == 30.0
    assert (model.long_form_window, model.long_form_stride) == (1500, 1000)


def test_long_utterances_are_encoded_in_bounded_windows(trained, tmp_path):
    """Above long_form_window the encoder never sees more frames than the
    window, whatever the utterance length; below it nothing changes."""
    _, _, model_dir = trained
    model = SenseEncoder.from_hparams(
        str(model_dir),
        savedir=str(tmp_path),
        overrides={"long_form_window": 0.5, "long_form_stride": 0.3},
    )
    whole = SenseEncoder.from_hparams(
        str(model_dir),
        savedir=str(tmp_path / "whole"),
        overrides={"long_form_window": None},
    )
    seen = []
    encoder = model.mods.embedding_model.encoder
    original = encoder.forward_features

    def spy(features, counts):
        seen.append(features.shape[1])
        return original(features, counts)

    encoder.forward_features = spy
    short, short_lens = noise_batch([7000, 4000])  # <= 25 frames
    torch.testing.assert_close(
        model.encode_batch(short, short_lens),
        whole.encode_batch(short, short_lens),
    )
    seen.clear()
    wavs, lens = noise_batch([48000, 20000])  # 149 and 61 frames
    emb = model.encode_batch(wavs, lens)[:, 0]
    assert seen and max(seen) <= 25
    frames, counts = model.encode_frames(wavs, lens)
    assert counts.tolist() == [
        w2v_bert_frame_count(48000),
        w2v_bert_frame_count(20000),
    ]
    assert (frames[1, counts[1] :] == 0).all()
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    # Windowing changes the frames only through the missing context: the
    # embedding stays close to the whole-utterance one.
    cosine = (emb * whole.encode_batch(wavs, lens)[:, 0]).sum(-1)
    assert cosine.min() > 0.9
