"""Tests for language re-balancing and the dynamic batch sampler."""

import json
import logging
import math
import pickle
from collections import Counter

import numpy as np
import pytest
import torch

from speechbrain_sense.data.sampling import (
    LanguageBalancedDynamicBatchSampler,
    language_ratios,
    load_language_ratios,
    save_language_ratios,
    utterance_weights,
)

# --------------------------------------------------------------------------
# language ratios
# --------------------------------------------------------------------------


def test_language_ratios_hand_computed():
    r = language_ratios({"a": 900, "b": 100}, alpha=0.5)
    # p = (0.9, 0.1); q = (sqrt .9, sqrt .1) / (sqrt .9 + sqrt .1) = (.75, .25)
    q_a = math.sqrt(0.9) / (math.sqrt(0.9) + math.sqrt(0.1))
    assert q_a == pytest.approx(0.75)
    assert r["a"] == pytest.approx(q_a / 0.9)
    assert r["b"] == pytest.approx((1 - q_a) / 0.1)
    assert r == pytest.approx({"a": 0.75 / 0.9, "b": 2.5})


def test_language_ratios_alpha_one_is_identity():
    r = language_ratios({"en": 12345, "sw": 7, "yo": 300}, alpha=1.0)
    assert r == pytest.approx({"en": 1.0, "sw": 1.0, "yo": 1.0})


def test_language_ratios_small_alpha_equalises_languages():
    counts = {"en": 10_000, "sw": 10, "yo": 1_000}
    r = language_ratios(counts, alpha=1e-6)
    mass = {lang: counts[lang] * r[lang] for lang in counts}
    total = sum(mass.values())
    for lang in counts:
        assert mass[lang] / total == pytest.approx(1 / 3, abs=1e-4)
    # Normalised so that an epoch of len(corpus) draws keeps its size.
    assert total == pytest.approx(sum(counts.values()))


@pytest.mark.parametrize(
    "counts, alpha, match",
    [
        ({}, 0.5, "empty"),
        ({"a": 0, "b": 3}, 0.5, "positive"),
        ({"a": -1}, 0.5, "positive"),
        ({"a": float("nan")}, 0.5, "positive"),
        ({"a": 1}, 0.0, "alpha"),
        ({"a": 1}, 1.5, "alpha"),
        ({"a": 1}, -0.1, "alpha"),
    ],
)
def test_language_ratios_errors(counts, alpha, match):
    with pytest.raises(ValueError, match=match):
        language_ratios(counts, alpha)


def test_utterance_weights_and_missing_language():
    w = utterance_weights(["a", "b", "a"], {"a": 0.5, "b": 3.0})
    assert w.dtype == torch.float64
    assert w.tolist() == [0.5, 3.0, 0.5]
    with pytest.raises(ValueError, match="'c'"):
        utterance_weights(["a", "c"], {"a": 1.0})


def test_save_load_language_ratios(tmp_path):
    path = tmp_path / "sub" / "ratios.json"
    r = save_language_ratios(path, {"a": 900, "b": 100}, alpha=0.5)
    record = json.loads(path.read_text())
    assert record["alpha"] == 0.5
    assert record["counts"] == {"a": 900, "b": 100}
    assert record["probabilities"] == pytest.approx({"a": 0.9, "b": 0.1})
    assert record["sampling_share"] == pytest.approx({"a": 0.75, "b": 0.25})
    assert load_language_ratios(path) == r
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="ratios"):
        load_language_ratios(bad)


# --------------------------------------------------------------------------
# sampler helpers
# --------------------------------------------------------------------------


