"""Tests for the synthetic Common Voice corpus generator."""

import csv
import re

import numpy as np
import pytest
import soundfile as sf

from speechbrain_sense.synthetic.common_voice import (
    CV_COLUMNS,
    SPEAKERS,
    SPLITS,
    _client_id,
    _split_counts,
    builtin_languages,
    load_builtin_sentences,
    main,
    make_synthetic_cv,
    normalize_sentence,
)

pytest.importorskip("espeakng_loader")

LANGUAGES = ["en", "fr", "de", "es"]
PER_LANGUAGE = 5
TSV_FILES = (*(f"{s}.tsv" for s in SPLITS), "validated.tsv")


def read_tsv(path):
    """Read a TSV exactly as CV's own files must be read (no quoting)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[0], rows[1:]


def split_rows(lang_dir):
    return {split: read_tsv(lang_dir / f"{split}.tsv")[1] for split in SPLITS}


def decode(path):
    audio, rate = sf.read(str(path), dtype="float32")
    return audio, rate


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("cv")
    summary = make_synthetic_cv(out, LANGUAGES, PER_LANGUAGE, seed=0)
    return out, summary


@pytest.fixture(scope="module")
def english_only(tmp_path_factory):
    """English alone, same seed, and English alone with another seed."""
    same = tmp_path_factory.mktemp("cv_same")
    other = tmp_path_factory.mktemp("cv_other")
    make_synthetic_cv(same, ["en"], PER_LANGUAGE, seed=0)
    make_synthetic_cv(other, ["en"], PER_LANGUAGE, seed=1)
    return same, other


@pytest.fixture(scope="module")
def non_latin(tmp_path_factory):
    out = tmp_path_factory.mktemp("cv_ru_fa")
    make_synthetic_cv(out, "ru,fa", 3, seed=5)
    return out


def test_layout_and_header(corpus):
    out, summary = corpus
    assert list(summary) == LANGUAGES
    for lang in LANGUAGES:
        lang_dir = out / lang
        for name in TSV_FILES:
            header, rows = read_tsv(lang_dir / name)
            assert tuple(header) == CV_COLUMNS
            assert all(len(row) == 11 for row in rows)
        header, rows = read_tsv(lang_dir / "clip_durations.tsv")
        assert header == ["clip", "duration[ms]"]
        assert len(rows) == PER_LANGUAGE
        # One header line only, and unquoted: the raw text has no quotes
        # that the sentences do not have themselves.
        raw = (lang_dir / "train.tsv").read_text(encoding="utf-8")
        assert raw.startswith("\t".join(CV_COLUMNS) + "\n")
        assert raw.count("client_id") == 1


def test_rows_look_like_common_voice(corpus):
    out, _ = corpus
    for lang in LANGUAGES:
        builtin = set(load_builtin_sentences(lang))
        validated = read_tsv(out / lang / "validated.tsv")[1]
        rows = [r for rows in split_rows(out / lang).values() for r in rows]
        assert sorted(validated) == sorted(rows)
        for row in rows:
            record = dict(zip(CV_COLUMNS, row))
            assert re.fullmatch(r"[0-9a-f]{64}", record["client_id"])
            assert re.fullmatch(
                rf"common_voice_{lang}_\d{{8}}\.mp3", record["path"]
            )
            assert record["sentence"] in builtin
            assert int(record["up_votes"]) > int(record["down_votes"]) >= 0
            assert record["locale"] == lang
            assert record["gender"] in {"male", "female", ""}
            assert record["accents"] == record["variant"] == ""
            assert record["segment"] == ""
        assert len({r[1] for r in rows}) == len(rows)


def test_split_sizes_and_sentence_disjoint(corpus):
    out, summary = corpus
    for lang in LANGUAGES:
        rows = split_rows(out / lang)
        sizes = [len(rows[split]) for split in SPLITS]
        assert sum(sizes) == PER_LANGUAGE
        assert sizes == _split_counts(PER_LANGUAGE, (0.8, 0.1, 0.1))
        assert all(sizes)
        sentences = [{r[2] for r in rows[split]} for split in SPLITS]
        assert not sentences[0] & sentences[1]
        assert not sentences[0] & sentences[2]
        assert not sentences[1] & sentences[2]
        for split in SPLITS:
            assert summary[lang][split]["utterances"] == len(rows[split])


def test_clips_decode_and_match_durations(corpus):
    out, summary = corpus
    for lang in LANGUAGES:
        durations = dict(read_tsv(out / lang / "clip_durations.tsv")[1])
        total = dict.fromkeys(SPLITS, 0.0)
        for split, rows in split_rows(out / lang).items():
            for row in rows:
                path = out / lang / "clips" / row[1]
                info = sf.info(str(path))
                assert info.format == "MP3"
                assert info.samplerate == 48000
                assert info.channels == 1
                audio, rate = decode(path)
                assert audio.ndim == 1
                seconds = len(audio) / rate
                assert abs(seconds * 1000 - int(durations[row[1]])) < 50
                total[split] += int(durations[row[1]]) / 1000
                # Near-silent padding around clearly audible speech.
                edge = int(0.06 * rate)
                assert np.abs(audio[:edge]).max() < 0.02
                assert np.abs(audio[-edge:]).max() < 0.02
                assert np.abs(audio).max() > 0.2
        for split in SPLITS:
            assert summary[lang][split]["seconds"] == pytest.approx(
                total[split], abs=1e-3
            )


def test_speakers(corpus):
    out, _ = corpus
    seen = {}
    for lang in LANGUAGES:
        expected = {_client_id(0, lang, speaker) for speaker in SPEAKERS}
        assert len(expected) == len(SPEAKERS)
        rows = [r for rows in split_rows(out / lang).values() for r in rows]
        ids = {row[0] for row in rows}
        assert ids <= expected
        assert len(ids) >= 2
        for row in rows:
            # A client id always comes with the same age and gender, and
            # belongs to one language.
            assert seen.setdefault(row[0], (lang, row[5], row[6])) == (
                lang,
                row[5],
                row[6],
            )


def test_same_seed_same_tsvs_other_seed_different(corpus, english_only):
    out, _ = corpus
    same, other = english_only
    names = (*TSV_FILES, "clip_durations.tsv")
    for name in names:
        # Also shows a language does not depend on the others generated.
        reference = (out / "en" / name).read_bytes()
        assert (same / "en" / name).read_bytes() == reference
    assert any(
        (other / "en" / name).read_bytes() != (out / "en" / name).read_bytes()
        for name in names
    )
    assert (other / "en" / "train.tsv").read_bytes() != (
        out / "en" / "train.tsv"
    ).read_bytes()
    # The MP3 bytes repeat too (the docstring says so).
    for row in read_tsv(out / "en" / "validated.tsv")[1]:
        clip = out / "en" / "clips" / row[1]
        assert (same / "en" / "clips" / row[1]).read_bytes() == (
            clip.read_bytes()
        )


def test_non_latin_scripts(non_latin):
    for lang, script in (("ru", "[\u0400-\u04ff]"), ("fa", "[\u0600-\u06ff]")):
        builtin = set(load_builtin_sentences(lang))
        rows = [
            r for rows in split_rows(non_latin / lang).values() for r in rows
        ]
        assert len(rows) == 3
        for row in rows:
            assert row[2] in builtin
            assert re.search(script, row[2])
            audio, _ = decode(non_latin / lang / "clips" / row[1])
            rms = float(np.sqrt(np.mean(np.square(audio))))
            assert rms > 0.02
    # The Persian list uses zero-width non-joiners; they must be kept.
    assert any("\u200c" in s for s in load_builtin_sentences("fa"))


def test_user_sentences_with_tabs_quotes_and_breaks(tmp_path):
    lines = [
        'He said "hello"\tand left.',
        "It's my friend's 'old' bike.",
        "First part\rsecond part, then  more\x0bspace.",
        "A line\u2028separator and a next\u0085line.",
        "",
        "   ",
        'Plain "double" quotes at the "end"',
        "Non\u00a0breaking space stays ?",
    ]
    path = tmp_path / "en_custom.txt"
    path.write_bytes(("\n".join(lines) + "\r\n").encode("utf-8"))
    expected = {
        'He said "hello" and left.',
        "It's my friend's 'old' bike.",
        "First part second part, then more space.",
        "A line separator and a next line.",
        'Plain "double" quotes at the "end"',
        "Non\u00a0breaking space stays ?",
    }
    out = tmp_path / "cv"
    make_synthetic_cv(out, ["en"], 6, seed=2, sentences={"en": path})
    rows = read_tsv(out / "en" / "validated.tsv")[1]
    assert {row[2] for row in rows} == expected
    assert all(len(row) == 11 for row in rows)


def test_sentence_reuse_keeps_splits_disjoint(tmp_path):
    sentences = ["One small sentence.", "Two more words.", "Three is here."]
    make_synthetic_cv(tmp_path, ["en"], 8, sentences={"en": sentences})
    rows = split_rows(tmp_path / "en")
    assert sum(len(r) for r in rows.values()) == 8
    per_split = [{r[2] for r in rows[split]} for split in SPLITS]
    assert set().union(*per_split) == set(sentences)
    assert sum(len(s) for s in per_split) == len(sentences)
    # A repeated sentence is spoken by different speakers.
    for one_split in rows.values():
        pairs = [(r[2], r[0]) for r in one_split]
        assert len(set(pairs)) == len(pairs)


def test_too_few_sentences_for_disjoint_splits(tmp_path):
    with pytest.raises(ValueError, match="distinct sentence"):
        make_synthetic_cv(tmp_path, ["en"], 6, sentences={"en": ["Only."]})


def test_sentence_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(empty))):
        make_synthetic_cv(tmp_path / "a", ["en"], 3, sentences={"en": empty})

    good = tmp_path / "good.txt"
    good.write_text("A b c d e.\nF g h i j.\nK l m n o.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(good))):
        make_synthetic_cv(tmp_path / "b", ["en"], 3, sentences={"de": good})
    # A language eSpeak cannot speak, given with a file.
    with pytest.raises(ValueError, match=re.escape(str(good))) as info:
        make_synthetic_cv(tmp_path / "c", ["xx"], 3, sentences={"xx": good})
    assert "voice" in str(info.value)
    # No built-in list and no file.
    with pytest.raises(ValueError, match="--sentences"):
        make_synthetic_cv(tmp_path / "d", ["sw"], 3)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="per_language"):
        make_synthetic_cv(tmp_path, ["en"], 0)
    with pytest.raises(ValueError, match="add up to 1"):
        make_synthetic_cv(tmp_path, ["en"], 3, split=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="locale"):
        make_synthetic_cv(tmp_path, ["en/../x"], 3)


def test_cli(tmp_path, capsys):
    sentence_file = tmp_path / "fr.txt"
    sentence_file.write_text(
        "Le chat dort au soleil.\nIl pleut depuis ce matin.\n"
        "Nous partons demain à midi.\n",
        encoding="utf-8",
    )
    out = tmp_path / "cv"
    summary = main(
        [
            "--out",
            str(out),
            "--languages",
            "fr",
            "--per-language",
            "3",
            "--seed",
            "4",
            "--sentences",
            f"fr={sentence_file}",
            "--split",
            "0.34,0.33,0.33",
        ]
    )
    printed = capsys.readouterr().out
    assert "utterances" in printed and "fr    train" in printed
    assert [summary["fr"][s]["utterances"] for s in SPLITS] == [1, 1, 1]
    rows = read_tsv(out / "fr" / "validated.tsv")[1]
    assert {r[2] for r in rows} == set(
        sentence_file.read_text().split("\n")[:3]
    )

    base = ["--out", str(out), "--languages", "fr", "--per-language", "2"]
    with pytest.raises(SystemExit):
        main([*base, "--split", "0.5,0.5"])
    with pytest.raises(SystemExit):
        main([*base, "--sentences", "fr"])
    assert "LANG=FILE" in capsys.readouterr().err


def test_split_counts():
    for total in range(1, 40):
        counts = _split_counts(total, (0.8, 0.1, 0.1))
        assert sum(counts) == total
        if total >= 3:
            assert all(counts)
    assert _split_counts(10, (1.0, 0.0, 0.0)) == [10, 0, 0]


def test_normalize_sentence():
    assert normalize_sentence("\ta\t\tb \r\n c\x00d\u2029") == "a b c d"
    assert normalize_sentence("«\u202fOui\u202f»") == "«\u202fOui\u202f»"
    assert normalize_sentence("say \"it\" 'now'") == "say \"it\" 'now'"


def test_builtin_sentence_lists_are_parallel():
    languages = builtin_languages()
    expected = {"en", "fr", "de", "es", "it", "pt", "nl", "ru", "fa", "pl"}
    assert expected | {"tr", "ar", "et"} <= set(languages)
    english = load_builtin_sentences("en")
    assert len(english) >= 60
    for lang in languages:
        sentences = load_builtin_sentences(lang)
        assert len(sentences) == len(english), lang
        assert len(set(sentences)) == len(sentences), lang
        for sentence in sentences:
            assert "\t" not in sentence
            words = [w for w in sentence.split() if any(map(str.isalnum, w))]
            assert 5 <= len(words) <= 14, (lang, sentence)


def test_speaker_profiles_are_distinct():
    configs = {(s.variant, s.rate, s.pitch) for s in SPEAKERS}
    assert len(configs) == len(SPEAKERS) >= 5
