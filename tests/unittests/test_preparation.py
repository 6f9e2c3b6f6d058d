"""Idempotent preparation bookkeeping."""

import csv

import pytest

from speechbrain_sense.data.preparation import (
    ManifestWriter,
    already_prepared,
    mark_prepared,
    write_manifest,
)


def test_prepared_only_with_every_output_and_the_same_options(tmp_path):
    options = {"languages": ["en", "fr"], "min_duration": 0.5}
    outputs = ["train.csv", "report.json"]
    (tmp_path / "train.csv").write_text("ID\n")
    mark_prepared(tmp_path, options)
    # An output is missing: a crash between the manifests and the report.
    assert not already_prepared(tmp_path, options, outputs)
    (tmp_path / "report.json").write_text("{}")
    assert already_prepared(tmp_path, options, outputs)
    # Tuples and lists serialise the same: not a change of options.
    assert already_prepared(
        tmp_path, {"languages": ("en", "fr"), "min_duration": 0.5}, outputs
    )
    assert not already_prepared(
        tmp_path, {"languages": ["en"], "min_duration": 0.5}, outputs
    )
    assert not already_prepared(tmp_path, options, outputs, "other.json")


def test_manifest_round_trip_keeps_special_characters(tmp_path):
    rows = [
        {"ID": "a", "text": 'It costs 5$, "cheap", no?'},
        {"ID": "b", "text": "línea\twith tab"},
    ]
    path = tmp_path / "train.csv"
    write_manifest(path, rows, ["ID", "text"])
    with open(path, encoding="utf-8", newline="") as f:
        assert list(csv.DictReader(f)) == rows
    assert [p.name for p in tmp_path.iterdir()] == ["train.csv"]


def test_streamed_manifest_appears_only_on_commit(tmp_path):
    rows = [
        {"ID": "a", "text": 'It costs 5$, "cheap", no?'},
        {"ID": "b", "text": "línea\twith tab"},
    ]
    write_manifest(tmp_path / "all.csv", rows, ["ID", "text"])
    path = tmp_path / "train.csv"
    path.write_text("previous\n")
    with ManifestWriter(path, ["ID", "text"]) as writer:
        writer.writerow(rows[0])
        writer.writerows(rows[1:])
        assert writer.rows == 2
        assert path.read_text() == "previous\n"
        writer.commit()
        with pytest.raises(ValueError, match="already committed"):
            writer.commit()
    # The same bytes as writing every row at once.
    assert path.read_bytes() == (tmp_path / "all.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "all.csv",
        "train.csv",
    ]


def test_streamed_manifest_is_discarded_on_error_or_without_commit(tmp_path):
    path = tmp_path / "dev.csv"
    path.write_text("previous\n")
    with pytest.raises(RuntimeError), ManifestWriter(path, ["ID"]) as writer:
        writer.writerow({"ID": "a"})
        raise RuntimeError("preparation failed")
    with ManifestWriter(path, ["ID"]) as writer:
        writer.writerow({"ID": "b"})
    writer.discard()  # a second time: nothing to do
    assert path.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dev.csv"]
    # A row with a column the manifest lacks is an error (as DictWriter).
    with pytest.raises(ValueError), ManifestWriter(path, ["ID"]) as writer:
        writer.writerow({"ID": "c", "extra": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["dev.csv"]