def _corpus(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    durations = rng.uniform(0.5, 12.0, n)
    return durations


def _check_caps(sampler, batches):
    durations = sampler.durations
    cap = sampler.max_batch_seconds
    oversize = 0
    for batch in batches:
        assert batch, "empty batch"
        longest = max(durations[i] for i in batch)
        if longest > cap:
            assert len(batch) == 1
            oversize += 1
        else:
            assert len(batch) * longest <= cap
        if sampler.max_batch_size is not None:
            assert len(batch) <= sampler.max_batch_size
    return oversize


def _multiset(batches):
    return Counter(tuple(b) for b in batches)


# --------------------------------------------------------------------------
# sampler behaviour
# --------------------------------------------------------------------------


def test_language_shares_approach_q():
    rng = np.random.default_rng(1)
    counts = {"en": 8000, "de": 1500, "sw": 400, "yo": 100}
    languages = np.repeat(list(counts), list(counts.values()))
    rng.shuffle(languages)
    languages = languages.tolist()
    alpha = 0.3
    r = language_ratios(counts, alpha)
    p = np.array(list(counts.values())) / sum(counts.values())
    q = dict(zip(counts, p**alpha / (p**alpha).sum()))
    sampler = LanguageBalancedDynamicBatchSampler(
        rng.uniform(1.0, 10.0, len(languages)),
        utterance_weights(languages, r),
        max_batch_seconds=60.0,
        num_samples=100_000,
    )
    drawn = Counter(languages[i] for batch in sampler for i in batch)
    total = sum(drawn.values())
    assert total == 100_000
    for lang in counts:
        # Binomial std <= 0.0016 at this size; the natural shares differ
        # from q by more than 0.05 for every language.
        assert drawn[lang] / total == pytest.approx(q[lang], abs=0.01)
        assert abs(q[lang] - p[list(counts).index(lang)]) > 0.05
    stats = sampler.batch_statistics(languages)
    assert stats["language_counts"] == dict(sorted(drawn.items()))


def test_weighted_draw_without_replacement_and_zero_weights():
    durations = _corpus(500)
    weights = np.ones(500)
    weights[:100] = 0.0  # never drawn
    sampler = LanguageBalancedDynamicBatchSampler(
        durations, weights, 30.0, num_samples=400, replacement=False
    )
    drawn = sorted(i for b in sampler for i in b)
    assert drawn == list(range(100, 500))
    with pytest.raises(ValueError, match="without replacement"):
        LanguageBalancedDynamicBatchSampler(
            durations, weights, 30.0, num_samples=401, replacement=False
        )
    with_repl = LanguageBalancedDynamicBatchSampler(
        durations, weights, 30.0, num_samples=5000
    )
    assert min(i for b in with_repl for i in b) >= 100


def test_caps_and_exact_cover_without_replacement():
    durations = _corpus(3000)
    sampler = LanguageBalancedDynamicBatchSampler(
        durations, None, max_batch_seconds=40.0, max_batch_size=7, seed=3
    )
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert _check_caps(sampler, batches) == 0
        # Uniform: every index exactly once per epoch.
        assert sorted(i for b in batches for i in b) == list(range(3000))
    assert max(len(b) for b in batches) == 7  # the size cap is binding


def test_oversize_utterances_get_own_batch_and_are_counted(caplog):
    durations = np.concatenate([_corpus(300), [25.0, 31.0, 50.0]])
    weights = np.ones(durations.size)
    sampler = LanguageBalancedDynamicBatchSampler(
        durations, weights, max_batch_seconds=24.0, num_samples=2000, seed=5
    )
    with caplog.at_level(
        logging.WARNING, logger="speechbrain_sense.data.sampling"
    ):
        batches = list(sampler)
    drawn = Counter(i for b in batches for i in b)
    expected = sum(drawn[i] for i in (300, 301, 302))
    assert expected > 0
    assert _check_caps(sampler, batches) == expected
    assert sampler.batch_statistics()["num_oversize"] == expected
    assert "longer than max_batch_seconds" in caplog.text
    # Drawn indices appear exactly as often as they were drawn: the packed
    # plan is a partition of the draw.
    assert sum(drawn.values()) == 2000


def test_batches_are_homogeneous_in_length():
    durations = _corpus(4000)
    sampler = LanguageBalancedDynamicBatchSampler(durations, None, 60.0)
    stats = sampler.batch_statistics()
    assert stats["padding_fraction"] < 0.1
    unsorted = LanguageBalancedDynamicBatchSampler(
        durations, None, 60.0, sort_window=1
    )
    assert unsorted.batch_statistics()["padding_fraction"] > 0.3
    assert _check_caps(unsorted, list(unsorted)) == 0


def test_epochs_reproducible_and_different():
    durations = _corpus(1000)
    weights = np.random.default_rng(0).uniform(0.1, 2.0, 1000)
    kwargs = {"max_batch_seconds": 50.0, "seed": 11}
    sampler = LanguageBalancedDynamicBatchSampler(durations, weights, **kwargs)
    sampler.set_epoch(4)
    first = list(sampler)
    assert list(sampler) == first  # same epoch, same batches
    sampler.set_epoch(5)
    assert list(sampler) != first
    sampler.set_epoch(4)
    assert list(sampler) == first
    fresh = LanguageBalancedDynamicBatchSampler(durations, weights, **kwargs)
    fresh.set_epoch(4)
    assert list(fresh) == first
    other_seed = LanguageBalancedDynamicBatchSampler(
        durations, weights, max_batch_seconds=50.0, seed=12
    )
    other_seed.set_epoch(4)
    assert list(other_seed) != first
    # Pickling (DataLoader workers, checkpoints) keeps the behaviour.
    clone = pickle.loads(pickle.dumps(sampler))
    assert clone._plan is None
    assert list(clone) == first


def test_shuffle_false_is_deterministic_and_ordered():
    durations = _corpus(500)
    a = LanguageBalancedDynamicBatchSampler(
        durations, None, 30.0, shuffle=False, sort_window=500
    )
    a.set_epoch(0)
    b0 = list(a)
    a.set_epoch(1)
    assert list(a) == b0
    # One window sorted ascending: batch maxima never decrease.
    maxima = [max(durations[i] for i in b) for b in b0]
    assert maxima == sorted(maxima)


def test_windows_sorted_in_snake_order():
    # Identity draw (shuffle=False) exposes the packing order: windows of
    # 100 drawn utterances alternate ascending / descending so the batch
    # straddling two windows joins similar lengths.
    durations = _corpus(400)
    sampler = LanguageBalancedDynamicBatchSampler(
        durations, None, 30.0, shuffle=False, sort_window=100
    )
    flat = [i for b in sampler for i in b]
    for w in range(4):
        window = flat[100 * w : 100 * (w + 1)]
        assert sorted(window) == list(range(100 * w, 100 * (w + 1)))
        d = durations[window]
        assert np.all(np.diff(d) >= 0 if w % 2 == 0 else np.diff(d) <= 0)


@pytest.mark.parametrize("num_replicas", [2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_ddp_shards_disjoint_complete_equal(num_replicas, weighted):
    durations = _corpus(1500, seed=num_replicas)
    weights = np.linspace(0.2, 3.0, 1500) if weighted else None
    # Weighted: more draws than items (with replacement); uniform: one
    # permutation of the corpus.
    num_samples = 1700 if weighted else 1500
    kwargs = {"max_batch_seconds": 45.0, "seed": 2, "num_samples": num_samples}
    single = LanguageBalancedDynamicBatchSampler(
        durations, weights, num_replicas=1, rank=0, **kwargs
    )
    shards = [
        LanguageBalancedDynamicBatchSampler(
            durations, weights, num_replicas=num_replicas, rank=r, **kwargs
        )
        for r in range(num_replicas)
    ]
    for epoch in (0, 1, 2):
        single.set_epoch(epoch)
        for s in shards:
            s.set_epoch(epoch)
        per_rank = [list(s) for s in shards]
        lengths = {len(b) for b in per_rank} | {len(s) for s in shards}
        assert len(lengths) == 1, "ranks disagree on the number of batches"

        global_plan = shards[0].global_batches()
        assert len(global_plan) % num_replicas == 0
        union = Counter()
        for r, batches in enumerate(per_rank):
            assert batches == global_plan[r::num_replicas]
            union += _multiset(batches)
        assert union == _multiset(global_plan)
        # Disjoint positions in the draw: every drawn utterance is yielded
        # exactly as many times over all ranks as the single process draws it.
        flat_single = Counter(i for b in single for i in b)
        flat_union = Counter(i for bs in per_rank for b in bs for i in b)
        assert flat_union == flat_single
        # The split-to-divisible step changes at most num_replicas - 1
        # batches of the single-process plan; the rest are identical.
        extra = len(global_plan) - len(single)
        assert 0 <= extra < num_replicas
        common = _multiset(global_plan) & _multiset(list(single))
        assert sum(common.values()) >= len(single) - extra
        for batches in per_rank:
            _check_caps(shards[0], batches)


def test_split_to_divisible_keeps_caps():
    # 5 equal utterances, cap fits 2: 3 batches (2, 2, 1); with 4 replicas
    # one batch of 2 must be split.
    durations = [10.0] * 5
    shards = [
        LanguageBalancedDynamicBatchSampler(
            durations, None, 20.0, num_replicas=4, rank=r
        )
        for r in range(4)
    ]
    per_rank = [list(s) for s in shards]
    assert [len(b) for b in per_rank] == [1, 1, 1, 1]
    sizes = sorted(len(b[0]) for b in per_rank)
    assert sizes == [1, 1, 1, 2]
    assert sorted(i for b in per_rank for i in b[0]) == [0, 1, 2, 3, 4]
    # 5 utterances cannot be spread evenly as 6 batches: clear error.
    bad = LanguageBalancedDynamicBatchSampler(
        [10.0] * 5, None, 100.0, num_replicas=3, rank=0, max_batch_size=1
    )
    with pytest.raises(ValueError, match="multiple of num_replicas"):
        len(bad)
    with pytest.raises(ValueError, match="num_replicas"):
        LanguageBalancedDynamicBatchSampler(
            [1.0, 1.0], None, 10.0, num_replicas=3, rank=0
        )


def test_split_can_split_repeatedly():
    # One big batch of 8 items; 8 replicas need 8 batches of 1.
    shards = [
        LanguageBalancedDynamicBatchSampler(
            [1.0] * 8, None, 100.0, num_replicas=8, rank=r
        )
        for r in range(8)
    ]
    got = sorted(i for s in shards for b in s for i in b)
    assert got == list(range(8))
    assert all(len(s) == 1 for s in shards)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([], None, 10.0), {}, "non-empty"),
        (([1.0, -1.0], None, 10.0), {}, "non-negative"),
        (([1.0, 2.0], [1.0], 10.0), {}, "weights"),
        (([1.0, 2.0], [0.0, 0.0], 10.0), {}, "positive"),
        (([1.0, 2.0], [1.0, -1.0], 10.0), {}, "non-negative"),
        (([1.0, 2.0], None, 0.0), {}, "max_batch_seconds"),
        (([1.0, 2.0], None, 10.0), {"rank": 2, "num_replicas": 2}, "rank"),
        (([1.0, 2.0], None, 10.0), {"max_batch_size": 0}, "max_batch_size"),
    ],
)
def test_constructor_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LanguageBalancedDynamicBatchSampler(*args, **kwargs)


