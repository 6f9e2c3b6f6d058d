"""Common Voice preparation on a synthetic release in the real layout."""

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest

from speechbrain_sense.audio import load_audio
from speechbrain_sense.data.synthetic_cv import make_synthetic_cv
from speechbrain_sense.manifests import read_manifest

RECIPE = Path(__file__).resolve().parents[2] / "recipes/CommonVoice/SENSE"
sys.path.insert(0, str(RECIPE))
from common_voice_prepare import (  # noqa: E402
    CommonVoiceFormatError,
    prepare_common_voice,
)

PER_LANGUAGE = 10


@pytest.fixture(scope="module")
def pristine_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    make_synthetic_cv(root, ["en", "ru"], per_language=PER_LANGUAGE, seed=3)
    return root


@pytest.fixture
def corpus(pristine_corpus, tmp_path):
    """A private copy each test may damage."""
    return Path(shutil.copytree(pristine_corpus, tmp_path / "cv"))


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_manifests_keep_every_clip_of_every_split(corpus, tmp_path):
    save = tmp_path / "save"
    report = prepare_common_voice(corpus, save, ["en", "ru"], min_duration=0)
    for split in ("train", "dev", "test"):
        rows = read_csv(save / f"{split}.csv")
        for lang in ("en", "ru"):
            tsv = read_tsv(corpus / lang / f"{split}.tsv")[1:]
            kept = [r for r in rows if r["lang"] == lang]
            assert len(kept) == len(tsv) == report[lang][split]["kept"]
            # Sentences survive byte for byte (Cyrillic included).
            assert sorted(r["sentence"] for r in kept) == sorted(
                t[2] for t in tsv
            )
        assert all(r["wav"].startswith("$data_root/") for r in rows)
    total = sum(report["en"][s]["kept"] for s in ("train", "dev", "test"))
    assert total == PER_LANGUAGE
    ratios = json.loads((save / "language_ratios.json").read_text())
    assert set(ratios["ratios"]) == {"en", "ru"}


def test_durations_match_the_audio_and_audio_is_16k(corpus, tmp_path):
    save = tmp_path / "save"
    prepare_common_voice(corpus, save, ["en"], min_duration=0)
    row = read_csv(save / "train.csv")[0]
    wav = row["wav"].replace("$data_root", str(corpus))
    audio = load_audio(wav, 16000)
    # 48 kHz MP3 in, 16 kHz samples out: length agrees with the duration.
    assert abs(len(audio) / 16000 - float(row["duration"])) < 0.06


def test_duration_filters_count_their_drops(corpus, tmp_path):
    durations = {
        row[0]: float(row[1]) / 1000
        for row in read_tsv(corpus / "en" / "clip_durations.tsv")[1:]
    }
    train_clips = [row[1] for row in read_tsv(corpus / "en" / "train.tsv")[1:]]
    lengths = sorted(durations[clip] for clip in train_clips)
    low, high = lengths[1], lengths[-2]
    report = prepare_common_voice(
        corpus, tmp_path / "s", ["en"], min_duration=low, max_duration=high
    )
    train = report["en"]["train"]
    expected_short = sum(d < low for d in lengths)
    expected_long = sum(d > high for d in lengths)
    assert train["dropped_by_reason"] == {
        "too_short": expected_short,
        "too_long": expected_long,
    }
    assert train["kept"] == len(lengths) - expected_short - expected_long


def test_empty_language_is_an_error_unless_allowed(corpus, tmp_path):
    tsv = corpus / "ru" / "train.tsv"
    tsv.write_text(tsv.read_text(encoding="utf-8").splitlines()[0] + "\n")
    with pytest.raises(ValueError, match=r"no training utterance.*\['ru'\]"):
        prepare_common_voice(corpus, tmp_path / "a", ["en", "ru"])
    report = prepare_common_voice(
        corpus, tmp_path / "b", ["en", "ru"], allow_empty_languages=True
    )
    assert report["ru"]["train"]["kept"] == 0
    assert report["en"]["train"]["kept"] > 0
    ratios = json.loads((tmp_path / "b" / "language_ratios.json").read_text())
    assert set(ratios["ratios"]) == {"en"}


def test_no_training_data_at_all_is_an_error(corpus, tmp_path):
    with pytest.raises(ValueError, match="no training utterance"):
        prepare_common_voice(
            corpus,
            tmp_path / "s",
            ["en"],
            max_duration=1e-3,
            allow_empty_languages=True,
        )


