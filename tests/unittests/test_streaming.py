"""Streaming from shards: SAMU-XLSR language mix, duration caps, disjoint
equal slots, every eval clip once, resumption, corrupt samples."""

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_sense.data.sampling import (
    language_ratios,
    load_language_ratios,
)
from speechbrain_sense.data.shards import ShardError, load_index
from speechbrain_sense.data.streaming import (
    ShardStream,
    StreamLoader,
    language_shares,
    stream_batches_seen,
)


def fake_index(folder, counts, per_shard=100, seed=0):
    """An index.json of shards that exist only as durations (planning)."""
    rng = np.random.default_rng(seed)
    shards = []
    for lang, count in counts.items():
        for k, start in enumerate(range(0, count, per_shard)):
            durations = rng.uniform(1.0, 8.0, min(per_shard, count - start))
            shards.append(
                {
                    "name": f"train/{lang}/train-{lang}-{k:06d}",
                    "split": "train",
                    "language": lang,
                    "samples": durations.size,
                    "audio_seconds": float(durations.sum()),
                    "durations": durations.round(4).tolist(),
                }
            )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = {"store": "features", "feature_fingerprint": "x", "shards": shards}
    (folder / "index.json").write_text(json.dumps(index))
    return folder


COUNTS = {"big": 6000, "mid": 1500, "tiny": 300}


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A 2-rank x 2-worker training epoch of ~10^4 draws, all slots."""
    folder = fake_index(tmp_path_factory.mktemp("fake"), COUNTS)
    ratios = language_ratios(COUNTS, alpha=0.3)
    kwargs = {
        "language_ratios": ratios,
        "epoch_audio_hours": 12.5,  # ~10^4 clips of 4.5 s on average
        "max_batch_size": 24,
        "seed": 7,
        "num_workers": 2,
        "num_replicas": 2,
    }
    slots = []
    for rank in range(2):
        stream = ShardStream(folder, "train", 40.0, rank=rank, **kwargs)
        for slot in range(rank * 2, rank * 2 + 2):
            slots.append(stream.planned_batches(0, slot))
    return stream, slots, ratios


def test_language_shares_follow_the_samu_xlsr_rule():
    counts = {"a": 900, "b": 100}
    shares = language_shares(counts, language_ratios(counts, alpha=0.5))
    # q_l = p_l^alpha / sum p^alpha: sqrt(0.9) : sqrt(0.1) = 3 : 1
    assert shares == pytest.approx({"a": 0.75, "b": 0.25})
    with pytest.raises(ValueError, match=r"\['c'\] have a sampling ratio"):
        language_shares(counts, {"a": 1, "b": 1, "c": 1})
    with pytest.raises(ValueError, match="no sampling ratio"):
        language_shares(counts, {"a": 1})


def test_language_proportions_within_a_binomial_bound(planned):
    stream, slots, ratios = planned
    langs = Counter(
        stream.shard_language[shard]
        for batches in slots
        for batch in batches
        for shard, _ in batch
    )
    n = sum(langs.values())
    assert 9000 < n < 12000
    expected = language_shares(COUNTS, ratios)
    natural = {lang: c / sum(COUNTS.values()) for lang, c in COUNTS.items()}
    for lang, q in expected.items():
        sigma = math.sqrt(n * q * (1 - q))
        # 4 standard deviations (two-sided 6e-5 per language) ...
        assert abs(langs[lang] - n * q) <= 4 * sigma, (lang, langs, n * q)
        # ... while the natural distribution is far outside the bound.
        assert abs(n * natural[lang] - n * q) > 8 * sigma


def test_slots_are_disjoint_equal_and_fill_the_epoch(planned):
    stream, slots, _ = planned
    counts = {len(batches) for batches in slots}
    assert len(counts) == 1  # every slot, hence every rank, alike
    owned = [{clip for batch in batches for clip in batch} for batches in slots]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not owned[a] & owned[b]
    seconds = 0.0
    for batches in slots:
        for batch in batches:
            durations = [stream.durations[s][p] for s, p in batch]
            seconds += sum(durations)
            padded = len(batch) * max(durations)
            assert padded <= 40.0 or len(batch) == 1
            assert len(batch) <= 24
    budget = 12.5 * 3600
    assert budget <= seconds <= budget + 4 * 24 * 8.0 * counts.pop()
    # The tiny language (300 clips, upsampled) repeats, inside its slot.
    assert max(len(o) for o in owned) < sum(len(b) for b in slots[0])


def test_other_epochs_draw_other_batches(planned):
    stream, slots, _ = planned
    again = ShardStream(
        stream.folder,
        "train",
        40.0,
        language_ratios=planned[2],
        epoch_audio_hours=12.5,
        max_batch_size=24,
        seed=7,
        num_workers=2,
        num_replicas=2,
        rank=0,
    )
    assert again.planned_batches(0, 0) == slots[0]  # a pure function
    assert again.planned_batches(1, 0) != slots[0]


def test_eval_stream_yields_every_clip_once(tmp_path):
    folder = fake_index(tmp_path, {"a": 250, "b": 30}, per_shard=40)
    index = load_index(folder)
    clips = [
        (k, p)
        for k, s in enumerate(index["shards"])
        for p in range(s["samples"])
    ]
    seen = []
    for rank in range(3):
        stream = ShardStream(
            folder, "train", 30.0, num_workers=2, num_replicas=3, rank=rank
        )
        for slot in range(rank * 2, rank * 2 + 2):
            for batch in stream.planned_batches(0, slot):
                seen.extend(batch)
    assert sorted(seen) == sorted(clips)


def train_stream(corpus, **kwargs):
    ratios = load_language_ratios(
        corpus["save_folder"] / "language_ratios.json"
    )
    kwargs.setdefault("num_workers", 0)
    kwargs.setdefault("epoch_audio_hours", 0.03)
    return ShardStream(
        corpus["shards"],
        "train",
        12.0,
        language_ratios=ratios,
        max_batch_size=6,
        seed=3,
        **kwargs,
    )


def interleaved(stream, epoch):
    """Rank 0's batches as its DataLoader yields them (round robin)."""
    per_slot = stream_batches_seen(stream, epoch)[: max(1, stream.num_workers)]
    return [batch for group in zip(*per_slot) for batch in group]


