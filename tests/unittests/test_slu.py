"""CTC units, decoding, label encoder, head and audio segments of slu.py."""

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_sense.tasks.slu import (
    TaggedCTCHead,
    ctc_greedy_decode,
    ctc_min_frames,
    load_label_encoder,
    load_segment,
    text_to_units,
    units_to_text,
)


@pytest.mark.parametrize(
    "text",
    [
        "i met <PERSON> john smith > in <PLACE> paris >",
        "<command-tache> je voudrais réserver > à <localisation-ville> Nice >",
        "no tags at all",
        "<X> >",
        "",
    ],
)
def test_units_round_trip(text):
    units = text_to_units(text)
    assert units_to_text(units) == text
    # Tags and ">" are single units.
    assert all(len(u) == 1 or u.startswith("<") for u in units)


def test_units_reject_the_separator_in_words():
    with pytest.raises(ValueError, match="word separator"):
        text_to_units("a|b")


def test_greedy_decode_uses_true_lengths():
    # Labels 1 1 _ 1 2 then padding frames that would decode as 2 3.
    path = [1, 1, 0, 1, 2, 2, 3]
    scores = torch.full((2, 7, 4), -10.0)
    for t, label in enumerate(path):
        scores[0, t, label] = 0.0
        scores[1, t, label] = 0.0
    decoded = ctc_greedy_decode(scores, torch.tensor([7, 5]))
    assert decoded == [[1, 1, 2, 3], [1, 1, 2]]


def test_min_frames_counts_blanks_between_repeats():
    assert ctc_min_frames(["a", "a", "a"]) == 5
    assert ctc_min_frames(["<X>", "a", "b", ">"]) == 4
    assert ctc_min_frames([]) == 0


def test_label_encoder_is_deterministic_and_reloads(tmp_path):
    texts = ["b <X> a >", "a c"]
    first = load_label_encoder(tmp_path / "a.txt", texts)
    second = load_label_encoder(tmp_path / "b.txt", list(reversed(texts)))
    assert first.lab2ind == second.lab2ind
    assert first.lab2ind["<blank>"] == 0 and first.lab2ind["<unk>"] == 1
    reloaded = load_label_encoder(tmp_path / "a.txt")
    assert reloaded.lab2ind == first.lab2ind
    # An unseen character maps to <unk> rather than failing.
    encoded = reloaded.encode_sequence(text_to_units("z"))
    assert encoded == [reloaded.lab2ind["<unk>"]]
    with pytest.raises(FileNotFoundError):
        load_label_encoder(tmp_path / "missing.txt")


def test_head_output_independent_of_padding():
    torch.manual_seed(0)
    head = TaggedCTCHead(8, 6, adaptor_layers=2, stride=2).eval()
    head.set_num_labels(5)
    frames = torch.randn(1, 11, 8)
    alone, n = head(frames, torch.tensor([11]))
    padded = torch.cat([frames, 100 * torch.ones(1, 9, 8)], dim=1)
    batch, counts = head(padded.repeat(2, 1, 1), torch.tensor([11, 20]))
    assert counts[0] == n[0]
    torch.testing.assert_close(batch[0, : n[0]], alone[0], atol=1e-5, rtol=0)
    # Log-probabilities.
    torch.testing.assert_close(
        alone.exp().sum(-1), torch.ones(1, n[0].item()), atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="labels"):
        head.set_num_labels(6)
    with pytest.raises(RuntimeError, match="set_num_labels"):
        TaggedCTCHead(8, 6)(frames, torch.tensor([11]))


def test_load_segment_picks_channel_and_time(tmp_path):
    rate = 8000
    left = np.zeros(2 * rate, np.float32)
    right = np.zeros(2 * rate, np.float32)
    left[: rate // 2] = 0.5  # the first half second, left only
    right[rate:] = -0.25  # the second second, right only
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), rate)
    segment = load_segment(path, 1.0, 2.0, channel=1, sample_rate=16000)
    assert segment.shape == (16000,)
    assert segment[100:-100].mean() == pytest.approx(-0.25, abs=1e-3)
    assert load_segment(path, 0.0, 0.5, 1).abs().max() < 1e-3
    assert load_segment(path, 0.0, 0.5, 0)[100:-100].mean() == pytest.approx(
        0.5, abs=1e-3
    )
    # No channel: the mono mix-down.
    assert load_segment(path, 1.0, 2.0)[100:-100].mean() == pytest.approx(
        -0.125, abs=1e-3
    )
    with pytest.raises(Exception, match="2 channels, channel 2"):
        load_segment(path, 0.0, 1.0, channel=2)
