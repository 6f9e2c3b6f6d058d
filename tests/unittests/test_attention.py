"""Attention analysis: statistics on constructed inputs, figures, CLI."""

import csv
import importlib.util
import json

import matplotlib.image
import pytest
import soundfile
import torch

from speechbrain_sense.data.vad import frame_speech_mask
from speechbrain_sense.encoders.export import export_student
from speechbrain_sense.encoders.inference import SenseEncoder
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
from speechbrain_sense.synthetic.espeak import WordBoundary
from speechbrain_sense.tasks.attention import (
    FUNCTION_WORDS,
    AttentionAnalyzer,
    attention_statistics,
    ctc_word_boundaries,
    is_function_word,
    main,
    plot_attention,
    summarize_statistics,
    synthesize,
    word_frame_labels,
)

needs_vad = pytest.mark.skipif(
    importlib.util.find_spec("silero_vad") is None,
    reason="silero-vad not installed",
)


def frames_to_seconds(first, last):
    """Word span covering the centres of frames first..last."""
    return 0.02 * first, 0.02 * (last + 1)


def test_function_words():
    assert is_function_word("The", "en") and is_function_word("of", "en")
    assert not is_function_word("garden", "en")
    assert is_function_word("Der", "de_de") and is_function_word("und", "de")
    assert is_function_word("d'", "fr") and not is_function_word("d'eau", "fr")
    assert is_function_word("«les»", "fr")
    assert is_function_word("para", "es-419") and is_function_word("não", "pt")
    assert is_function_word("cat", "xx") is None
    assert set(FUNCTION_WORDS) == {"en", "fr", "de", "es", "pt", "it"}


def test_word_frame_labels_follow_frame_centres():
    words = [
        WordBoundary("the", *frames_to_seconds(0, 1)),
        WordBoundary("garden", *frames_to_seconds(2, 6)),
        WordBoundary("of", *frames_to_seconds(9, 9)),
    ]
    labels = word_frame_labels(words, 12, "en")
    assert labels.tolist() == [2, 2, 1, 1, 1, 1, 1, 0, 0, 2, 0, 0]
    assert word_frame_labels(words, 12, "xx").tolist() == [0] * 12


def test_statistics_on_constructed_attention():
    # 50 frames: 40% of the mass on the first 5 (the first 10%), the rest
    # spread evenly over the remaining 45.
    weights = torch.full((50,), 0.6 / 45)
    weights[:5] = 0.08
    # non-speech: frames 0-9 and 45-49
    speech = torch.zeros(50, dtype=torch.bool)
    speech[10:45] = True
    # content word on frames 10-29, function words on 30-34 and 0-2
    labels = torch.zeros(50, dtype=torch.long)
    labels[10:30] = 1
    labels[30:35] = 2
    labels[0:3] = 2
    stats = attention_statistics(weights, speech, labels)
    expected = {
        "head_mass": 0.4,
        "head_frames": 0.1,
        "non_speech_mass": 0.4 + 10 * 0.6 / 45,
        "non_speech_frames": 0.3,
        "content_mass": 20 * 0.6 / 45,
        "content_frames": 0.4,
        "function_mass": 3 * 0.08 + 5 * 0.6 / 45,
        "function_frames": 0.16,
    }
    assert stats == pytest.approx(expected, abs=1e-6)
    # uniform attention: every mass equals its frame share
    uniform = attention_statistics(torch.full((50,), 0.02), speech, labels)
    for name in ("head", "non_speech", "content", "function"):
        assert uniform[f"{name}_mass"] == pytest.approx(
            uniform[f"{name}_frames"], abs=1e-6
        )


def test_head_is_the_first_tenth_of_frames():
    for frames, head in ((10, 1), (49, 5), (101, 11)):
        weights = torch.zeros(frames)
        weights[head - 1] = 1.0
        assert attention_statistics(weights)["head_mass"] == 1.0
        weights = torch.zeros(frames)
        weights[head] = 1.0
        assert attention_statistics(weights)["head_mass"] == 0.0


def test_summary_means_and_enrichment():
    out = summarize_statistics(
        [
            {"head_mass": 0.3, "head_frames": 0.1, "content_mass": 0.5},
            {"head_mass": 0.1, "head_frames": 0.1},
        ]
    )
    assert out["head_mass"] == {"mean": pytest.approx(0.2), "count": 2}
    assert out["content_mass"]["count"] == 1
    assert out["head_enrichment"] == pytest.approx(2.0)


