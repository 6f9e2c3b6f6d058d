"""Common Voice preparation on a synthetic release in the real layout."""

import csv
import io
import json
import random
import shutil
import sys
from pathlib import Path

import pytest

from speechbrain_sense.audio import audio_duration, load_audio
from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.data.preparation import ManifestWriter
from speechbrain_sense.synthetic.common_voice import make_synthetic_cv

RECIPE = Path(__file__).resolve().parents[2] / "recipes/CommonVoice/SENSE"
sys.path.insert(0, str(RECIPE))
from common_voice_sense_prepare import (  # noqa: E402
    CLIP_CHECKS_FILE,
    RELEASE_COLUMNS,
    VALIDATED_RELEASE,
    ClipDurations,
    CommonVoiceFormatError,
    _read_clip_durations,
    check_release,
    prepare_common_voice,
    release_of,
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


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "unlisted"])
def test_unreadable_clip_names_file_and_line(corpus, tmp_path, listed):
    # A clip listed in clip_durations.tsv is opened all the same: that is
    # what let a corrupt MP3 through to crash training epochs later.
    if not listed:
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
    assert report["en"]["train"]["dropped_by_reason"] == {"corrupt_clip": 1}
    (named,) = report["en"]["train"]["first_bad_rows"]
    assert named.startswith(f"{tsv}:3: clip {clip}: corrupt")


def test_missing_clip_is_caught_even_with_clip_durations(corpus, tmp_path):
    rows = read_tsv(corpus / "en" / "test.tsv")
    (corpus / "en" / "clips" / rows[1][1]).unlink()
    with pytest.raises(CommonVoiceFormatError, match="does not exist"):
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


def test_bge_m3_filter_drops_and_prints_uncovered_locales(
    corpus, tmp_path, capsys
):
    # gn (Guarani) and yo (Yoruba) are in the authors' list, not in BGE-M3's
    # languages.
    add_locale(corpus, "gn")
    add_locale(corpus, "yo")
    save = tmp_path / "save"
    report = prepare_common_voice(
        corpus,
        save,
        ["en", "gn", "ru", "yo"],
        min_duration=0,
        language_filter="bge_m3",
    )
    assert "drops 2 of 4 locales (not covered by the teacher): gn yo" in (
        capsys.readouterr().out
    )
    assert list(report) == ["en", "ru"]
    for split in ("train", "dev", "test"):
        assert {r["lang"] for r in read_csv(save / f"{split}.csv")} == {
            "en",
            "ru",
        }
    # Without the filter every listed locale is trained on.
    report = prepare_common_voice(
        corpus, tmp_path / "all", ["en", "gn", "ru", "yo"], min_duration=0
    )
    assert list(report) == ["en", "gn", "ru", "yo"]


def test_language_filter_that_keeps_nothing_or_is_unknown(corpus, tmp_path):
    add_locale(corpus, "gn")
    with pytest.raises(ValueError, match="keeps none of"):
        prepare_common_voice(
            corpus, tmp_path / "s", ["gn"], language_filter="bge_m3"
        )
    with pytest.raises(ValueError, match="language_filter must be null"):
        prepare_common_voice(
            corpus, tmp_path / "s", ["en"], language_filter="labse"
        )


def test_release_is_read_from_mozillas_folder_name():
    assert release_of("/d/cv-corpus-16.1-2023-12-06") == "16.1"
    assert release_of("/d/cv-corpus-17.0-2024-03-15/cv/x") == "17.0"
    assert release_of("/d/cv-corpus-18.0-delta-2024-06-14") == "18.0"
    assert release_of("/d/cv-corpus-16.1") is None  # no date: not the name
    assert release_of("/d/corpus-16.1-2023-12-06") is None


