"""SLUE-VoxPopuli and MEDIA preparation on synthetic releases."""

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from speechbrain_sense.metrics.slu import format_tagged
from speechbrain_sense.synthetic.slu import (
    MEDIA_DATA_DIR,
    make_synthetic_media,
    make_synthetic_slue_voxpopuli,
)
from speechbrain_sense.tasks.slu import load_segment

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
sys.path.insert(0, str(RECIPES / "SLUE-VoxPopuli/NER"))
sys.path.insert(0, str(RECIPES / "MEDIA/SLU/SENSE"))
from media_prepare import (  # noqa: E402
    MediaFormatError,
    normalize_words,
    prepare_media,
    read_dialogues,
)
from slue_voxpopuli_prepare import (  # noqa: E402
    SlueFormatError,
    prepare_slue_voxpopuli,
    tag_transcript,
)


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def slue_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("slue")
    per_split = {"fine-tune": 6, "dev": 3, "test": 2}
    annotations = make_synthetic_slue_voxpopuli(root, per_split, seed=4)
    return root, annotations


@pytest.fixture(scope="module")
def media_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    dialogues = {"train": 2, "dev": 1, "test": 1}
    return root, make_synthetic_media(root, dialogues, seed=4)


@pytest.fixture
def slue_copy(slue_release, tmp_path):
    return Path(shutil.copytree(slue_release[0], tmp_path / "slue"))


def test_slue_manifests_hold_the_known_annotation(slue_release, tmp_path):
    root, annotations = slue_release
    report = prepare_slue_voxpopuli(root, tmp_path / "save")
    for split, source in (("train", "fine-tune"), ("dev", "dev")):
        rows = read_csv(tmp_path / "save" / f"{split}.csv")
        assert [r["ID"] for r in rows] == list(annotations[source])
        for row in rows:
            truth = annotations[source][row["ID"]]
            assert row["tagged"] == format_tagged(
                truth["words"], truth["spans"]
            )
            # Sentence-final full stops are removed, as SLUE does.
            assert row["text"] == " ".join(truth["words"])
            assert row["wav"] == f"$data_root/{source}/{row['ID']}.ogg"
            assert float(row["duration"]) > 0.5
        assert report[split]["kept"] == len(annotations[source])
    # SLUE's test labels are blind: the dev set is the test set.
    assert read_csv(tmp_path / "save/test.csv") == read_csv(
        tmp_path / "save/dev.csv"
    )
    counted = sum(report["train"]["entities"].values())
    assert counted == sum(
        len(a["spans"]) for a in annotations["fine-tune"].values()
    )


def test_slue_preparation_is_idempotent(slue_release, tmp_path, caplog):
    root, _ = slue_release
    prepare_slue_voxpopuli(root, tmp_path)
    stamp = (tmp_path / "train.csv").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        prepare_slue_voxpopuli(root, tmp_path)
    assert "are up to date" in caplog.text
    assert (tmp_path / "train.csv").stat().st_mtime_ns == stamp
    # Other options: prepared again.
    prepare_slue_voxpopuli(root, tmp_path, skip_bad_rows=True)
    assert (tmp_path / "train.csv").stat().st_mtime_ns != stamp
    options = json.loads((tmp_path / "prepare_options.json").read_text())
    assert options["skip_bad_rows"] is True


def corrupt_line(path, line, column, value):
    lines = path.read_text(encoding="utf-8").splitlines()
    fields = lines[line - 1].split("\t")
    fields[column] = value
    lines[line - 1] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    "value, message",
    [
        ("[['PERSON', 0", "not a list"),
        ("[['PERSON', 1, 3]]", "does not cover whole words"),
        ("[['MONSTER', 0, 3]]", "unknown SLUE label"),
    ],
)
def test_slue_malformed_row_names_file_and_line(
    slue_copy, tmp_path, value, message
):
    tsv = slue_copy / "slue-voxpopuli_dev.tsv"
    corrupt_line(tsv, 3, 8, value)
    with pytest.raises(SlueFormatError, match=f"{tsv}:3: .*{message}"):
        prepare_slue_voxpopuli(slue_copy, tmp_path / "save")
    report = prepare_slue_voxpopuli(
        slue_copy, tmp_path / "skip", skip_bad_rows=True
    )
    assert report["dev"]["dropped_by_reason"] == {"malformed_row": 1}
    assert report["dev"]["kept"] == 2