def test_read_batches_are_the_planned_batches(shard_corpus):
    stream = train_stream(shard_corpus)
    batches = list(StreamLoader(stream))
    assert [b.id for b in batches] == interleaved(stream, 0)
    assert len(batches) == len(stream)
    batch = batches[0]
    # Features padded to the longest; true lengths in num_frames.
    assert batch.features.data.shape[0] == len(batch.id)
    assert int(batch.num_frames.data.max()) == batch.features.data.shape[1]


def test_persistent_workers_follow_set_epoch(shard_corpus):
    stream = train_stream(shard_corpus, num_workers=2)
    loader = StreamLoader(stream, persistent_workers=True)
    seen = {}
    for epoch in (1, 2):
        stream.set_epoch(epoch)
        seen[epoch] = [b.id for b in loader]
        assert seen[epoch] == interleaved(stream, epoch)
    assert seen[1] != seen[2]


def test_mid_epoch_checkpoint_resumes_at_the_next_batch(shard_corpus, tmp_path):
    def run(stop=None, recover=False):
        stream = train_stream(shard_corpus, num_workers=2)
        loader = StreamLoader(stream)
        checkpointer = Checkpointer(tmp_path / "ckpt", {"loader": loader})
        if recover:
            # Either order, and set_epoch twice: the position holds until
            # the loader starts iterating.
            stream.set_epoch(1)
            checkpointer.recover_if_possible()
        stream.set_epoch(1)
        ids = []
        for number, batch in enumerate(loader, start=1):
            ids.append(batch.id)
            checkpointer.save_and_keep_only(end_of_epoch=False, num_to_keep=1)
            if number == stop:
                break
        return ids

    whole = run()
    assert len(whole) > 4
    before = run(stop=3)
    after = run(recover=True)
    assert before + after == whole
    # A checkpoint from another number of slots is refused.
    stream = train_stream(shard_corpus, num_workers=1)
    loader = StreamLoader(stream)
    with pytest.raises(ShardError, match="saved with 2 slots"):
        Checkpointer(
            tmp_path / "ckpt", {"loader": loader}
        ).recover_if_possible()