def test_frame_speech_mask_from_segments():
    mask = frame_speech_mask([(0.0, 0.04), (0.1, 0.13)], 8)
    # frame centres: 17.5 ms + 20 ms t
    assert mask.tolist() == [1, 1, 0, 0, 0, 1, 0, 0]


def test_plot_renders_a_png(tmp_path):
    generator = torch.Generator().manual_seed(0)
    waveform = 0.1 * torch.randn(24000, generator=generator)
    weights = torch.softmax(torch.randn(74, generator=generator), 0)
    words = [
        WordBoundary("the", 0.1, 0.3),
        WordBoundary("garden", 0.3, 0.9),
    ]
    out = plot_attention(
        waveform,
        weights,
        tmp_path / "fig.png",
        segments=[(0.1, 1.2)],
        words=words,
        language="en",
        title="a title",
        note="a note",
    )
    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (496, 800)  # 10 x 6.2 inches at 80 dpi
    # not blank: many distinct colours
    assert len({tuple(p) for p in image[::7, ::7].reshape(-1, 4).tolist()}) > 20
    assert out.stat().st_size < 300_000


@pytest.fixture(scope="module")
def model_dir(tiny_w2v_bert_dir, tmp_path_factory):
    source = str(tiny_w2v_bert_dir)
    torch.manual_seed(0)
    student = SenseStudent(
        SenseW2VBert(source, source), SenseEmbeddingHead(32, 16)
    )
    return export_student(
        student.state_dict(), source, tmp_path_factory.mktemp("model")
    )


@needs_vad
def test_analyzer_on_synthesised_speech(model_dir, tmp_path):
    model = SenseEncoder.from_hparams(str(model_dir), savedir=str(tmp_path))
    waveform, words = synthesize("The cat sleeps in the garden.", "en")
    # 0.5 s of silence before the speech: VAD must find it
    waveform = torch.cat([torch.zeros(8000), waveform])
    words = [
        WordBoundary(w.word, w.start_s + 0.5, w.end_s + 0.5) for w in words
    ]
    result = AttentionAnalyzer(model).analyze(waveform, None, "en", words)
    assert result["weights"].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert result["segments"][0][0] >= 0.4
    stats = result["stats"]
    assert 0.2 < stats["non_speech_frames"] < 0.45
    assert stats["content_frames"] > 0 and stats["function_frames"] > 0
    assert result["word_source"] == "eSpeak word events"


def tiny_ctc_model(folder):
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir()
    letters = list("abcdefghijklmnopqrstuvwxyz'")
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2}
    vocab.update({c: i + 3 for i, c in enumerate(letters)})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"))
    processor = Wav2Vec2Processor(
        feature_extractor=Wav2Vec2FeatureExtractor(), tokenizer=tokenizer
    )
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=8,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_ctc_alignment_gives_ordered_words(tmp_path):
    ctc = tiny_ctc_model(tmp_path / "ctc")
    waveform = 0.1 * torch.randn(32000, generator=torch.Generator())
    text = "The cabbage, juice 42 changes!"
    words = ctc_word_boundaries(waveform, text, ctc)
    # "42" has no letter in the vocabulary: skipped
    assert [w.word for w in words] == ["The", "cabbage,", "juice", "changes!"]
    for word in words:
        assert 0 <= word.start_s <= word.end_s <= 2.0
    for before, after in zip(words, words[1:]):
        assert before.end_s <= after.start_s


@needs_vad
def test_command_line_figure_and_batch(model_dir, tmp_path):
    figure = tmp_path / "fig.png"
    main(
        [
            "--model",
            str(model_dir),
            "--text",
            "Le chat dort.",
            "--language",
            "fr",
            "--out",
            str(figure),
        ]
    )
    assert figure.stat().st_size > 10_000
    clip = tmp_path / "clip.wav"
    waveform, _ = synthesize("Good morning.", "en")
    soundfile.write(clip, waveform.numpy(), 16000)
    manifest = tmp_path / "set.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["wav", "text", "lang"])
        writer.writerow(["clip.wav", "Good morning.", "en"])
        writer.writerow([str(clip), "Good morning.", "en"])
    out = tmp_path / "stats.json"
    main(
        ["--model", str(model_dir), "--batch", str(manifest), "--out", str(out)]
    )
    stats = json.loads(out.read_text())
    assert stats["utterances"] == 2
    assert "non_speech_mass" in stats["summary"]
    assert "content_mass" not in stats["summary"]  # no word boundaries