def test_release_check_warns_on_version_and_layout(tmp_path, caplog):
    make_synthetic_cv(tmp_path / "x", ["en"], per_language=1, seed=0)
    # The synthetic corpus has the layout of the validated release.
    assert read_tsv(tmp_path / "x" / "en" / "train.tsv")[0] == list(
        RELEASE_COLUMNS[VALIDATED_RELEASE]
    )
    same = tmp_path / "cv-corpus-16.1-2023-12-06"
    other = tmp_path / "cv-corpus-17.0-2024-03-15"
    shutil.copytree(tmp_path / "x", same)
    assert check_release(same, ["en"], "16.1") == []
    shutil.copytree(tmp_path / "x", other)
    with caplog.at_level("WARNING"):
        (warning,) = check_release(other, ["en"], "16.1")
    assert "Common Voice 17.0; the recipe is tested on 16.1" in warning
    assert warning in caplog.text
    (warning,) = check_release(tmp_path / "x", ["en"], "16.1")
    assert "cannot tell the Common Voice release" in warning
    # A 17.0-style header: sentence_id and sentence_domain added.
    train = other / "en" / "train.tsv"
    rows = read_tsv(train)
    header = rows[0]
    header.insert(2, "sentence_id")
    header.insert(4, "sentence_domain")
    train.write_text("\t".join(header) + "\n", encoding="utf-8")
    version, layout = check_release(other, ["en"], "16.1")
    assert "train.tsv of en: not the Common Voice 16.1 layout" in layout
    assert "extra columns ['sentence_id', 'sentence_domain']" in layout
    header.remove("segment")
    train.write_text("\t".join(header) + "\n", encoding="utf-8")
    assert "missing columns ['segment']" in check_release(other, ["en"])[1]
    with pytest.raises(ValueError, match="common_voice_release must be"):
        check_release(same, ["en"], "9.0")


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


# --------------------------------------------------------------------------
# Streamed manifests: the same bytes as holding every row, nothing left
# behind by a failure, compact clip durations
# --------------------------------------------------------------------------

TSV_COLUMNS = ("client_id", "path", "sentence_id", "sentence", "up_votes")
MANIFEST_HEADER = "ID,duration,wav,sentence,lang,client_id"


def write_locale(root, lang, durations, splits):
    """A locale folder: ``clip_durations.tsv`` lines (``None``: no file),
    ``{split: [(client_id, clip, sentence) or "" (a blank line)]}`` and a
    file per clip that is not audio: prepare with ``verify_clips="none"``,
    which opens no clip with a listed duration.
    """
    folder = root / lang
    (folder / "clips").mkdir(parents=True)
    if durations is not None:
        lines = ["clip\tduration[ms]", *durations]
        (folder / "clip_durations.tsv").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )
    for split, rows in splits.items():
        lines = ["\t".join(TSV_COLUMNS)]
        for k, row in enumerate(rows):
            if not row:
                lines.append("")
                continue
            client, clip, sentence = row
            lines.append("\t".join((client, clip, f"s{k}", sentence, "2")))
            (folder / "clips" / clip).write_bytes(b"never decoded")
        (folder / f"{split}.tsv").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )


@pytest.fixture
def handmade_corpus(tmp_path):
    """Filter edges, CSV quoting, duplicate and non-Common-Voice clip
    names in ``clip_durations.tsv`` (out of order), a language keeping no
    training row, missing and empty splits.
    """
    root = tmp_path / "handmade"
    write_locale(
        root,
        "en",
        [
            "common_voice_en_101.mp3\t9999",
            "common_voice_en_7.mp3\t500",
            "common_voice_en_103.mp3\t20001",
            "common_voice_en_102.mp3\t20000",
            "common_voice_en_101.mp3\t4213",  # listed twice: the last wins
            'odd, "name".mp3\t1234.5',
            "common_voice_en_0104.mp3\t499",
            "common_voice_en_105.mp3\t3000",
        ],
        {
            "train": [
                ("c1", "common_voice_en_101.mp3", 'He said "hi",  twice '),
                ("c2", "common_voice_en_7.mp3", "edge"),
                ("c1", "common_voice_en_103.mp3", "long"),
                "",
                ("c3", "common_voice_en_102.mp3", "max"),
                ("c2", 'odd, "name".mp3', "odd one"),
                ("c3", "common_voice_en_0104.mp3", "short"),
                ("c1", "common_voice_en_105.mp3", "   "),
            ],
            "dev": [("c4", "common_voice_en_105.mp3", "dev sentence")],
            "test": [],
        },
    )
    write_locale(
        root,
        "ru",
        [
            "common_voice_ru_2.mp3\t1000",
            "common_voice_ru_1.mp3\t2500",
            "common_voice_ru_3.mp3\t1500",
        ],
        {
            "train": [
                ("r1", "common_voice_ru_1.mp3", "Привет,  мир"),
                ("r2", "common_voice_ru_2.mp3", "Как дела?"),
            ],
            "dev": [("r1", "common_voice_ru_3.mp3", "Ещё раз")],
        },
    )
    write_locale(
        root,
        "zz",
        ["common_voice_zz_1.mp3\t100"],
        {"train": [("z1", "common_voice_zz_1.mp3", "too short")]},
    )
    return root


