"""Tests for the on-disk teacher embedding cache."""

import hashlib
import json
import logging
import pickle

import numpy as np
import pytest
import torch

from speechbrain_sense.teachers import cache as teacher_cache
from speechbrain_sense.teachers.cache import (
    TeacherEmbeddingCache,
    normalize_text,
)
from speechbrain_sense.teachers.sentence_encoders import CallableSentenceEncoder
from speechbrain_sense.testing import free_port

DIM = 8
TEXTS = [
    "the cat sleeps",
    "le chat dort",
    "die Katze schläft",
    "el gato duerme",
    "кошка спит",
]


def raw_vectors(texts):
    """Deterministic, text-dependent, not normalised vectors."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4])
        rows.append(np.random.default_rng(seed).normal(size=DIM) * 3.0)
    return np.stack(rows)


def expected(texts):
    out = torch.from_numpy(raw_vectors(texts).astype(np.float32))
    return torch.nn.functional.normalize(out, dim=-1)


class CountingFunction:
    """Wraps :func:`raw_vectors` and records every text it embeds."""

    def __init__(self):
        self.seen = []

    def __call__(self, texts):
        self.seen.extend(texts)
        return raw_vectors(texts)

    @property
    def count(self):
        return len(self.seen)

    def reset(self):
        self.seen = []


def make_cache(cache_dir, name="hash-v1", dtype="float32", config=None):
    function = CountingFunction()
    teacher = CallableSentenceEncoder(function, name=name, config=config)
    return TeacherEmbeddingCache(cache_dir, teacher, dtype=dtype), function


def siblings(cache, pattern):
    return sorted(cache.path.parent.glob(f"{cache.path.name}{pattern}"))


# --------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("  a  b ", "a b"),
        ("a\tb\nc\r\nd", "a b c d"),
        ("Cafe\u0301", "Café"),
        ("x\u00a0y\u2028z", "x y z"),
        ("already fine", "already fine"),
    ],
)
def test_normalize_text(raw, normalised):
    assert normalize_text(raw) == normalised


# --------------------------------------------------------------------------
# hits and misses
# --------------------------------------------------------------------------


def test_build_computes_each_text_once(tmp_path):
    cache, function = make_cache(tmp_path)
    assert cache.build(TEXTS, batch_size=2) == 5
    assert sorted(function.seen) == sorted(TEXTS)
    assert len(cache) == 5

    function.reset()
    assert cache.build(TEXTS) == 5
    assert function.count == 0

    # a fresh object on the same directory reuses the store too
    again, function_again = make_cache(tmp_path)
    assert again.path == cache.path
    new = ["a new sentence", "noch ein Satz"]
    assert again.build(new + TEXTS + new) == 7
    assert sorted(function_again.seen) == sorted(new)

    torch.testing.assert_close(again.lookup(TEXTS + new), expected(TEXTS + new))
    # the first object still serves its (older) view; building refreshes it
    torch.testing.assert_close(cache.lookup(TEXTS), expected(TEXTS))
    function.reset()
    assert cache.build(TEXTS + new) == 7
    assert function.count == 0
    torch.testing.assert_close(cache.lookup(TEXTS + new), expected(TEXTS + new))


def test_lookup_values_and_variants(tmp_path):
    cache, function = make_cache(tmp_path)
    cache.build(["Café  noir", "the cat sleeps\n", "the cat sleeps"])
    assert function.seen == ["Café noir", "the cat sleeps"]
    assert len(cache) == 2
    row = cache["Café noir"]
    assert row.shape == (DIM,) and row.dtype == torch.float32
    torch.testing.assert_close(row, expected(["Café noir"])[0])
    for variant in ("Cafe\u0301 noir", " Café\tnoir ", "Café\n\nnoir"):
        assert variant in cache
        assert torch.equal(cache[variant], row)
    assert cache.dim == DIM
    assert cache.lookup([]).shape == (0, DIM)


def test_unknown_text_raises_helpful_key_error(tmp_path):
    cache, _ = make_cache(tmp_path)
    cache.build(TEXTS)
    assert "never seen" not in cache
    with pytest.raises(KeyError) as info:
        cache["never seen"]
    message = str(info.value)
    assert "never seen" in message
    assert str(cache.path) in message
    assert "build()" in message


def test_empty_transcript_rejected(tmp_path):
    cache, function = make_cache(tmp_path)
    with pytest.raises(ValueError, match="empty transcript"):
        cache.build(["fine", " \t "])
    assert function.count == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0])
def test_a_broken_teacher_embedding_is_never_cached(tmp_path, bad):
    cache, function = make_cache(tmp_path)
    cache.build(TEXTS[:2])
    poisoned = TEXTS[3]

    def broken(texts):
        vectors = raw_vectors(texts)
        vectors[texts.index(poisoned)] = 0.0 if bad == 0 else vectors[0]
        if bad != 0:
            vectors[texts.index(poisoned), 1] = bad
        return vectors

    cache.teacher.function = broken
    with pytest.raises(ValueError, match=f"1 of 2 transcripts.*{poisoned}"):
        cache.build(TEXTS[:4])
    # The store is as it was: the old texts, nothing of the failed build.
    reopened, _ = make_cache(tmp_path)
    assert len(reopened) == 2 and poisoned not in reopened
    torch.testing.assert_close(reopened.lookup(TEXTS[:2]), expected(TEXTS[:2]))


def test_invalid_dtype_rejected(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        make_cache(tmp_path, dtype="bfloat16")


def test_store_files(tmp_path):
    cache, _ = make_cache(tmp_path)
    cache.build(TEXTS)
    index = json.loads((cache.path / "index.json").read_text())
    assert index["count"] == 5 and index["dim"] == DIM
    assert index["identity"] == cache.identity
    texts = (cache.path / "texts.txt").read_text(encoding="utf-8")
    assert texts.split("\n")[:-1] == sorted(TEXTS)
    stored = np.load(cache.path / "embeddings.npy")
    assert stored.dtype == np.float32 and stored.shape == (5, DIM)
    np.testing.assert_allclose(
        stored, expected(sorted(TEXTS)).numpy(), rtol=0, atol=1e-7
    )
    # no temporary folders are left behind
    assert [p.name for p in tmp_path.iterdir()] == [cache.path.name]


# --------------------------------------------------------------------------
# invalidation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        {"name": "hash-v2"},
        {"config": {"layer": 3}},
        {"dtype": "float16"},
    ],
)
def test_other_identity_is_another_store(tmp_path, other):
    cache, _ = make_cache(tmp_path)
    cache.build(TEXTS)
    other_cache, function = make_cache(tmp_path, **other)
    assert other_cache.path != cache.path
    assert other_cache.path.parent == cache.path.parent
    other_cache.build(TEXTS)
    assert sorted(function.seen) == sorted(TEXTS)
    # the first store is untouched
    reopened, first_function = make_cache(tmp_path)
    reopened.build(TEXTS)
    assert first_function.count == 0


def test_float16_store(tmp_path):
    cache, _ = make_cache(tmp_path, dtype="float16")
    cache.build(TEXTS)
    assert np.load(cache.path / "embeddings.npy").dtype == np.float16
    out = cache.lookup(TEXTS)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected(TEXTS), atol=1e-3, rtol=0)
    assert not torch.equal(out, expected(TEXTS))


def test_key_is_stable(tmp_path):
    a, _ = make_cache(tmp_path / "x")
    b, _ = make_cache(tmp_path / "x")
    assert a.path == b.path
    assert len(a.path.name) == 16


# --------------------------------------------------------------------------
# corruption
# --------------------------------------------------------------------------


def _truncate_embeddings(path):
    data = (path / "embeddings.npy").read_bytes()
    (path / "embeddings.npy").write_bytes(data[: len(data) - 7])


def _flip_embedding_byte(path):
    data = bytearray((path / "embeddings.npy").read_bytes())
    data[-5] ^= 0x10  # inside the last vector, not the header
    (path / "embeddings.npy").write_bytes(bytes(data))


def _corrupt_index(path):
    text = (path / "index.json").read_text()
    (path / "index.json").write_text(text[: len(text) // 2])


def _delete_texts(path):
    (path / "texts.txt").unlink()


def _flip_text_byte(path):
    data = bytearray((path / "texts.txt").read_bytes())
    data[2] ^= 0x01
    (path / "texts.txt").write_bytes(bytes(data))


@pytest.mark.parametrize(
    "corrupt",
    [
        _truncate_embeddings,
        _flip_embedding_byte,
        _corrupt_index,
        _delete_texts,
        _flip_text_byte,
    ],
)
def test_corrupt_store_is_moved_aside_and_rebuilt(tmp_path, corrupt, caplog):
    cache, function = make_cache(tmp_path)
    cache.build(TEXTS)
    corrupt(cache.path)

    fresh, function = make_cache(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert fresh.build(TEXTS) == 5
    assert sorted(function.seen) == sorted(TEXTS)
    aside = siblings(cache, ".corrupt-*")
    assert len(aside) == 1
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    torch.testing.assert_close(fresh.lookup(TEXTS), expected(TEXTS))
    # and the rebuilt store is sound
    function.reset()
    fresh.build(TEXTS)
    assert function.count == 0


def test_two_corruptions_in_the_same_second(tmp_path, monkeypatch):
    monkeypatch.setattr(teacher_cache.time, "time", lambda: 1_700_000_000.0)
    cache, function = make_cache(tmp_path)
    cache.build(TEXTS)
    _delete_texts(cache.path)
    cache.build(TEXTS)
    _delete_texts(cache.path)
    cache.build(TEXTS)
    assert len(siblings(cache, ".corrupt-*")) == 2


# --------------------------------------------------------------------------
# pickling (DataLoader workers)
# --------------------------------------------------------------------------


def test_pickled_cache_serves_lookups_without_teacher(tmp_path):
    seen = []

    def unpicklable(texts):  # a closure: pickling it would fail
        seen.extend(texts)
        return raw_vectors(texts)

    teacher = CallableSentenceEncoder(unpicklable, name="hash-v1")
    cache = TeacherEmbeddingCache(tmp_path, teacher)
    cache.build(TEXTS)
    before = cache.lookup(TEXTS)
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.teacher is None
    assert cache.teacher is teacher  # the original keeps it
    assert clone.path == cache.path
    torch.testing.assert_close(clone.lookup(TEXTS), before)
    torch.testing.assert_close(clone.lookup(TEXTS), expected(TEXTS))
    assert len(clone) == 5
    assert len(seen) == 5


def test_pickled_before_build(tmp_path):
    cache, _ = make_cache(tmp_path)
    clone = pickle.loads(pickle.dumps(cache))
    cache.build(TEXTS)
    torch.testing.assert_close(clone.lookup(TEXTS[:2]), expected(TEXTS[:2]))


# --------------------------------------------------------------------------
# DDP sharding
# --------------------------------------------------------------------------


def _ddp_worker(rank, world, port, cache_dir, out_dir, rounds):
    torch.distributed.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
    )
    try:
        for step, texts in enumerate(rounds):
            cache, function = make_cache(cache_dir)
            count = cache.build(texts, batch_size=3)
            np.save(
                f"{out_dir}/rank{rank}-step{step}.npy",
                cache.lookup(texts).numpy(),
            )
            with open(f"{out_dir}/rank{rank}-step{step}.json", "w") as f:
                json.dump({"seen": function.seen, "count": count}, f)
    finally:
        torch.distributed.destroy_process_group()


def _spawn(tmp_path, rounds, world=2):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    torch.multiprocessing.spawn(
        _ddp_worker,
        args=(
            world,
            free_port(),
            str(tmp_path / "cache"),
            str(out_dir),
            rounds,
        ),
        nprocs=world,
        join=True,
    )

    def result(rank, step):
        name = f"rank{rank}-step{step}"
        info = json.loads((out_dir / f"{name}.json").read_text())
        return info, np.load(out_dir / f"{name}.npy")

    return result


DDP_TEXTS = [f"sentence number {i} of the corpus" for i in range(11)]


def test_ddp_ranks_share_the_work(tmp_path):
    result = _spawn(tmp_path, [DDP_TEXTS, DDP_TEXTS[::-1]])
    (info0, emb0), (info1, emb1) = result(0, 0), result(1, 0)
    seen0, seen1 = set(info0["seen"]), set(info1["seen"])
    assert len(info0["seen"]) == 6 and len(info1["seen"]) == 5
    assert not seen0 & seen1
    assert seen0 | seen1 == set(DDP_TEXTS)
    assert info0["count"] == info1["count"] == 11
    np.testing.assert_array_equal(emb0, emb1)
    np.testing.assert_allclose(
        emb0, expected(DDP_TEXTS).numpy(), rtol=0, atol=1e-6
    )
    # second round: everything is cached on both ranks
    for rank in (0, 1):
        info, emb = result(rank, 1)
        assert info["seen"] == [] and info["count"] == 11
        np.testing.assert_array_equal(emb, emb0[::-1])
    # the single-process view of the merged store agrees
    cache, function = make_cache(tmp_path / "cache")
    assert cache.build(DDP_TEXTS) == 11 and function.count == 0
    torch.testing.assert_close(cache.lookup(DDP_TEXTS), expected(DDP_TEXTS))
    assert not list((tmp_path / "cache").glob(".*parts"))


def test_ddp_one_new_text_on_two_ranks(tmp_path):
    result = _spawn(tmp_path, [DDP_TEXTS[:4], DDP_TEXTS[:5]])
    seen = result(0, 1)[0]["seen"] + result(1, 1)[0]["seen"]
    assert seen == [DDP_TEXTS[4]]