def test_slue_missing_audio_and_blind_test(slue_copy, tmp_path):
    with pytest.raises(FileNotFoundError, match="blind"):
        prepare_slue_voxpopuli(slue_copy, tmp_path / "b", test_split="test")
    audio = sorted((slue_copy / "dev").glob("*.ogg"))[0]
    audio.unlink()
    with pytest.raises(SlueFormatError, match=r"_dev.tsv:2: no audio dev/"):
        prepare_slue_voxpopuli(slue_copy, tmp_path / "a")


def test_slue_first_release_maps_ontonotes_labels(slue_copy, tmp_path):
    """Without the combined columns, normalized_ner is mapped and SLUE's
    discarded labels are dropped."""
    tsv = slue_copy / "slue-voxpopuli_fine-tune.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t")[:7] for line in lines]
    # One entity becomes a discarded OntoNotes label (EVENT).
    first = rows[1][6]
    rows[1][6] = first.replace(first.split("'")[1], "EVENT", 1)
    tsv.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    prepare_slue_voxpopuli(slue_copy, tmp_path / "save")
    combined = read_csv(tmp_path / "save/train.csv")
    reference = read_csv(tmp_path / "save/dev.csv")
    assert reference  # dev untouched, still combined labels
    # first.count("[") - 1 entities, one discarded.
    assert combined[0]["tagged"].split().count(">") == first.count("[") - 2
    assert "<EVENT>" not in combined[0]["tagged"]
    assert {"<PLACE>", "<WHEN>", "<QUANT>"} & {
        token for row in combined for token in row["tagged"].split()
    }


def test_tag_transcript_punctuation_and_boundaries():
    text = "in europe. the commission, will"
    plain, tagged = tag_transcript(
        text, [("PLACE", 3, 6), ("ORG", 11, 15)], "x:2"
    )
    assert plain == "in europe the commission will"
    assert tagged == "in <PLACE> europe > <ORG> the commission > will"
    # The span may include the trailing punctuation.
    assert tag_transcript(text, [("PLACE", 3, 7)], "x:2")[1].startswith(
        "in <PLACE> europe >"
    )
    with pytest.raises(SlueFormatError, match="x:2: .*whole words"):
        tag_transcript(text, [("PLACE", 3, 4)], "x:2")
    with pytest.raises(SlueFormatError, match="overlapping"):
        tag_transcript(text, [("A", 0, 9), ("B", 3, 6)], "x:2")


@pytest.mark.parametrize("method", ["full", "relax"])
def test_media_manifests_hold_the_known_annotation(
    media_release, tmp_path, method
):
    root, annotations = media_release
    report = prepare_media(root, tmp_path, root / "channels.csv", method=method)
    for split in ("train", "dev", "test"):
        rows = read_csv(tmp_path / f"{split}.csv")
        truth = annotations[split]
        assert len(rows) == len(truth) == report[split]["kept"]
        key = lambda r: (r["dialogue"], r["start"])  # noqa: E731
        for row, segment in zip(rows, sorted(truth, key=key)):
            # Wizard turns and the withContext="true" annotation are left
            # out: only the caller's context-free concepts remain.
            assert row["tagged"] == segment[method]
            assert float(row["start"]) == pytest.approx(segment["start"])
            assert float(row["stop"]) == pytest.approx(segment["stop"])
            assert row["channel"] == {"L": "0", "R": "1"}[segment["channel"]]
            assert row["ID"].startswith(
                segment["channel"] + segment["dialogue"]
            )
    concepts = report["train"]["concepts"]
    if method == "relax":
        assert all("-reservation" not in c for c in concepts)
    else:
        assert any(c.endswith("-reservation") for c in concepts)