def test_manifests_report_and_ratios_are_byte_exact(handmade_corpus, tmp_path):
    save = tmp_path / "save"
    report = prepare_common_voice(
        handmade_corpus,
        save,
        ["ru", "zz", "en"],
        allow_empty_languages=True,
        verify_clips="none",
    )
    # Written out by hand: the bytes csv.DictWriter gives these rows (CRLF,
    # minimal quoting), in the order of the languages and of the TSV rows.
    expected = {
        "train": [
            MANIFEST_HEADER,
            "ru-common_voice_ru_1,2.500,$data_root/ru/clips/common_voice_ru_1"
            '.mp3,"Привет, мир",ru,r1',
            "ru-common_voice_ru_2,1.000,$data_root/ru/clips/common_voice_ru_2"
            ".mp3,Как дела?,ru,r2",
            "en-common_voice_en_101,4.213,$data_root/en/clips/common_voice_en"
            '_101.mp3,"He said ""hi"", twice",en,c1',
            "en-common_voice_en_7,0.500,$data_root/en/clips/common_voice_en_7"
            ".mp3,edge,en,c2",
            "en-common_voice_en_102,20.000,$data_root/en/clips/common_voice_en"
            "_102.mp3,max,en,c3",
            '"en-odd, ""name""",1.234,"$data_root/en/clips/odd, ""name"".mp3"'
            ",odd one,en,c2",
        ],
        "dev": [
            MANIFEST_HEADER,
            "ru-common_voice_ru_3,1.500,$data_root/ru/clips/common_voice_ru_3"
            ".mp3,Ещё раз,ru,r1",
            "en-common_voice_en_105,3.000,$data_root/en/clips/common_voice_en"
            "_105.mp3,dev sentence,en,c4",
        ],
        "test": [MANIFEST_HEADER],
    }
    for split, lines in expected.items():
        data = (save / f"{split}.csv").read_bytes()
        assert data == "".join(f"{line}\r\n" for line in lines).encode()

    missing = {
        "missing": True,
        "kept": 0,
        "kept_hours": 0.0,
        "dropped": 0,
        "dropped_by_reason": {},
    }

    def stats(seconds, dropped_by_reason=None):
        dropped_by_reason = dropped_by_reason or {}
        return {
            "kept": len(seconds),
            "kept_hours": sum(seconds) / 3600,
            "dropped": sum(dropped_by_reason.values()),
            "dropped_by_reason": dropped_by_reason,
        }

    expected_report = {
        "ru": {
            "train": stats([2.5, 1.0]),
            "dev": stats([1.5]),
            "test": missing,
        },
        "zz": {
            "train": stats([], {"too_short": 1}),
            "dev": missing,
            "test": missing,
        },
        "en": {
            # Reasons in the order first met.
            "train": stats(
                [4.213, 0.5, 20.0, 1.234],
                {"too_long": 1, "too_short": 1, "empty_sentence": 1},
            ),
            "dev": stats([3.0]),
            "test": stats([]),
        },
    }
    assert report == expected_report
    assert (save / "prepare_report.json").read_text() == json.dumps(
        expected_report, indent=1
    )
    ratios = json.loads((save / "language_ratios.json").read_text())
    # zz kept nothing: not among the counts; the order is the languages'.
    assert list(ratios["counts"].items()) == [("ru", 2), ("en", 4)]
    assert list(ratios["ratios"]) == ["ru", "en"]
    assert sorted(p.name for p in save.iterdir()) == [
        "dev.csv",
        "language_ratios.json",
        "prepare_options.json",
        "prepare_report.json",
        "test.csv",
        "train.csv",
    ]


