"""Manifests keep transcripts byte for byte and resolve only path roots."""

import csv

import pytest

from speechbrain_sense.data.manifests import read_manifest


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerows(rows)
    return path


def test_dollar_signs_in_text_survive(tmp_path):
    path = write(
        tmp_path / "m.csv",
        [
            ["ID", "duration", "wav", "sentence"],
            ["a", "2.25", "$data_root/en/clips/a.mp3", "It costs $5, or 5$."],
            ["b", "1", "/abs/b.mp3", "$data_root is a literal here"],
        ],
    )
    data = read_manifest(path, {"data_root": "/cv"})
    assert data["a"] == {
        "duration": 2.25,
        "wav": "/cv/en/clips/a.mp3",
        "sentence": "It costs $5, or 5$.",
    }
    assert data["b"]["wav"] == "/abs/b.mp3"
    assert data["b"]["sentence"] == "$data_root is a literal here"


def test_errors_name_file_and_line(tmp_path):
    dup = write(tmp_path / "dup.csv", [["ID", "wav"], ["a", "x"], ["a", "y"]])
    with pytest.raises(ValueError, match=rf"{dup}:3: duplicate ID 'a'"):
        read_manifest(dup)
    missing = write(tmp_path / "root.csv", [["ID", "wav"], ["a", "$root/x"]])
    with pytest.raises(KeyError, match=r"root.csv:2: .*\$root"):
        read_manifest(missing, {"data_root": "/cv"})
    no_id = write(tmp_path / "noid.csv", [["wav"], ["x"]])
    with pytest.raises(ValueError, match="'ID' column"):
        read_manifest(no_id)