def test_media_segment_audio_is_the_caller(media_release, tmp_path):
    root, _ = media_release
    prepare_media(root, tmp_path, root / "channels.csv")
    row = read_csv(tmp_path / "dev.csv")[0]
    wav = row["wav"].replace("$data_root", str(root))
    start, stop = float(row["start"]), float(row["stop"])
    caller = load_segment(wav, start, stop, int(row["channel"]))
    other = load_segment(wav, start, stop, 1 - int(row["channel"]))
    assert caller.shape[0] == pytest.approx((stop - start) * 16000, abs=2)
    assert caller.abs().mean() > 10 * other.abs().mean()
    assert torch.isfinite(caller).all()


def test_media_idempotent_and_errors(media_release, tmp_path, caplog):
    root, _ = media_release
    channels = root / "channels.csv"
    prepare_media(root, tmp_path / "a", channels)
    with caplog.at_level("INFO"):
        prepare_media(root, tmp_path / "a", channels)
    assert "are up to date" in caplog.text
    # A dialogue missing from channels.csv: the error names the file.
    partial = tmp_path / "channels.csv"
    partial.write_text("\n".join(channels.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(MediaFormatError, match=f"{partial}: no channel"):
        prepare_media(root, tmp_path / "b", partial)
    bad = tmp_path / "bad_channels.csv"
    bad.write_text("X,1001\n")
    with pytest.raises(MediaFormatError, match=f"{bad}:1:"):
        prepare_media(root, tmp_path / "c", bad)
    with pytest.raises(ValueError, match="full' or 'relax"):
        prepare_media(root, tmp_path / "d", channels, method="strict")


def test_media_sync_inside_a_concept_waits_for_its_end(tmp_path):
    xml = tmp_path / "media_lot1.xml"
    xml.write_bytes(
        (
            '<?xml version="1.0" encoding="ISO-8859-1"?><corpus>'
            '<dialogue id="7" nameSpk="speaker#7"><turn speaker="spk" '
            'startTime="1.0" endTime="9.0"><semAnnotation withContext="false">'
            '<sem concept="null" specif="null"><transcription>'
            '<Sync time="1.5"/>bonjour<Sync time="3.0"/>euh</transcription>'
            '</sem><sem concept="temps-date" specif="-reservation">'
            '<transcription>le douze mars (rire)<Sync time="5.0"/>'
            "</transcription></sem>"
            '<sem concept="null" specif="null"><transcription>merci'
            "</transcription></sem></semAnnotation></turn></dialogue>"
            "</corpus>"
        ).encode("iso-8859-1")
    )
    (dialogue,) = read_dialogues(xml, "full")
    assert dialogue["speaker"] == "speaker_7"
    assert dialogue["segments"] == [
        # The first Sync moves the start; the second cuts (no concept open).
        (1.5, 3.0, "bonjour"),
        # A Sync after the concept's last word cuts at the concept's end.
        (3.0, 5.0, "euh <temps-date-reservation> le douze mars * >"),
        (5.0, 9.0, "merci"),
    ]
    assert read_dialogues(xml, "relax")[0]["segments"][1][2] == (
        "euh <temps-date> le douze mars * >"
    )
    (tmp_path / "broken.xml").write_text("<corpus><dialogue>")
    with pytest.raises(MediaFormatError, match="broken.xml"):
        read_dialogues(tmp_path / "broken.xml", "full")


def test_media_normalisation():
    assert normalize_words("d'accord , (rire) vingt-deux  chambres !") == (
        "d' accord * vingt deux chambres"
    )
    assert normalize_words(" c'est  l'hôtel") == "c'est l' hôtel"
    assert normalize_words(" ?! ") == ""
    assert MEDIA_DATA_DIR == "E0024/MEDIA1FR_00/MEDIA1FR/DATA"
