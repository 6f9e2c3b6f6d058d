"""Bad files, odd names and odd folders: a counted skip or a clear error."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from speechbrain_sense.search.indexer import index_folder, walk_audio
from speechbrain_sense.search.query import query_index
from speechbrain_sense.search.store import SearchIndex, SearchIndexError
from speechbrain_sense.synthetic.search import TARGETS

LATIN1_NAME = b"r\xe9sum\xe9.wav"  # not valid UTF-8


@pytest.fixture
def messy_folder(archive_copy, tmp_path):
    """The archive plus every kind of trouble a real folder holds."""
    (archive_copy / "corrupt.mp3").write_bytes(os.urandom(4000))
    (archive_copy / "empty.wav").write_bytes(b"")
    soundfile.write(archive_copy / "silent0.wav", np.zeros(0), 16000)
    soundfile.write(archive_copy / "hush.flac", np.zeros(48000), 16000)
    (archive_copy / "notes.txt").write_text("not audio")
    sub = archive_copy / "sub"
    sub.mkdir()
    shutil.move(archive_copy / "rec3.wav", sub / "rec3.wav")
    os.symlink("..", sub / "loop")  # sub/loop/sub/loop/...
    outside = tmp_path / "outside"
    outside.mkdir()
    soundfile.write(outside / "secret.wav", np.zeros(16000), 16000)
    os.symlink(outside, archive_copy / "elsewhere")
    os.symlink(outside / "secret.wav", archive_copy / "secret.wav")
    os.rename(
        archive_copy / "rec0.wav",
        os.path.join(os.fsencode(archive_copy), LATIN1_NAME),
    )
    return archive_copy


def test_troubles_are_counted_and_named(messy_folder, search_model, tmp_path):
    db = tmp_path / "messy.db"
    report = index_folder(messy_folder, search_model, db, progress=False)
    unreadable = dict(report.unreadable)
    assert sorted(unreadable) == ["corrupt.mp3", "empty.wav", "silent0.wav"]
    assert "corrupt or not an audio file" in unreadable["corrupt.mp3"]
    assert "the file is empty" in unreadable["empty.wav"]
    assert "holds no samples" in unreadable["silent0.wav"]
    skipped = dict(report.skipped)
    assert "outside the folder" in skipped["elsewhere"]
    assert "outside the folder" in skipped["secret.wav"]
    assert any("loop" in reason for reason in skipped.values())
    assert report.no_speech == 1  # hush.flac: decoded, nothing said
    # The four recordings, one of them under a Latin-1 name, one in sub/.
    assert report.embedded == 4 and report.passages == 12
    summary = report.summary()
    assert "3 unreadable" in summary and "corrupt.mp3" in summary

    index = SearchIndex(db)
    hit = query_index(index, search_model, text=TARGETS[0], k=1)[0]
    assert (
        hit["raw_path"] == LATIN1_NAME and hit["path"] == "r\\xe9sum\\xe9.wav"
    )
    hit = query_index(index, search_model, text=TARGETS[3], k=1)[0]
    assert hit["path"] == "sub/rec3.wav"
    index.close()

    # Unchanged unreadable files are not retried, but still reported.
    committed = []
    again = index_folder(
        messy_folder,
        search_model,
        db,
        progress=False,
        on_commit=committed.append,
    )
    assert committed == [] and len(again.unreadable) == 3


def test_a_loop_is_walked_once(tmp_path):
    (tmp_path / "a").mkdir()
    soundfile.write(tmp_path / "a" / "x.wav", np.zeros(1600), 16000)
    os.symlink(tmp_path, tmp_path / "a" / "up")
    os.symlink(tmp_path / "a", tmp_path / "alias")
    found = walk_audio(tmp_path)
    assert [rel for rel, _ in found] == [b"a/x.wav"]


def test_not_an_index_and_no_index(tmp_path, search_archive):
    (tmp_path / "text.db").write_text("this is not SQLite " * 100)
    with pytest.raises(SearchIndexError, match="is not a search index"):
        SearchIndex(tmp_path / "text.db")
    with pytest.raises(SearchIndexError, match="no search index at"):
        SearchIndex(tmp_path / "missing.db")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_sense.search",
            "query",
            str(tmp_path / "missing.db"),
            "hello",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "no search index at" in run.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_sense.search",
            "index",
            str(tmp_path / "nowhere"),
            "--model",
            str(search_archive[2]),
            "--db",
            str(tmp_path / "x.db"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "is not a folder" in run.stderr


def test_one_index_per_folder(search_archive, search_model, tmp_path):
    db = tmp_path / "a.db"
    index_folder(search_archive[0], search_model, db, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(SearchIndexError, match="use another --db"):
        index_folder(other, search_model, db, progress=False)


def test_empty_queries_are_refused(search_archive, search_model, tmp_path):
    db = tmp_path / "a.db"
    index_folder(search_archive[0], search_model, db, progress=False)
    index = SearchIndex(db)
    with pytest.raises(ValueError, match="empty"):
        query_index(index, search_model, text="   ")
    with pytest.raises(ValueError, match="exactly one"):
        query_index(index, search_model)
    index.close()