def test_worker_count_must_match_the_plan(shard_corpus):
    stream = train_stream(shard_corpus, num_workers=2)
    with pytest.raises(ValueError, match="planned for 2"):
        StreamLoader(stream, num_workers=1)
    with pytest.raises(ValueError, match="num_workers=2"):
        list(torch.utils.data.DataLoader(stream, batch_size=None))


def planned_count(stream, shard, position):
    return sum(
        batch.count((shard, position)) for batch in stream.planned_batches(0, 0)
    )


def test_corrupt_sample_raises_or_is_counted(shard_corpus, tmp_path):
    folder = tmp_path / "shards"
    shutil.copytree(shard_corpus["shards"], folder)
    corpus = dict(shard_corpus, shards=folder)
    stream = train_stream(corpus)
    plan = stream.planned_batches(0, 0)
    # A clip that never fills a batch alone (else that batch would repeat
    # the previous one, tested by the count below only).
    shard, position = next(
        clip
        for batch in plan
        for clip in batch
        if all(len(set(b) - {clip}) for b in plan if clip in b)
    )
    path = stream.paths[shard]
    data = bytearray(path.read_bytes())
    magic = -1
    for _ in range(position + 1):
        magic = data.index(b"\x93NUMPY", magic + 1)
    data[magic + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        ShardError, match=rf"{path.name}: sample {position:06d}"
    ):
        list(StreamLoader(stream))
    skipping = train_stream(corpus, on_error="skip")
    batches = [b.id for b in StreamLoader(skipping)]  # in this process
    # Read (and skipped) once per sort window that holds it.
    assert 1 <= skipping.skipped <= planned_count(skipping, shard, position)
    planned = interleaved(skipping, 0)
    assert len(batches) == len(planned)  # the DDP batch count is kept
    bad = json.loads(path.with_suffix(".json").read_text())["ids"][position]
    assert any(bad in batch for batch in planned)
    for got, want in zip(batches, planned):
        assert got == [i for i in want if i != bad]


def test_audio_only_shards_need_a_feature_extractor(shard_corpus, tmp_path):
    from speechbrain_sense.data.shards import build_shards
    from speechbrain_sense.encoders.w2v_bert import W2VBertFeatures

    folder = tmp_path / "audio"
    build_shards(
        {"train": shard_corpus["manifests"]["train"]},
        folder,
        shard_corpus["encoder"],
        data_root=shard_corpus["data_folder"],
        store="audio",
        samples_per_shard=4,
        progress=False,
    )
    corpus = dict(shard_corpus, shards=folder)
    with pytest.raises(ShardError, match="audio only"):
        train_stream(corpus)
    stream = train_stream(
        corpus, features=W2VBertFeatures(shard_corpus["encoder"])
    )
    reference = train_stream(shard_corpus)
    a, b = next(iter(StreamLoader(stream))), next(iter(StreamLoader(reference)))
    assert a.id == b.id
    # Features of 16-bit audio vs fp16 features of the float audio: the
    # quantisation shows in near-silent mel bins only.
    diff = (a.features.data - b.features.data).abs()
    # Measured: mean 0.004, 99th percentile 0.03, max 0.16.
    assert float(diff.mean()) < 0.01
    assert float(diff.flatten().quantile(0.99)) < 0.1
