"""Tests for the pretrain recipe's ``text_prepare.py``."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from speechbrain_sense.sensia.parallel_data import ParallelFormatError

RECIPE = Path(__file__).parents[3] / "recipes" / "Backpack" / "pretrain"


def load_module():
    spec = importlib.util.spec_from_file_location(
        "backpack_text_prepare", RECIPE / "text_prepare.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prep = load_module()


def texts(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    wiki = [" = Title = ", " "]
    wiki += [
        f" The value is 1 @,@ 00{i} ( about ) , it 's fine . "
        for i in range(30)
    ]
    wiki += [
        " = = Section = = ",
        " The value is 1 @,@ 000 ( about ) , it 's fine . ",
    ]
    (root / "train.txt").write_text("\n".join(wiki) + "\n")
    (root / "test.txt").write_text(" = T = \n The test line . \n")
    (root / "fra.txt").write_text(
        "Go.\tVa !\tCC-BY\nIt costs $5.\tÇa coûte 5 $.\tCC-BY\n"
        "Secret.\tSecret !\tCC-BY\n"
    )
    (root / "bench.en").write_text("Secret.\n")
    return tmp_path


def run(data, **kwargs):
    options = {
        "data_folder": data / "data",
        "save_folder": data / "save",
        "train_files": ["train.txt"],
        "test_files": ["test.txt"],
        "parallel_file": "fra.txt",
        "exclude_files": ["bench.en"],
        "dev_ratio": 0.1,
        "seed": 3,
        **kwargs,
    }
    return prep.prepare_text_corpus(**options)


def test_manifests_and_tokenizer_text(data):
    report = run(data)
    save = data / "save"
    train, dev = texts(save / "train.csv"), texts(save / "dev.csv")
    lm_text = train + dev
    assert "The value is 1,001 (about), it's fine." in lm_text
    assert "It costs $5." in lm_text and "Go." in lm_text
    # Headings and the duplicate paragraph are gone; so is the benchmark.
    assert not any("=" in t for t in lm_text)
    assert "Secret." not in lm_text
    assert len(lm_text) == 30 + 2 and len(dev) == 3
    assert texts(save / "test.csv") == ["The test line."]
    # French: tokenizer text only, never LM data.
    tokenizer_text = (save / "tokenizer_text.txt").read_text().splitlines()
    assert "Ça coûte 5 $." in tokenizer_text and "Va !" in tokenizer_text
    assert not any("Va !" in t for t in lm_text)
    assert set(train) <= set(tokenizer_text)
    assert report["dropped_by_reason"] == {
        "heading": 3,
        "empty": 1,
        "duplicate": 1,
        "excluded": 1,
    }


def test_idempotent_and_redone_on_changed_options(data):
    run(data)
    manifest = data / "save" / "train.csv"
    stamp = manifest.stat().st_mtime_ns
    run(data)
    assert manifest.stat().st_mtime_ns == stamp
    run(data, dev_ratio=0.5)
    options = json.loads((data / "save" / "prepare_options.json").read_text())
    assert options["dev_ratio"] == 0.5
    assert len(texts(data / "save" / "dev.csv")) == 16


def test_errors(data):
    (data / "data" / "bad.txt").write_text("a\tb\nc\n")
    with pytest.raises(
        ParallelFormatError, match=r"bad\.txt:2: expected 2 or 3"
    ):
        run(data, parallel_file="bad.txt")
    with pytest.raises(FileNotFoundError):
        run(data, train_files=["missing.txt"])
    with pytest.raises(ValueError, match="moses format needs"):
        run(data, parallel_format="moses")


def test_detokenize_wikitext():
    line = 'He said : " yes " ( 1 @.@ 5 m ) ; it is n\'t here !'
    assert prep.detokenize_wikitext(line) == (
        'He said: " yes " (1.5 m); it isn\'t here!'
    )