def expected_manifest(corpus, languages, split, duration_of):
    """The CSV bytes of ``split``, built from the TSVs (min_duration=0)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(MANIFEST_HEADER.split(","))
    for lang in languages:
        rows = read_tsv(corpus / lang / f"{split}.tsv")
        column = {name: rows[0].index(name) for name in rows[0]}
        for row in rows[1:]:
            clip = row[column["path"]]
            writer.writerow(
                [
                    f"{lang}-{clip.rsplit('.', 1)[0]}",
                    f"{duration_of(lang, clip):.3f}",
                    f"$data_root/{lang}/clips/{clip}",
                    " ".join(row[column["sentence"]].split()),
                    lang,
                    row[column["client_id"]],
                ]
            )
    return out.getvalue().encode("utf-8")


def test_manifests_equal_an_independent_reading_of_the_tsvs(corpus, tmp_path):
    # ru without clip_durations.tsv: its durations come from the MP3s.
    (corpus / "ru" / "clip_durations.tsv").unlink()
    listed = {
        row[0]: float(row[1]) / 1000
        for row in read_tsv(corpus / "en" / "clip_durations.tsv")[1:]
    }

    def duration_of(lang, clip):
        if lang == "en":
            return listed[clip]
        return audio_duration(corpus / lang / "clips" / clip)

    save = tmp_path / "save"
    report = prepare_common_voice(corpus, save, ["ru", "en"], min_duration=0)
    for split in ("train", "dev", "test"):
        expected = expected_manifest(corpus, ["ru", "en"], split, duration_of)
        assert (save / f"{split}.csv").read_bytes() == expected
        for lang in ("ru", "en"):
            rows = read_csv(save / f"{split}.csv")
            seconds = [float(r["duration"]) for r in rows if r["lang"] == lang]
            assert report[lang][split]["kept_hours"] == sum(seconds) / 3600
    ratios = json.loads((save / "language_ratios.json").read_text())
    assert ratios["counts"] == {
        lang: report[lang]["train"]["kept"] for lang in ("ru", "en")
    }


def test_a_failed_preparation_leaves_the_previous_one(corpus, tmp_path):
    save = tmp_path / "save"
    prepare_common_voice(corpus, save, ["en"], min_duration=0)

    def outputs():
        # Not the verdict cache: it keeps the clips checked so far.
        return {
            p.name: p.read_bytes()
            for p in save.iterdir()
            if p.name != CLIP_CHECKS_FILE
        }

    before = outputs()
    # Fails after both languages were streamed (ru keeps nothing) ...
    tsv = corpus / "ru" / "train.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    tsv.write_text(lines[0] + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no training utterance.*\['ru'\]"):
        prepare_common_voice(corpus, save, ["en", "ru"], min_duration=0)
    assert outputs() == before
    # ... or in the middle of the second language's training split.
    lines.insert(3, "only\tthree\tfields")
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CommonVoiceFormatError, match=rf"{tsv}:4: 3 fields"):
        prepare_common_voice(corpus, save, ["en", "ru"], min_duration=0)
    assert outputs() == before
    # The previous preparation is still the valid one: nothing redone.
    stamp = (save / "train.csv").stat().st_mtime_ns
    prepare_common_voice(corpus, save, ["en"], min_duration=0)
    assert (save / "train.csv").stat().st_mtime_ns == stamp


def test_malformed_clip_durations_line_names_file_and_line(corpus, tmp_path):
    path = corpus / "en" / "clip_durations.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    for bad in ("common_voice_en_1.mp3", "common_voice_en_1.mp3\t12 ms"):
        path.write_text(
            "\n".join([*lines[:2], bad, *lines[2:]]) + "\n", encoding="utf-8"
        )
        with pytest.raises(CommonVoiceFormatError, match=rf"{path}:3: "):
            prepare_common_voice(corpus, tmp_path / "s", ["en"])
        assert not (tmp_path / "s" / "train.csv").exists()


def test_clip_durations_answer_as_a_dict_of_the_file(tmp_path):
    rng = random.Random(7)
    names = [f"common_voice_xx_{rng.randrange(60)}.mp3" for _ in range(200)]
    names += [
        "common_voice_xx_007.mp3",  # leading zero: not the clip 7
        "common_voice_xx_.mp3",
        "common_voice_xx_\u0663.mp3",  # a digit, but not an ASCII one
        "common_voice_xx_" + "9" * 20 + ".mp3",  # beyond int64
        "common_voice_yy_7.mp3",  # another locale's prefix
        "common_voice_xx_7.wav",
        "plain.mp3",
    ]
    rng.shuffle(names)
    millis = [rng.choice(("4213", "0.5", "1234.5", "20000")) for _ in names]
    lang_dir = tmp_path / "xx"
    lang_dir.mkdir()
    (lang_dir / "clip_durations.tsv").write_text(
        "clip\tduration[ms]\n"
        + "".join(f"{n}\t{ms}\n" for n, ms in zip(names, millis)),
        encoding="utf-8",
    )
    durations = _read_clip_durations(lang_dir)
    reference = {n: float(ms) / 1000.0 for n, ms in zip(names, millis)}
    assert len(durations) == len(reference)
    probes = set(names) | {f"common_voice_xx_{k}.mp3" for k in range(70)}
    for clip in probes:
        assert durations.get(clip) == reference.get(clip), clip
    # Already sorted and unique (no sort needed): the same answers.
    ordered = sorted(reference.items(), key=lambda item: item[0])
    table = ClipDurations.from_lines("common_voice_xx_", ordered)
    assert {clip: table.get(clip) for clip in probes} == {
        clip: reference.get(clip) for clip in probes
    }
    assert len(_read_clip_durations(tmp_path / "absent")) == 0


def test_a_crash_between_the_renames_prepares_again(
    corpus, tmp_path, monkeypatch
):
    save = tmp_path / "save"
    prepare_common_voice(corpus, save, ["en"], min_duration=0)
    commit, calls = ManifestWriter.commit, []

    def commit_then_crash(writer):
        calls.append(writer.path.name)
        if len(calls) == 2:
            raise OSError("disk full")
        commit(writer)

    monkeypatch.setattr(ManifestWriter, "commit", commit_then_crash)
    with pytest.raises(OSError, match="disk full"):
        prepare_common_voice(corpus, save, ["en", "ru"], min_duration=0)
    monkeypatch.undo()
    # train.csv is the new one, dev.csv the old: no record of options, so
    # neither set of options passes for prepared.
    assert calls == ["train.csv", "dev.csv"]
    assert not (save / "prepare_options.json").exists()
    assert not list(save.glob("*.tmp"))
    report = prepare_common_voice(corpus, save, ["en"], min_duration=0)
    langs = {r["lang"] for r in read_csv(save / "train.csv")}
    assert langs == {"en"}
    assert len(read_csv(save / "dev.csv")) == report["en"]["dev"]["kept"]


# --------------------------------------------------------------------------
# Bad clips and bad bytes: found at preparation, named by file and line
# --------------------------------------------------------------------------


def _damage_clip(clip, kind):
    """Damages one clip file as ``kind`` says."""
    import numpy as np
    import soundfile

    if kind == "corrupt_clip":  # a valid MP3 start, then garbage
        data = clip.read_bytes()
        clip.write_bytes(data[:64] + bytes(range(256)) * 20)
    elif kind == "garbled":  # a valid header, a broken stream after it
        data = bytearray(clip.read_bytes())
        data[2000:] = bytes(len(data) - 2000)
        clip.write_bytes(bytes(data))
    elif kind == "truncated_clip":  # the tail of the stream is gone
        data = clip.read_bytes()
        clip.write_bytes(data[: len(data) // 4])
    elif kind == "empty_clip":
        clip.write_bytes(b"")
    elif kind == "too_short_to_encode":  # 12.5 ms: no w2v-BERT frame
        with open(clip, "wb") as f:
            soundfile.write(f, np.zeros(200), 16000, format="WAV")
    elif kind == "missing_clip":
        clip.unlink()


@pytest.mark.parametrize(
    "kind, listed",
    [
        ("corrupt_clip", True),
        ("truncated_clip", True),
        ("truncated_clip", False),  # against the header's promise
        ("empty_clip", True),
        ("too_short_to_encode", False),
        ("missing_clip", True),
    ],
)
def test_every_bad_clip_kind_is_named_or_skipped_and_counted(
    corpus, tmp_path, kind, listed
):
    tsv = corpus / "en" / "train.tsv"
    clip = corpus / "en" / "clips" / read_tsv(tsv)[2][1]
    if not listed:
        # Its duration then comes from the clip itself.
        (corpus / "en" / "clip_durations.tsv").unlink()
    _damage_clip(clip, kind)
    with pytest.raises(CommonVoiceFormatError, match=rf"{tsv}:3: clip {clip}"):
        prepare_common_voice(corpus, tmp_path / "a", ["en"], min_duration=0)
    report = prepare_common_voice(
        corpus, tmp_path / "b", ["en"], min_duration=0, skip_bad_rows=True
    )
    train = report["en"]["train"]
    assert train["dropped_by_reason"] == {kind: 1}
    assert train["first_bad_rows"][0].startswith(f"{tsv}:3: clip {clip}: ")
    kept = read_csv(tmp_path / "b" / "train.csv")
    assert clip.name not in {Path(r["wav"]).name for r in kept}
    assert len(kept) == len(read_tsv(tsv)) - 2


@pytest.mark.parametrize(
    "kind, reason",
    [("garbled", "corrupt_clip"), ("truncated_clip", "truncated_clip")],
)
def test_header_mode_misses_what_only_decoding_finds(
    corpus, tmp_path, kind, reason
):
    # Both keep a valid header (a truncated MP3's even promises its full
    # length): only decoding finds them.
    tsv = corpus / "en" / "train.tsv"
    clip = corpus / "en" / "clips" / read_tsv(tsv)[2][1]
    _damage_clip(clip, kind)
    header = prepare_common_voice(
        corpus, tmp_path / "h", ["en"], min_duration=0, verify_clips="header"
    )
    decoded = prepare_common_voice(
        corpus,
        tmp_path / "d",
        ["en"],
        min_duration=0,
        verify_clips="decode",
        skip_bad_rows=True,
    )
    assert decoded["en"]["train"]["dropped_by_reason"] == {reason: 1}
    assert header["en"]["train"]["kept"] == decoded["en"]["train"]["kept"] + 1


def test_verdicts_are_cached_and_a_changed_clip_is_checked_again(
    corpus, tmp_path, monkeypatch
):
    import speechbrain_sense.data.clip_check as clip_check

    opened = []
    original = clip_check.check_clip
    monkeypatch.setattr(
        clip_check,
        "check_clip",
        lambda path, *a: opened.append(Path(path).name) or original(path, *a),
    )

    def prepare(save, **options):
        return prepare_common_voice(
            corpus, save, ["en"], num_workers=0, **options
        )

    prepare(tmp_path / "a", min_duration=0)
    first = len(opened)
    assert first == PER_LANGUAGE
    # Other options, another save folder's manifests: no clip opened again.
    opened.clear()
    prepare(tmp_path / "a", min_duration=0, language_alpha=0.5)
    assert opened == []
    # A clip that changes on disk (size or mtime) is checked again.
    tsv = corpus / "en" / "train.tsv"
    clip = corpus / "en" / "clips" / read_tsv(tsv)[2][1]
    _damage_clip(clip, "corrupt_clip")
    with pytest.raises(CommonVoiceFormatError, match="corrupt"):
        prepare(tmp_path / "a", min_duration=0, language_alpha=0.3)
    assert opened == [clip.name]


def test_too_many_bad_rows_fail_even_when_skipping(corpus, tmp_path):
    tsv = corpus / "en" / "train.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    for k in range(12):
        lines.append(f"broken\trow {k}")
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CommonVoiceFormatError, match=r"12 of .* rows are bad"):
        prepare_common_voice(
            corpus, tmp_path / "a", ["en"], min_duration=0, skip_bad_rows=True
        )
    report = prepare_common_voice(
        corpus,
        tmp_path / "b",
        ["en"],
        min_duration=0,
        skip_bad_rows=True,
        max_bad_fraction=1.0,
    )
    assert report["en"]["train"]["dropped_by_reason"] == {"malformed_row": 12}
    assert len(report["en"]["train"]["first_bad_rows"]) == 12


def test_a_byte_order_mark_is_valid_utf8(corpus, tmp_path):
    expected = prepare_common_voice(
        corpus, tmp_path / "a", ["en"], min_duration=0
    )
    for name in ("train.tsv", "clip_durations.tsv"):
        path = corpus / "en" / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    report = prepare_common_voice(
        corpus, tmp_path / "b", ["en"], min_duration=0
    )
    assert report == expected
    for split in ("train", "dev", "test"):
        assert (tmp_path / "a" / f"{split}.csv").read_bytes() == (
            tmp_path / "b" / f"{split}.csv"
        ).read_bytes()


def test_a_byte_that_is_not_utf8_names_file_line_and_column(corpus, tmp_path):
    tsv = corpus / "en" / "train.tsv"
    lines = tsv.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"\t", b"\t\xe9t\xe9 ", 1)  # Latin-1 "été"
    tsv.write_bytes(b"\n".join(lines))
    with pytest.raises(
        CommonVoiceFormatError, match=rf"{tsv}:3: not UTF-8: byte 0xe9"
    ):
        prepare_common_voice(corpus, tmp_path / "a", ["en"], min_duration=0)
    report = prepare_common_voice(
        corpus, tmp_path / "b", ["en"], min_duration=0, skip_bad_rows=True
    )
    assert report["en"]["train"]["dropped_by_reason"] == {"bad_encoding": 1}
    # The other rows, non-ASCII ones included, are kept.
    assert report["en"]["train"]["kept"] == len(lines) - 3  # header, end


def test_a_bad_byte_in_the_header_is_always_an_error(corpus, tmp_path):
    tsv = corpus / "en" / "dev.tsv"
    tsv.write_bytes(b"client_id\xff" + tsv.read_bytes())
    with pytest.raises(CommonVoiceFormatError, match=rf"{tsv}:1: not UTF-8"):
        prepare_common_voice(
            corpus, tmp_path / "a", ["en"], min_duration=0, skip_bad_rows=True
        )


def test_a_nul_byte_is_a_malformed_row(corpus, tmp_path):
    tsv = corpus / "en" / "train.tsv"
    lines = tsv.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"\t", b"\tA\x00", 1)
    tsv.write_bytes(b"\n".join(lines))
    with pytest.raises(CommonVoiceFormatError, match=rf"{tsv}:2: .*NUL"):
        prepare_common_voice(corpus, tmp_path / "a", ["en"], min_duration=0)


@pytest.mark.parametrize("sentence", ["", "  \u3000 "], ids=["empty", "blank"])
def test_empty_and_blank_transcripts_are_dropped_and_counted(
    corpus, tmp_path, sentence
):
    tsv = corpus / "en" / "train.tsv"
    rows = read_tsv(tsv)
    column = rows[0].index("sentence")
    rows[1][column] = sentence
    tsv.write_text(
        "\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8"
    )
    report = prepare_common_voice(
        corpus, tmp_path / "a", ["en"], min_duration=0
    )
    assert report["en"]["train"]["dropped_by_reason"] == {"empty_sentence": 1}
    assert report["en"]["train"]["kept"] == len(rows) - 2


@pytest.mark.parametrize("bad", ["", " ", "..", "en/../ru"])
def test_a_language_code_that_is_not_a_folder_name_is_refused(
    corpus, tmp_path, bad
):
    # "" would read data_folder itself as a locale.
    with pytest.raises(ValueError, match="not a locale folder name"):
        prepare_common_voice(corpus, tmp_path / "a", ["en", bad])
