"""Tests for audio decoding and resampling to 16 kHz mono."""

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_sense.audio import (
    AudioReadError,
    audio_duration,
    load_audio,
    resample,
)

RATE = 48000
SECONDS = 1.5
FREQ = 1000.0


def _sine(freq=FREQ, rate=RATE, seconds=SECONDS, amplitude=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(waveform, rate):
    spectrum = np.abs(np.fft.rfft(np.asarray(waveform, dtype=np.float64)))
    return np.argmax(spectrum) * rate / len(waveform)


def test_wav_48k_resampled_to_16k(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, _sine(), RATE)
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(len(wave) - int(16000 * SECONDS)) <= 1
    assert _peak_hz(wave, 16000) == pytest.approx(FREQ, abs=1.0)
    # amplitude kept (away from the edges)
    assert wave[1000:-1000].abs().max().item() == pytest.approx(0.5, abs=0.02)
    # another target rate
    wave8 = load_audio(str(path), sample_rate=8000)
    assert abs(len(wave8) - int(8000 * SECONDS)) <= 1
    assert _peak_hz(wave8, 8000) == pytest.approx(FREQ, abs=1.0)


def test_mp3_48k_resampled_to_16k(tmp_path):
    if "MP3" not in soundfile.available_formats():
        pytest.skip("libsndfile without MP3 support")
    path = tmp_path / "tone.mp3"
    soundfile.write(path, _sine(), RATE, format="MP3")
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(len(wave) - 16000 * SECONDS) <= 0.1 * 16000
    assert _peak_hz(wave, 16000) == pytest.approx(FREQ, abs=2.0)
    assert wave.abs().max().item() == pytest.approx(0.5, abs=0.1)


def test_16k_file_is_not_resampled(tmp_path):
    path = tmp_path / "tone16.wav"
    original = _sine(rate=16000, seconds=0.5)
    soundfile.write(path, original, 16000, subtype="FLOAT")
    wave = load_audio(path)
    np.testing.assert_array_equal(wave.numpy(), original)
    assert audio_duration(path) == pytest.approx(0.5)


def test_stereo_is_averaged_to_mono(tmp_path):
    left = _sine(440.0, rate=16000, seconds=0.5, amplitude=0.6)
    right = _sine(1200.0, rate=16000, seconds=0.5, amplitude=0.2) + 0.1
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 16000, "FLOAT")
    wave = load_audio(path)
    np.testing.assert_allclose(wave.numpy(), (left + right) / 2, atol=1e-6)


def test_stereo_48k_equals_mono_48k(tmp_path):
    left, right = _sine(440.0, amplitude=0.6), _sine(2000.0, amplitude=0.3)
    stereo, mono = tmp_path / "stereo.wav", tmp_path / "mono.wav"
    soundfile.write(stereo, np.stack([left, right], axis=1), RATE, "FLOAT")
    soundfile.write(mono, (left + right) / 2, RATE, "FLOAT")
    torch.testing.assert_close(
        load_audio(stereo), load_audio(mono), atol=1e-6, rtol=0
    )


def test_resample_same_rate_is_identity():
    wave = torch.randn(100)
    assert resample(wave, 16000, 16000) is wave
    assert resample(torch.zeros(2, 4800), 48000, 16000).shape == (2, 1600)


def test_missing_file_raises_with_path(tmp_path):
    path = tmp_path / "nowhere" / "missing.mp3"
    with pytest.raises(AudioReadError, match="missing.mp3") as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)
    with pytest.raises(AudioReadError) as info:
        audio_duration(path)
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not audio at all" * 50, bytes(range(256)) * 8],
)
def test_garbage_file_raises_with_path(tmp_path, content):
    path = tmp_path / "garbage.wav"
    path.write_bytes(content)
    for read in (load_audio, audio_duration):
        with pytest.raises(AudioReadError) as info:
            read(path)
        message = str(info.value)
        assert str(path) in message
        # libsndfile itself says "File does not exist" here: it does.
        assert "does not exist" not in message.split("libsndfile:")[0]
        assert ("empty" if not content else "corrupt") in message


def test_empty_audio_raises_with_path(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioReadError, match="no samples") as info:
        load_audio(path)
    assert str(path) in str(info.value)