def test_missing_language_folder_is_an_error(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="de"):
        prepare_common_voice(corpus, tmp_path / "s", ["en", "de"])


def test_malformed_row_names_file_and_line(corpus, tmp_path):
    tsv = corpus / "en" / "dev.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    lines.insert(2, "only\tthree\tfields")
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CommonVoiceFormatError, match=rf"{tsv}:3: 3 fields"):
        prepare_common_voice(corpus, tmp_path / "a", ["en"], min_duration=0)
    report = prepare_common_voice(
        corpus, tmp_path / "b", ["en"], min_duration=0, skip_bad_rows=True
    )
    assert report["en"]["dev"]["dropped_by_reason"] == {"malformed_row": 1}


def test_unreadable_clip_names_file_and_line(corpus, tmp_path):
    # Without clip_durations.tsv the header of every clip is read.
    (corpus / "en" / "clip_durations.tsv").unlink()
    rows = read_tsv(corpus / "en" / "train.tsv")
    clip = corpus / "en" / "clips" / rows[2][1]
    clip.write_bytes(b"this is not an mp3 file")
    tsv = corpus / "en" / "train.tsv"
    with pytest.raises(CommonVoiceFormatError, match=rf"{tsv}:3: .*{clip}"):
        prepare_common_voice(corpus, tmp_path / "a", ["en"], min_duration=0)
    report = prepare_common_voice(
        corpus, tmp_path / "b", ["en"], min_duration=0, skip_bad_rows=True
    )
    assert report["en"]["train"]["dropped_by_reason"] == {"unreadable_clip": 1}


def test_missing_clip_is_caught_even_with_clip_durations(corpus, tmp_path):
    rows = read_tsv(corpus / "en" / "test.tsv")
    (corpus / "en" / "clips" / rows[1][1]).unlink()
    with pytest.raises(CommonVoiceFormatError, match="not found"):
        prepare_common_voice(corpus, tmp_path / "a", ["en"], min_duration=0)


def test_rerun_is_idempotent_and_detects_changed_options(corpus, tmp_path):
    save = tmp_path / "save"
    prepare_common_voice(corpus, save, ["en"], min_duration=0)
    stamp = (save / "train.csv").stat().st_mtime_ns
    prepare_common_voice(corpus, save, ["en"], min_duration=0)
    assert (save / "train.csv").stat().st_mtime_ns == stamp
    prepare_common_voice(corpus, save, ["en", "ru"], min_duration=0)
    langs = {r["lang"] for r in read_csv(save / "train.csv")}
    assert langs == {"en", "ru"}
    prepare_common_voice(corpus, save, ["en", "ru"], min_duration=0.1)
    options = json.loads((save / "prepare_options.json").read_text())
    assert options["min_duration"] == 0.1


# --------------------------------------------------------------------------
# Partial releases: languages="auto", missing dev/test splits
# --------------------------------------------------------------------------


def add_locale(corpus, lang, like="en"):
    """Another locale folder: a copy of ``like`` under a new name."""
    shutil.copytree(corpus / like, corpus / lang)


def test_auto_takes_exactly_the_locale_folders(corpus, tmp_path, caplog):
    add_locale(corpus, "de")
    # Not locales: a folder without train.tsv (even with other TSVs) and a
    # file.
    (corpus / "downloads").mkdir()
    (corpus / "downloads" / "dev.tsv").write_text("client_id\tpath\n")
    (corpus / "README.txt").write_text("Common Voice")
    save = tmp_path / "save"
    with caplog.at_level("INFO"):
        report = prepare_common_voice(corpus, save, "auto", min_duration=0)
    assert list(report) == ["de", "en", "ru"]
    assert "de, en, ru" in caplog.text
    saved = json.loads((save / "prepare_report.json").read_text())
    assert list(saved) == ["de", "en", "ru"]
    options = json.loads((save / "prepare_options.json").read_text())
    assert options["languages"] == ["de", "en", "ru"]
    for split in ("train", "dev", "test"):
        rows = read_csv(save / f"{split}.csv")
        assert {r["lang"] for r in rows} == {"de", "en", "ru"}
    # The copy is prepared like the original, under its own name.
    assert report["de"] == report["en"]
    ratios = json.loads((save / "language_ratios.json").read_text())
    assert set(ratios["ratios"]) == {"de", "en", "ru"}


