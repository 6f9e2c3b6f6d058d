"""Idempotent preparation bookkeeping."""

import csv

from speechbrain_sense.preparation import (
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
