"""Passage cutting and the index store, without a model."""

import numpy as np
import pytest

from speechbrain_sense.search.passages import (
    fixed_spans,
    passage_spans,
    window_spans,
)
from speechbrain_sense.search.store import INDEXED, SearchIndex


@pytest.mark.parametrize("length", [0.5, 10.0, 10.01, 33.3, 61.0])
def test_windows_cover_the_stretch_and_respect_the_bounds(length):
    spans = window_spans(2.0, 2.0 + length, window=10.0, overlap=2.0)
    assert spans[0][0] == 2.0 and spans[-1][1] == pytest.approx(2 + length)
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        assert s1 <= e0 - 2.0 + 1e-9  # consecutive windows overlap >= 2 s
        assert s0 < s1
    assert all(e - s <= 10.0 + 1e-9 for s, e in spans)


def test_segments_merge_across_short_pauses_only():
    segments = [(0.0, 1.0), (1.5, 3.0), (5.0, 6.0), (6.2, 7.0)]
    assert passage_spans(segments, max_passage=15.0, max_gap=1.0) == [
        (0.0, 3.0),
        (5.0, 7.0),
    ]
    # Merging stops at the passage bound.
    assert passage_spans(segments, max_passage=2.5, max_gap=1.0) == [
        (0.0, 1.0),
        (1.5, 3.0),
        (5.0, 7.0),
    ]


def test_a_long_segment_is_windowed_and_nothing_is_lost():
    spans = passage_spans([(0.5, 1.0), (1.2, 40.0)], max_passage=15.0)
    assert spans[0] == (0.5, 1.0)
    assert spans[1][0] == 1.2 and spans[-1][1] == 40.0
    assert all(e - s <= 15.0 + 1e-9 for s, e in spans)


def test_fixed_spans_and_bad_windows():
    assert fixed_spans(0.0) == []
    assert fixed_spans(20.0, window=10.0, overlap=0.0) == [
        (0.0, 10.0),
        (10.0, 20.0),
    ]
    with pytest.raises(ValueError, match="overlap < window"):
        window_spans(0, 5, window=2.0, overlap=2.0)


def _file(index, name, vectors):
    spans = [(float(i), float(i) + 0.5) for i in range(len(vectors))]
    return index.replace_file(
        name, 1, 1, "h", 2.0, INDEXED, None, spans, np.array(vectors)
    )


def test_replacing_a_file_replaces_all_its_passages(tmp_path):
    index = SearchIndex(tmp_path / "s.db", create=True)
    index.bind({"fingerprint": "x", "dim": 2}, tmp_path)
    _file(index, b"a.wav", [[1, 0], [0, 1]])
    _file(index, b"b.wav", [[1, 1]])
    _file(index, b"a.wav", [[0.5, 0.5]])
    matrix, ids = index.matrix_and_ids()
    paths = [index.passage(i)["path"] for i in ids]
    assert sorted(paths) == [b"a.wav", b"b.wav"]
    assert matrix.dtype == np.float16 and matrix.shape == (2, 2)
    with pytest.raises(ValueError, match="2 passages but 1 embeddings"):
        index.replace_file(
            b"c.wav",
            1,
            1,
            "h",
            1.0,
            INDEXED,
            None,
            [(0, 1), (1, 2)],
            np.ones((1, 2)),
        )
    index.remove_files([b"a.wav"])
    assert [index.passage(i)["path"] for i in index.matrix_and_ids()[1]] == [
        b"b.wav"
    ]
    index.close()


def test_a_new_snapshot_replaces_the_old_one_whole(tmp_path):
    index = SearchIndex(tmp_path / "s.db", create=True)
    index.bind({"fingerprint": "x", "dim": 2}, tmp_path)
    _file(index, b"a.wav", [[1, 0], [0, 1]])
    _file(index, b"b.wav", [[1, 1]])
    old_matrix, old_ids = index.matrix_and_ids()
    old_file = index.vectors_path
    # Another process (a server) holds the old snapshot mapped meanwhile.
    reader = SearchIndex(tmp_path / "s.db")
    assert reader.matrix().shape == (3, 2)
    index.remove_files([b"a.wav"])
    matrix, ids = index.matrix_and_ids()
    assert matrix.shape == (1, 2) and len(ids) == 1
    assert index.vectors_path != old_file and not old_file.exists()
    names = sorted(p.name for p in tmp_path.glob("s.db.vectors*"))
    assert names == [
        "s.db.vectors.3.ids.npy",
        "s.db.vectors.3.npy",
        "s.db.vectors.json",
    ]
    # The unlinked old files still read, as mapped; the reader moves on.
    assert old_matrix.shape == (3, 2) and float(old_matrix.sum()) == 4.0
    assert list(reader.matrix_and_ids()[1]) == list(ids)
    reader.close()
    index.close()
