"""Tests for the eSpeak NG synthesiser (library backend and program backend)."""

import re
import stat
import sys
import textwrap
import threading

import numpy as np
import pytest

from speechbrain_sense.synthetic.espeak import (
    REPRODUCIBLE_VARIANTS,
    ESpeakSynthesizer,
)

pytest.importorskip("espeakng_loader")


@pytest.fixture(scope="module")
def tts():
    return ESpeakSynthesizer(backend="library")


def _rms(waveform):
    return float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))))


def test_simple_english_word_events(tts):
    text = "The quick brown fox jumps over the lazy dog."
    result = tts.synthesize(text, "en")
    assert result.sample_rate == 22050
    assert result.waveform.dtype == np.float32
    assert np.abs(result.waveform).max() <= 1.0
    assert _rms(result.waveform) > 0.01

    words = result.words
    assert [w.word for w in words] == text.rstrip(".").split()
    starts = [w.start_s for w in words]
    assert starts[0] >= 0.0
    assert all(a < b for a, b in zip(starts, starts[1:]))
    # Contiguous: each word ends where the next starts.
    for word, following in zip(words, words[1:]):
        assert word.end_s == following.start_s
        assert word.end_s > word.start_s
    assert words[-1].end_s == pytest.approx(result.duration_s)
    assert words[-1].end_s > words[-1].start_s


def test_slower_rate_gives_longer_audio(tts):
    text = "Please turn off the lights when you leave the room."
    slow = tts.synthesize(text, "en", rate=100)
    fast = tts.synthesize(text, "en", rate=300)
    assert slow.duration_s > 1.8 * fast.duration_s
    assert len(slow.words) == len(fast.words) == 10


def test_utf8_cyrillic_word_positions(tts):
    # Character (not byte) positions must map back onto the right words.
    text = "Привет, как у тебя дела сегодня?"
    result = tts.synthesize(text, "ru")
    assert [w.word for w in result.words] == [
        "Привет",
        "как",
        "у",
        "тебя",
        "дела",
        "сегодня",
    ]
    assert _rms(result.waveform) > 0.01


def test_utf8_persian(tts):
    text = "امروز هوا خیلی خوب است."
    result = tts.synthesize(text, "fa")
    assert [w.word for w in result.words] == text.rstrip(".").split()
    assert _rms(result.waveform) > 0.01


def test_number_spoken_as_several_words_is_one_word(tts):
    result = tts.synthesize("I have 23 apples.", "en")
    assert [w.word for w in result.words] == ["I", "have", "23", "apples"]


def test_punctuation_only_tokens_are_skipped(tts):
    result = tts.synthesize("Hello — «world»!", "en")
    assert [w.word for w in result.words] == ["Hello", "world"]


def test_voice_variants_and_pitch_change_audio(tts):
    text = "Good morning, everybody."
    base = tts.synthesize(text, "en", voice_variant="adam", pitch=30)
    high = tts.synthesize(text, "en", voice_variant="adam", pitch=90)
    other = tts.synthesize(text, "en", voice_variant="Reed", pitch=30)
    assert not np.array_equal(base.waveform, high.waveform)
    assert not np.array_equal(base.waveform, other.waveform)


@pytest.mark.parametrize("variant", REPRODUCIBLE_VARIANTS)
def test_reproducible_variants_repeat_exactly(tts, variant):
    text = "The river flows slowly through the old part of town."
    first = tts.synthesize(text, "en", voice_variant=variant, seed=3)
    # Something else in between, to disturb any state eSpeak keeps.
    tts.synthesize("Bonjour à tous.", "fr", voice_variant="f2", pitch=80)
    again = tts.synthesize(text, "en", voice_variant=variant, seed=3)
    np.testing.assert_array_equal(first.waveform, again.waveform)
    assert first.words == again.words