# --------------------------------------------------------------------------
# DataLoader / SpeechBrain integration
# --------------------------------------------------------------------------


def test_speechbrain_make_dataloader_integration():
    from speechbrain.dataio.batch import PaddedBatch
    from speechbrain.dataio.dataloader import (
        SaveableDataLoader,
        make_dataloader,
    )
    from speechbrain.dataio.dataset import DynamicItemDataset
    from speechbrain.utils.data_pipeline import provides, takes

    rng = np.random.default_rng(7)
    durations = rng.uniform(0.1, 1.0, 40).round(2)
    langs = ["en"] * 30 + ["sw"] * 10
    data = {
        f"utt{i}": {"duration": float(d), "lang": lang}
        for i, (d, lang) in enumerate(zip(durations, langs))
    }
    dataset = DynamicItemDataset(data)

    @takes("duration")
    @provides("sig")
    def audio_pipeline(duration):
        # 100 "samples" per second stand in for the waveform.
        return torch.ones(int(round(duration * 100)))

    dataset.add_dynamic_item(audio_pipeline)
    dataset.set_output_keys(["id", "sig", "lang"])

    # Durations in dataset order, as the recipe would read them.
    ids = dataset.data_ids
    dur = [data[i]["duration"] for i in ids]
    weights = utterance_weights(
        [data[i]["lang"] for i in ids], language_ratios({"en": 30, "sw": 10})
    )
    sampler = LanguageBalancedDynamicBatchSampler(
        dur, weights, max_batch_seconds=2.0, num_samples=60, seed=1
    )
    loader = make_dataloader(
        dataset, batch_sampler=sampler, collate_fn=PaddedBatch
    )
    assert isinstance(loader, SaveableDataLoader)
    sampler.set_epoch(3)
    assert len(loader) == len(sampler)
    expected = list(sampler)
    seen = []
    for batch, idx in zip(loader, expected):
        assert isinstance(batch, PaddedBatch)
        assert batch.id == [ids[i] for i in idx]
        wav, rel = batch.sig
        assert wav.shape[0] == len(idx)
        # Padded length never exceeds the duration cap (100 samples/s).
        assert wav.shape[0] * wav.shape[1] <= 2.0 * 100 + 1e-6
        assert torch.all(rel <= 1.0)
        seen.append(idx)
    assert seen == expected