def test_auto_without_any_locale_folder_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "stray").mkdir()
    for folder in (empty, tmp_path / "absent"):
        with pytest.raises(FileNotFoundError, match=f"auto.*{folder}"):
            prepare_common_voice(folder, tmp_path / "s", "auto")
    assert not (tmp_path / "s").exists()


def test_languages_string_other_than_auto_is_an_error(corpus, tmp_path):
    # list("en") would silently become ["e", "n"].
    with pytest.raises(ValueError, match="'auto'.*'en'"):
        prepare_common_voice(corpus, tmp_path / "s", "en")


def test_explicit_languages_stay_strict(corpus, tmp_path):
    add_locale(corpus, "de")
    report = prepare_common_voice(corpus, tmp_path / "a", ["ru", "en"])
    # Only what was asked for, in the order asked.
    assert list(report) == ["ru", "en"]
    with pytest.raises(FileNotFoundError, match="fr"):
        prepare_common_voice(corpus, tmp_path / "b", ["en", "fr"])


def test_missing_test_split_is_skipped_with_a_warning(corpus, tmp_path, caplog):
    (corpus / "ru" / "test.tsv").unlink()
    save = tmp_path / "save"
    with caplog.at_level("WARNING"):
        report = prepare_common_voice(
            corpus, save, ["en", "ru"], min_duration=0
        )
    assert f"no {corpus / 'ru' / 'test.tsv'}" in caplog.text
    assert report["ru"]["test"]["missing"] is True
    assert report["ru"]["test"]["kept"] == 0
    assert "missing" not in report["en"]["test"]
    saved = json.loads((save / "prepare_report.json").read_text())
    assert saved["ru"]["test"]["missing"] is True
    test_rows = read_csv(save / "test.csv")
    assert {r["lang"] for r in test_rows} == {"en"}
    assert len(test_rows) == report["en"]["test"]["kept"] > 0
    # The other splits of ru are untouched.
    for split in ("train", "dev"):
        rows = read_csv(save / f"{split}.csv")
        tsv = read_tsv(corpus / "ru" / f"{split}.tsv")[1:]
        assert sum(r["lang"] == "ru" for r in rows) == len(tsv)
        assert report["ru"][split]["kept"] == len(tsv) > 0


def test_split_missing_everywhere_gives_a_header_only_manifest(
    corpus, tmp_path
):
    for lang in ("en", "ru"):
        (corpus / lang / "dev.tsv").unlink()
    save = tmp_path / "save"
    report = prepare_common_voice(corpus, save, "auto", min_duration=0)
    assert all(report[lang]["dev"]["missing"] for lang in ("en", "ru"))
    lines = (save / "dev.csv").read_text().splitlines()
    assert lines == ["ID,duration,wav,sentence,lang,client_id"]
    assert read_manifest(save / "dev.csv", {"data_root": str(corpus)}) == {}
    assert len(read_csv(save / "train.csv")) > 0


def test_missing_train_split_is_an_error_naming_the_file(corpus, tmp_path):
    tsv = corpus / "ru" / "train.tsv"
    tsv.unlink()
    with pytest.raises(FileNotFoundError, match=f"{tsv}"):
        prepare_common_voice(corpus, tmp_path / "s", ["en", "ru"])
    # With auto, the folder is no locale any more: ru is left out.
    report = prepare_common_voice(corpus, tmp_path / "a", "auto")
    assert list(report) == ["en"]


def test_auto_rerun_prepares_again_when_folders_change(corpus, tmp_path):
    save = tmp_path / "save"
    prepare_common_voice(corpus, save, "auto", min_duration=0)
    stamp = (save / "train.csv").stat().st_mtime_ns
    prepare_common_voice(corpus, save, "auto", min_duration=0)
    assert (save / "train.csv").stat().st_mtime_ns == stamp
    # Same resolved list as auto: the same preparation, nothing redone.
    prepare_common_voice(corpus, save, ["en", "ru"], min_duration=0)
    assert (save / "train.csv").stat().st_mtime_ns == stamp
    add_locale(corpus, "de")
    report = prepare_common_voice(corpus, save, "auto", min_duration=0)
    assert list(report) == ["de", "en", "ru"]
    langs = {r["lang"] for r in read_csv(save / "train.csv")}
    assert langs == {"de", "en", "ru"}
    shutil.rmtree(corpus / "ru")
    prepare_common_voice(corpus, save, "auto", min_duration=0)
    langs = {r["lang"] for r in read_csv(save / "train.csv")}
    assert langs == {"de", "en"}