def test_threads_are_serialised(tts):
    texts = [f"Sentence number {i} for the thread test." for i in range(6)]
    expected = [
        tts.synthesize(t, "en", voice_variant="adam").waveform for t in texts
    ]
    results = [None] * len(texts)

    def work(i):
        results[i] = tts.synthesize(texts[i], "en", voice_variant="adam")

    threads = [
        threading.Thread(target=work, args=(i,)) for i in range(len(texts))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result, reference in zip(results, expected):
        np.testing.assert_array_equal(result.waveform, reference)


def test_unknown_language_error_explains(tts):
    with pytest.raises(ValueError, match="available_languages") as info:
        tts.synthesize("hello", "xx-notalanguage")
    assert "espeak-ng --voices" in str(info.value)


def test_bad_arguments(tts):
    with pytest.raises(ValueError, match="variant"):
        tts.synthesize("hello", "en", voice_variant="no-such-variant")
    with pytest.raises(ValueError, match="rate"):
        tts.synthesize("hello", "en", rate=10)
    with pytest.raises(ValueError, match="pitch"):
        tts.synthesize("hello", "en", pitch=101)
    with pytest.raises(ValueError, match="empty"):
        tts.synthesize(" \n ", "en")


def test_languages_and_variants_listed(tts):
    languages = tts.available_languages()
    for code in ("en", "fr", "de", "es", "ru", "fa", "ar", "et", "tr"):
        assert code in languages
    assert tts.has_language("EN")
    assert set(REPRODUCIBLE_VARIANTS) <= set(tts.available_variants())
    assert tts.backend == "library"


FAKE_ESPEAK = textwrap.dedent(
    """\
    #!{python}
    # Stand-in for the espeak-ng program: same options, same outputs.
    import struct, sys
    args = sys.argv[1:]
    if args == ["--voices"]:
        print("Pty Language       Age/Gender VoiceName          File    "
              "Other Languages")
        print(" 5  en              --/M      English            gmw/en")
        print(" 5  fr-fr           --/M      French             roa/fr")
        sys.exit(0)
    if args == ["--voices=variant"]:
        print("Pty Language       Age/Gender VoiceName          File    "
              "Other Languages")
        print(" 5  variant         --/M      Adam               !v/adam")
        sys.exit(0)
    assert "--stdin" in args and "--stdout" in args, args
    rate = int(args[args.index("-s") + 1])
    text = sys.stdin.buffer.read().decode("utf-8")
    n = int(22050 * len(text.split()) * 60 / rate)
    samples = [0] * 2205 + [8000, -8000] * (n // 2) + [0] * 2205
    body = struct.pack("<%dh" % len(samples), *samples)
    header = (b"RIFF" + struct.pack("<I", 0x7FFFF000) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100,
                                      2, 16)
              + b"data" + struct.pack("<I", 0x7FFFF000 - 36))
    sys.stdout.buffer.write(header + body)
    """
)


@pytest.fixture()
def fake_program(tmp_path):
    path = tmp_path / "espeak-ng"
    path.write_text(FAKE_ESPEAK.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a shebang")
def test_program_backend(fake_program):
    tts = ESpeakSynthesizer(backend="program", executable=fake_program)
    assert tts.backend == "program"
    assert tts.available_languages() == ["en", "fr-fr"]
    assert tts.available_variants() == ["adam"]
    text = "-starts like an option, four"
    slow = tts.synthesize(text, "en", voice_variant="adam", rate=100)
    fast = tts.synthesize(text, "en", rate=200)
    assert slow.sample_rate == 22050
    assert slow.duration_s > fast.duration_s
    words = [w.word for w in slow.words]
    assert words == ["starts", "like", "an", "option", "four"]
    starts = [w.start_s for w in slow.words]
    assert all(a < b for a, b in zip(starts, starts[1:]))
    # Estimated boundaries stay inside the non-silent part.
    assert starts[0] == pytest.approx(0.1, abs=0.01)
    assert slow.words[-1].end_s == pytest.approx(slow.duration_s)
    with pytest.raises(ValueError, match=re.escape("espeak-ng --voices")):
        tts.synthesize("hello", "de")


def test_missing_program_error(tmp_path):
    with pytest.raises(RuntimeError, match="espeakng-loader"):
        ESpeakSynthesizer(
            backend="program", executable=str(tmp_path / "nothing-here")
        )
