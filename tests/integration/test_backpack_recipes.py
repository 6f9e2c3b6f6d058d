"""End-to-end runs of the Backpack recipes on tiny generated text.

The pretrain recipe trains a tiny English Backpack with a SentencePiece
tokenizer; SENSIA and its two baselines adapt it to a toy "French" whose
words are a fixed relabelling of the English ones. Each recipe runs one
epoch, then is launched again with two epochs: the second launch must
resume from the checkpoint and train only epoch 2.
"""

import json
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechbrain_sense.backpack import BackpackLM
from speechbrain_sense.backpack.tokenizer import BackpackTokenizer

pytestmark = pytest.mark.integration

RECIPES = Path(__file__).parents[2] / "recipes" / "Backpack"
NOUNS = "cat dog house tree water book car city river bird".split()
NOMS = "chat chien maison arbre eau livre voiture ville fleuve oiseau".split()
ADJECTIVES = "green small big old new blue".split()
ADJECTIFS = "vert petit grand vieux nouveau bleu".split()
VERBS = "takes sees likes".split()
VERBES = "prend voit aime".split()
DETERMINERS = [("the", "le"), ("a", "un"), ("my", "mon")]


def sentence_pair(rng):
    (d1, l1), (d2, l2) = rng.choice(DETERMINERS), rng.choice(DETERMINERS)
    n1, n2 = rng.randrange(10), rng.randrange(10)
    a, v = rng.randrange(6), rng.randrange(3)
    en = f"{d1} {ADJECTIVES[a]} {NOUNS[n1]} {VERBS[v]} {d2} {NOUNS[n2]} ."
    fr = f"{l1} {NOMS[n1]} {ADJECTIFS[a]} {VERBES[v]} {l2} {NOMS[n2]} ."
    return en.capitalize(), fr.capitalize()


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    """English paragraphs, a ManyThings bitext and a Moses test set."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("backpack_data")
    (root / "text").mkdir()
    (root / "bitext").mkdir()
    for name, n in (("train.txt", 80), ("test.txt", 15)):
        lines = [
            " ".join(sentence_pair(rng)[0] for _ in range(3)) for _ in range(n)
        ]
        (root / "text" / name).write_text("\n".join(lines) + "\n")
    pairs = list(dict.fromkeys(sentence_pair(rng) for _ in range(310)))[:300]
    (root / "bitext" / "fra.txt").write_text(
        "".join(f"{e}\t{f}\tCC-BY 2.0 (France)\n" for e, f in pairs[:270])
    )
    (root / "bitext" / "test.en").write_text(
        "".join(e + "\n" for e, _ in pairs[270:])
    )
    (root / "bitext" / "test.fr").write_text(
        "".join(f + "\n" for _, f in pairs[270:])
    )
    return root


def run_recipe(recipe, hparams, *overrides):
    """Runs a recipe's train.py in a subprocess; returns its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "train.py", hparams, "--noprogressbar"]
    result = subprocess.run(
        command + list(overrides),
        cwd=RECIPES / recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def epoch_lines(train_log):
    lines = Path(train_log).read_text().splitlines()
    return [line for line in lines if re.match(r"epoch: \d+", line)]


def assert_resumed(train_log):
    """Epoch 1 was trained once (first launch), epoch 2 once (second)."""
    epochs = [
        int(line.split(",")[0].split()[1]) for line in epoch_lines(train_log)
    ]
    assert epochs == [1, 2], Path(train_log).read_text()


@pytest.fixture(scope="module")
def pretrained(data_folder, tmp_path_factory):
    """Runs the pretrain recipe (1 epoch, then resumed to 2)."""
    out = tmp_path_factory.mktemp("pretrain")
    args = [
        f"--data_folder={data_folder}",
        f"--output_folder={out}",
        "--train_files=[text/train.txt]",
        "--test_files=[text/test.txt]",
        "--parallel_file=bitext/fra.txt",
        "--exclude_files=[bitext/test.en,bitext/test.fr]",
        "--wikitext=False",
        "--dev_ratio=0.1",
        "--vocab_size=150",
        "--n_embd=16",
        "--n_layer=1",
        "--n_head=2",
        "--num_senses=4",
        "--sense_intermediate_scale=1",
        "--n_positions=32",
        "--block_size=32",
        "--batch_size=8",
    ]
    logs = [
        run_recipe(
            "pretrain",
            "hparams/backpack_micro.yaml",
            *args,
            f"--number_of_epochs={n}",
        )
        for n in (1, 2)
    ]
    return out, logs


def test_pretrain_recipe(pretrained):
    out, logs = pretrained
    assert list((out / "save").glob("CKPT+*"))
    assert "Would load a checkpoint here, but none found yet" in logs[0]
    assert "Loading a checkpoint from" in logs[1]
    assert_resumed(out / "train_log.txt")
    export = out / "backpack_en"
    metrics = json.loads((export / "metrics.json").read_text())
    assert metrics["test"]["ppl"] > 1 and metrics["epochs"] == 2
    assert metrics["tokenizer"] == "sentencepiece"
    model = BackpackLM.from_pretrained(export)
    tokenizer = BackpackTokenizer.from_pretrained(export)
    assert tokenizer.vocab_size <= model.config.vocab_size == 150
    # The joint tokenizer knows the French words it never saw as LM data.
    assert (
        tokenizer.decode(tokenizer.encode("Le chien vert")) == "Le chien vert"
    )


@pytest.mark.parametrize("hparams", ["sensia", "dense", "scratch"])
def test_sensia_recipes(pretrained, data_folder, tmp_path, hparams):
    english = pretrained[0] / "backpack_en"
    args = [
        f"--data_folder={data_folder}",
        f"--output_folder={tmp_path}",
        f"--pretrained_path={english}",
        "--train_file=bitext/fra.txt",
        "--test_file=[bitext/test.en,bitext/test.fr]",
        "--dev_size=20",
        "--probe_size=10",
        "--batch_size=16",
        "--max_length=32",
        "--log_interval=5",
        "--lexicon_min_count=2",
    ]
    logs = [
        run_recipe(
            "SENSIA", f"hparams/{hparams}.yaml", *args, "--number_of_epochs=1"
        )
    ]
    first = BackpackLM.from_pretrained(tmp_path / "backpack_fr")
    logs.append(
        run_recipe(
            "SENSIA", f"hparams/{hparams}.yaml", *args, "--number_of_epochs=2"
        )
    )
    second = BackpackLM.from_pretrained(tmp_path / "backpack_fr")
    # The resumed launch spans progress 0.5 -> 1, all of it polish: with
    # freezing (sensia.yaml's default, as in the paper), the sense network
    # must not move while the rest does.
    frozen = hparams == "sensia"
    for name, value in second.state_dict().items():
        unchanged = torch.equal(value, first.state_dict()[name])
        if name.startswith("sense_network."):
            assert unchanged == frozen, name
        elif name == "wte.weight":
            assert not unchanged
    assert "Loading a checkpoint from" in logs[1]
    assert_resumed(tmp_path / "train_log.txt")
    assert list((tmp_path / "save").glob("CKPT+*"))

    # Probes every log_interval steps, numbered on from the first launch.
    probes = [
        json.loads(line)
        for line in (tmp_path / "step_log.jsonl").read_text().splitlines()
    ]
    steps = [p["step"] for p in probes]
    assert steps == sorted(set(steps)) and steps[0] == 5
    expected = {"lm", "entropy", "R@1_en2fr", "R@1_fr2en"}
    expected |= {"sensia": {"context", "sense"}, "dense": {"dense"}}.get(
        hparams, set()
    )
    assert expected <= set(probes[-1])
    assert probes[-1]["progress"] <= 1.0

    results = json.loads((tmp_path / "results.json").read_text())
    test = results["test"]
    assert test["pairs"] == 30 and test["ppl"] > 1
    for view in ("context", "sense", "mean"):
        assert 0 <= test["retrieval"][view]["src2tgt"]["R@1"] <= 1
    analysis = results["analysis"]
    assert -1 <= analysis["local_topology"]["rho"] <= 1
    assert -1 <= analysis["sense_similarity_correlation"]["rho"] <= 1
    assert analysis["global_structure"]["heldout_pairs"] > 0
    assert 0 < analysis["sense_entropy"] <= analysis["max_entropy"]
    assert {"delta_top1", "delta_uniform"} <= set(analysis["ablation"])
    # The authors' probes, on aligned occurrences in the 30 test pairs.
    assert analysis["procrustes"]["anchor_sentence_pairs"] <= 30
    assert analysis["procrustes"]["anchors"] > 0
    assert -1 <= analysis["procrustes"]["procrustes_cos"] <= 1
    assert analysis["mutual_information"]["steps"] == 800
    assert not math.isnan(analysis["mutual_information"]["delta_mi"])
    collapse = analysis["sense_collapse"]
    assert collapse["top_k"] == 1
    assert 0 <= collapse["usage_entropy"] <= collapse["max_entropy"]
    table = subprocess.run(
        [sys.executable, str(RECIPES / "SENSIA" / "summarize.py"), tmp_path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = table.splitlines()[2]  # header, rule, this run
    assert row.startswith(f"| {results['experiment']} |")
    procrustes = analysis["procrustes"]
    assert f"| {procrustes['procrustes_cos']:.3f} / " in row
    assert f"| {analysis['mutual_information']['delta_mi']:.3f} |" in row
    assert row.endswith(f", {collapse['offdiag_cosine']:.3f} |")
    adapted = BackpackLM.from_pretrained(tmp_path / "backpack_fr")
    assert adapted.config.n_embd == 16


def test_sensia_recipe_names_missing_alignment_keys(pretrained, tmp_path):
    """An alignment whose keys the yaml lacks fails at once, naming them.

    ``scratch.yaml`` is the LM-only baseline: switched to ``sensia`` it has
    none of the curriculum or temperature keys, and the recipe must say so
    before it prepares data or builds a model.

    Arguments
    ---------
    pretrained : tuple
        The pretrain recipe's outputs; its English Backpack is loaded.
    tmp_path : Path
        Data and output folder; the run stops before it prepares data.
    """
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "hparams/scratch.yaml",
            "--alignment=sensia",
            f"--data_folder={tmp_path}",
            f"--output_folder={tmp_path / 'out'}",
            f"--pretrained_path={pretrained[0] / 'backpack_en'}",
        ],
        cwd=RECIPES / "SENSIA",
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("ValueError: hparams/scratch.yaml: alignment:")
    for key in ("curriculum_phases", "sense_temperature", "symmetric"):
        assert repr(key) in error
    # Before create_experiment_directory (which saves hyperparams.yaml).
    assert not (tmp_path / "out" / "hyperparams.yaml").exists()
