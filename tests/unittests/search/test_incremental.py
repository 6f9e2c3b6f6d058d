"""Re-indexing embeds only what changed, and survives being killed."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from speechbrain_sense.search.indexer import index_folder
from speechbrain_sense.search.query import query_index
from speechbrain_sense.search.store import SearchIndex
from speechbrain_sense.synthetic.search import TARGETS


def _index(folder, model, db):
    committed = []
    report = index_folder(
        folder,
        model,
        db,
        progress=False,
        group_seconds=0.0,
        on_commit=committed.append,
    )
    return report, committed


def _contents(db):
    """``{path: [(start, end, embedding bytes)]}`` of an index."""
    index = SearchIndex(db)
    rows = index.db.execute(
        "SELECT f.path, p.start, p.end, p.embedding FROM passages p "
        "JOIN files f ON f.id = p.file_id ORDER BY f.path, p.start"
    ).fetchall()
    matrix, ids = index.matrix_and_ids()
    assert len(matrix) == len(rows) == len(set(ids))
    index.close()
    out = {}
    for path, start, end, blob in rows:
        out.setdefault(path, []).append((start, end, blob))
    return out


def _hits(db, model):
    """Top hits per target; exact ties (copied files) ordered by path,
    since which copy comes first depends on the order they were added."""
    index = SearchIndex(db)
    try:
        return [
            sorted(
                (
                    (-round(h["score"], 4), h["path"], h["start"])
                    for h in query_index(index, model, text=target, k=4)
                ),
            )
            for target in TARGETS
        ]
    finally:
        index.close()


def test_only_new_and_changed_files_are_embedded(
    archive_copy, search_model, tmp_path
):
    db = tmp_path / "a.db"
    _, committed = _index(archive_copy, search_model, db)
    assert sorted(committed) == [
        b"rec0.wav",
        b"rec1.wav",
        b"rec2.wav",
        b"rec3.wav",
    ]
    report, committed = _index(archive_copy, search_model, db)
    assert committed == [] and report.unchanged == 4

    shutil.copy(archive_copy / "rec0.wav", archive_copy / "new.wav")
    shutil.copy(archive_copy / "rec2.wav", archive_copy / "rec1.wav")
    (archive_copy / "rec3.wav").unlink()
    # A new mtime but the same bytes: hashed, not re-embedded.
    os.utime(archive_copy / "rec0.wav", ns=(1, 10**18))
    report, committed = _index(archive_copy, search_model, db)
    assert sorted(committed) == [b"new.wav", b"rec1.wav"]
    assert report.deleted == 1 and report.unchanged == 2
    assert report.embedded == 2

    # The same index as one built from scratch on the final folder.
    fresh = tmp_path / "fresh.db"
    _index(archive_copy, search_model, fresh)
    assert _contents(db) == _contents(fresh)
    assert _hits(db, search_model) == _hits(fresh, search_model)
    assert all(
        h[1] != "rec3.wav" for hits in _hits(db, search_model) for h in hits
    )


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from speechbrain_sense.search.indexer import index_folder
    from speechbrain_sense.search.query import SearchModel

    done = []

    def after_commit(path):
        done.append(path)
        if len(done) == 2:
            # As `kill -9` would: no cleanup, no atexit, mid-run.
            os.kill(os.getpid(), signal.SIGKILL)

    index_folder(sys.argv[1], SearchModel(sys.argv[2]), sys.argv[3],
                 progress=False, group_seconds=0.0, on_commit=after_commit)
    """
)


def test_a_killed_run_resumes_without_loss_or_duplicates(
    archive_copy, search_archive, search_model, tmp_path
):
    db = tmp_path / "killed.db"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLER,
            str(archive_copy),
            str(search_archive[2]),
            str(db),
        ],
        capture_output=True,
    )
    assert run.returncode == -signal.SIGKILL
    # What was committed is whole: two files, three passages each.
    partial = _contents(db)
    assert sorted(partial) == [b"rec0.wav", b"rec1.wav"]
    assert all(len(passages) == 3 for passages in partial.values())

    report, committed = _index(archive_copy, search_model, db)
    assert sorted(committed) == [b"rec2.wav", b"rec3.wav"]
    assert report.unchanged == 2
    fresh = tmp_path / "fresh.db"
    _index(archive_copy, search_model, fresh)
    assert _contents(db) == _contents(fresh)


def test_query_after_a_killed_run_rebuilds_the_matrix(
    archive_copy, search_model, tmp_path
):
    db = tmp_path / "a.db"
    _index(archive_copy, search_model, db)
    index = SearchIndex(db)
    before = np.array(index.matrix())
    # A run that dies after committing a file but before publishing.
    (archive_copy / "rec3.wav").unlink()
    index.remove_files([b"rec3.wav"])
    index.close()
    index = SearchIndex(db)
    assert len(index.matrix()) == len(before) - 3
    index.close()


class _StopError(Exception):
    """Raised from ``on_commit`` to stop a run between two files."""


def test_new_passage_settings_re_embed_everything_even_across_a_stop(
    archive_copy, search_model, tmp_path
):
    from speechbrain_sense.search.indexer import PassageSettings

    db = tmp_path / "a.db"
    _index(archive_copy, search_model, db)
    windows = PassageSettings(vad=False, max_passage=2.0, overlap=0.5)
    done = []

    def stop_after_two(path):
        done.append(path)
        if len(done) == 2:
            raise _StopError

    with pytest.raises(_StopError):
        index_folder(
            archive_copy,
            search_model,
            db,
            settings=windows,
            progress=False,
            group_seconds=0.0,
            on_commit=stop_after_two,
        )
    committed = []
    index_folder(
        archive_copy,
        search_model,
        db,
        settings=windows,
        progress=False,
        group_seconds=0.0,
        on_commit=committed.append,
    )
    # The two files the stopped run did not reach, and only those.
    assert sorted(committed + done) == [
        b"rec0.wav",
        b"rec1.wav",
        b"rec2.wav",
        b"rec3.wav",
    ]
    assert not set(committed) & set(done)
    # The fresh index embeds file by file too (group_seconds=0.0), as the
    # two runs above did: a batch of other composition may round the
    # embeddings differently, and the bytes are compared exactly.
    fresh = tmp_path / "fresh.db"
    index_folder(
        archive_copy,
        search_model,
        fresh,
        settings=windows,
        progress=False,
        group_seconds=0.0,
    )
    assert _contents(db) == _contents(fresh)
    assert all(
        e - s <= 2.0 + 1e-9
        for passages in _contents(db).values()
        for s, e, _ in passages
    )
