"""Tests for the SENSIA recipe's ``parallel_prepare.py``."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from speechbrain_sense.sensia.parallel_data import ParallelFormatError

RECIPE = Path(__file__).parents[3] / "recipes" / "Backpack" / "SENSIA"


def load_module():
    spec = importlib.util.spec_from_file_location(
        "sensia_parallel_prepare", RECIPE / "parallel_prepare.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prep = load_module()

EN = "cat dog house tree water book car city river bird".split()
FR = "chat chien maison arbre eau livre voiture ville fleuve oiseau".split()


def make_pairs(n=120):
    pairs = []
    for i in range(n):
        a, b, c = EN[i % 10], EN[(i // 10) % 10], EN[(i // 3) % 10]
        pairs.append(
            (
                f"The {a} sees the {b} near {c} {i}.",
                f"Le {FR[EN.index(a)]} voit le {FR[EN.index(b)]} "
                f"près {FR[EN.index(c)]} {i}.",
            )
        )
    return pairs


def write_formats(root, pairs):
    """The same bitext as ManyThings, TSV and Moses files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "fra.txt").write_text(
        "".join(f"{e}\t{f}\tCC-BY 2.0 (France)\n" for e, f in pairs)
    )
    (root / "pairs.tsv").write_text("".join(f"{e}\t{f}\n" for e, f in pairs))
    (root / "c.en").write_text("".join(e + "\n" for e, _ in pairs))
    (root / "c.fr").write_text("".join(f + "\n" for _, f in pairs))


def manifest(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [(r["src"], r["tgt"]) for r in csv.DictReader(f)]


@pytest.fixture
def data(tmp_path):
    pairs = make_pairs()
    # A duplicate, an empty side and a too-long sentence, to be dropped.
    noisy = pairs + [pairs[0], ("Lonely.", ""), ("word " * 60, "terme")]
    write_formats(tmp_path / "data", noisy)
    # A benchmark is used whole: its long pair is kept.
    test = [pairs[5], ("Unseen.", "Inédit."), ("long " * 60, "long")]
    (tmp_path / "data" / "test.en").write_text(
        "".join(e + "\n" for e, _ in test)
    )
    (tmp_path / "data" / "test.fr").write_text(
        "".join(f + "\n" for _, f in test)
    )
    return tmp_path


def run(data, save, **kwargs):
    options = {
        "data_folder": data / "data",
        "save_folder": data / save,
        "train_file": "fra.txt",
        "train_format": "manythings",
        "test_file": ["test.en", "test.fr"],
        "test_format": "moses",
        "dev_size": 20,
        "lexicon_min_count": 3,
        "seed": 7,
        **kwargs,
    }
    return prep.prepare_parallel(**options)


def test_three_formats_give_the_same_manifests(data):
    run(data, "mt")
    run(data, "tsv", train_file="pairs.tsv", train_format="tsv")
    run(data, "moses", train_file=["c.en", "c.fr"], train_format="moses")
    for split in ("train", "dev", "test"):
        want = manifest(data / "mt" / f"{split}.csv")
        assert want
        assert manifest(data / "tsv" / f"{split}.csv") == want
        assert manifest(data / "moses" / f"{split}.csv") == want


def test_filtering_and_held_out_sets(data):
    report = run(data, "save")
    dropped = report["dropped_by_reason"]
    assert dropped["duplicate"] == 1
    assert dropped["empty_side"] == 1
    assert dropped["too_long"] == 1
    assert dropped["overlaps_test"] == 1  # pairs[5] is a test pair
    train = manifest(data / "save" / "train.csv")
    dev = manifest(data / "save" / "dev.csv")
    test = manifest(data / "save" / "test.csv")
    assert len(test) == 3 and len(dev) == 20
    assert len(train) + len(dev) == 120 - 1
    held = {e for e, _ in dev + test} | {f for _, f in dev + test}
    assert not any(e in held or f in held for e, f in train)
    assert len({e for e, _ in dev}) == len({f for _, f in dev}) == 20
    # The lexicon is induced from the bitext.
    lexicon = prep.read_lexicon(data / "save" / "lexicon.tsv")
    assert ("cat", "chat", 1.0) in lexicon
    assert report["lexicon_pairs"] == len(lexicon)


def test_train_fraction_keeps_held_out_sets(data):
    run(data, "full")
    report = run(data, "tenth", train_fraction=0.1)
    for name in ("dev.csv", "test.csv", "lexicon.tsv"):
        assert (data / "full" / name).read_text() == (
            data / "tenth" / name
        ).read_text()
    full = manifest(data / "full" / "train.csv")
    tenth = manifest(data / "tenth" / "train.csv")
    assert len(tenth) == round(0.1 * len(full)) == report["train"]["pairs"]
    assert set(tenth) <= set(full)


def test_max_train_pairs_budgets_are_nested_and_never_short(data):
    """The 100k ablation and the 2x / 4x scratch baselines, in miniature:
    the same held-out sets, and each smaller budget inside the larger."""
    full = run(data, "full")["train"]["pairs"]
    small, large = full // 4, full // 2
    report = run(data, "small", max_train_pairs=small)
    run(data, "large", max_train_pairs=large)
    for name in ("dev.csv", "test.csv", "lexicon.tsv"):
        assert (data / "small" / name).read_text() == (
            data / "large" / name
        ).read_text()
    small_pairs = manifest(data / "small" / "train.csv")
    large_pairs = manifest(data / "large" / "train.csv")
    assert len(small_pairs) == small == report["train"]["pairs"]
    assert len(large_pairs) == large
    assert set(small_pairs) < set(large_pairs)
    assert report["dropped_by_reason"]["max_train_pairs"] == full - small
    # More than the bitext holds: an error, not a smaller run.
    with pytest.raises(ValueError, match=f"leaves {full} training pairs"):
        run(data, "too_many", max_train_pairs=full + 1)
    with pytest.raises(ValueError, match="is not >= 1"):
        run(data, "zero", max_train_pairs=0)


def test_no_test_file_holds_test_out(data):
    run(data, "save", test_file=None, test_size=10)
    test = manifest(data / "save" / "test.csv")
    assert len(test) == 10
    assert not set(test) & set(manifest(data / "save" / "train.csv"))


def test_idempotent_and_redone_on_changed_options(data):
    run(data, "save")
    options = data / "save" / "prepare_options.json"
    train = data / "save" / "train.csv"
    stamp = train.stat().st_mtime_ns
    run(data, "save")
    assert train.stat().st_mtime_ns == stamp
    run(data, "save", dev_size=10)
    assert json.loads(options.read_text())["dev_size"] == 10
    assert len(manifest(data / "save" / "dev.csv")) == 10


def test_malformed_input_names_file_and_line(data):
    root = data / "data"
    (root / "short.fr").write_text("un\n")
    with pytest.raises(ParallelFormatError, match=r"c\.en:2: line has no"):
        run(data, "x", train_file=["c.en", "short.fr"], train_format="moses")
    (root / "bad.tsv").write_text("a\tb\nc\td\te\n")
    with pytest.raises(ParallelFormatError, match=r"bad\.tsv:2: expected 2"):
        run(data, "y", train_file="bad.tsv", train_format="tsv")
    with pytest.raises(ValueError, match="moses format needs"):
        run(data, "z", train_file="c.en", train_format="moses")
    with pytest.raises(ValueError, match="train_fraction"):
        run(data, "w", train_fraction=0.0)
