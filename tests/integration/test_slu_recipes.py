"""End-to-end runs of the SLU recipes (SLUE-VoxPopuli NER, MEDIA SLU).

Each recipe runs as a user runs it (``python train.py hparams/*_tiny.yaml``
in a subprocess) for two epochs on a tiny synthetic corpus in the real
layout, with a tiny exported SENSE model as the encoder. The model learns
little in two epochs: the tests check the pipeline and its reports.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hyperpyyaml import load_hyperpyyaml

from speechbrain_sense.metrics.slu import f1_from_counts, format_tagged
from speechbrain_sense.synthetic.slu import (
    make_synthetic_media,
    make_synthetic_slue_voxpopuli,
)
from speechbrain_sense.testing import free_port

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
NER = RECIPES / "SLUE-VoxPopuli/NER"
MEDIA = RECIPES / "MEDIA/SLU/SENSE"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slue_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("slue")
    per_split = {"fine-tune": 8, "dev": 4, "test": 2}
    return root, make_synthetic_slue_voxpopuli(root, per_split, seed=2)


@pytest.fixture(scope="module")
def media_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    dialogues = {"train": 2, "dev": 1, "test": 1}
    return root, make_synthetic_media(root, dialogues, seed=2)


def run_recipe(recipe, hparams, args, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "train.py", f"hparams/{hparams}", *args],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def check_reports(out, split, names, manifest):
    """Metric files exist, lie in range and match the utterance report."""
    metrics = json.loads((out / f"{split}_metrics.json").read_text())
    rows = read_tsv(out / f"{split}_utterances.tsv")
    with open(manifest, encoding="utf-8", newline="") as f:
        references = {r["ID"]: r["tagged"] for r in csv.DictReader(f)}
    assert {r["ID"]: r["reference"] for r in rows} == references
    for name, unit in zip(names, ("tag", "value")):
        errors = sum(int(r[f"{unit}_errors"]) for r in rows)
        units = sum(int(r[f"{unit}_reference"]) for r in rows)
        assert units > 0
        assert metrics[name] == pytest.approx(100 * errors / units)
        assert metrics[name] >= 0
    for key, unit in (("WER", "word"), ("CER", "char")):
        errors = sum(int(r[f"{unit}_errors"]) for r in rows)
        units = sum(int(r[f"{unit}_reference"]) for r in rows)
        assert metrics[key] == pytest.approx(100 * errors / units)
    for key, prefix in (("F1", "entity"), ("label_F1", "label")):
        expected = f1_from_counts(
            *(
                sum(int(r[f"{prefix}_{c}"]) for r in rows)
                for c in ("matched", "predicted", "reference")
            )
        )["F1"]
        assert metrics[key] == pytest.approx(expected)
        assert 0.0 <= metrics[key] <= 1.0
    for name in names:
        alignments = out / f"{split}_{name}_alignments.txt"
        assert "%WER" in alignments.read_text()
    return metrics


def test_slue_ner_two_epochs(slue_corpus, sense_model_dir, tmp_path):
    root, annotations = slue_corpus
    out = tmp_path / "ner"
    log = run_recipe(
        NER,
        "ner_tiny.yaml",
        [
            f"--data_folder={root}",
            f"--output_folder={out}",
            f"--sense_model={sense_model_dir}",
            "--number_of_epochs=2",
            "--freeze_encoder=True",
        ],
    )
    assert "Going into epoch 1" in log and "Going into epoch 2" in log
    assert (
        "ensure_tiny_w2v_bert" not in log
        and not (out / "tiny_w2v_bert_32d").exists()
    )
    train_log = (out / "train_log.txt").read_text()
    assert "epoch: 2" in train_log and "valid NEER" in train_log
    assert "test NEER" in train_log and "test label_F1" in train_log
    # The prepared manifest holds the annotation the corpus was made from.
    with open(out / "save" / "train.csv", encoding="utf-8") as f:
        tagged = {row["ID"]: row["tagged"] for row in csv.DictReader(f)}
    assert tagged == {
        utt_id: format_tagged(truth["words"], truth["spans"])
        for utt_id, truth in annotations["fine-tune"].items()
    }
    for split in ("dev", "test"):
        metrics = check_reports(
            out, split, ("NEER", "NEVER"), out / "save" / f"{split}.csv"
        )
        assert metrics["utterances"] == len(annotations["dev"])
    (checkpoint,) = (out / "save").glob("CKPT+*")
    saved = set(os.listdir(checkpoint))
    assert {"head.ckpt", "head_optimizer.ckpt", "counter.ckpt"} <= saved
    # Frozen encoder: neither checkpointed nor optimised.
    assert "encoder.ckpt" not in saved
    assert "encoder_optimizer.ckpt" not in saved
    assert "NEER" in (checkpoint / "CKPT.yaml").read_text()
    # The label inventory: the seven SLUE tags at most, as single units.
    labels = (out / "save" / "label_encoder.txt").read_text()
    assert "'<PERSON>' => " in labels and "'>' => " in labels


def test_media_slu_two_epochs_fine_tuned(
    media_corpus, sense_model_dir, tmp_path
):
    root, annotations = media_corpus
    out = tmp_path / "media"
    args = [
        f"--data_folder={root}",
        f"--output_folder={out}",
        f"--sense_model={sense_model_dir}",
        "--method=relax",
        "--freeze_encoder=False",
        "--number_of_epochs=2",
    ]
    log = run_recipe(MEDIA, "slu_tiny.yaml", args)
    assert "Going into epoch 2" in log
    train_log = (out / "train_log.txt").read_text()
    assert "valid COER" in train_log and "test CVER" in train_log
    # Both optimisers step: the encoder's learning rate is logged.
    assert "lr_encoder" in train_log
    for split in ("dev", "test"):
        metrics = check_reports(
            out, split, ("COER", "CVER"), out / "save" / f"{split}.csv"
        )
        assert metrics["utterances"] == len(annotations[split])
    rows = read_tsv(out / "test_utterances.tsv")
    assert {r["reference"] for r in rows} == {
        s["relax"] for s in annotations["test"]
    }
    (checkpoint,) = (out / "save").glob("CKPT+*")
    saved = set(os.listdir(checkpoint))
    assert {"encoder.ckpt", "encoder_optimizer.ckpt", "head.ckpt"} <= saved

    # One more epoch: resumes from the checkpoint (the output layer, sized
    # from the label encoder, loads its saved weights), reusing the
    # prepared manifests.
    args[-1] = "--number_of_epochs=3"
    log = run_recipe(MEDIA, "slu_tiny.yaml", args)
    assert "are up to date" in log and "Loading a checkpoint" in log
    assert "Going into epoch 3" in log and "Going into epoch 1" not in log
    assert "epoch: 3" in (out / "train_log.txt").read_text()


@pytest.mark.parametrize(
    "recipe, full, tiny",
    [(NER, "ner.yaml", "ner_tiny.yaml"), (MEDIA, "slu.yaml", "slu_tiny.yaml")],
)
def test_full_scale_hparams_load(
    recipe, full, tiny, tiny_w2v_bert_dir, tmp_path
):
    """The full-scale files load (placeholders given) and set the same keys
    as the tiny ones that the tests run."""
    overrides = {
        "data_folder": str(tmp_path),
        "sense_model": str(tiny_w2v_bert_dir),
        "output_folder": str(tmp_path / "out"),
    }
    if "channels_path" in (recipe / "hparams" / full).read_text():
        overrides["channels_path"] = str(tmp_path / "channels.csv")
    with open(recipe / "hparams" / full, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    with open(recipe / "hparams" / tiny, encoding="utf-8") as f:
        tiny_hparams = load_hyperpyyaml(
            f, {"output_folder": str(tmp_path / "t")}
        )
    assert set(hparams) == set(tiny_hparams)
    assert hparams["precision"] == "bf16" and not hparams["freeze_encoder"]
    assert hparams["synthetic_corpus"] is None
    head = hparams["head"]
    assert head.adaptor.output_dim == hparams["adaptor_dim"]


def test_slue_ner_ddp_two_processes(slue_corpus, sense_model_dir, tmp_path):
    """Two gloo processes: training is sharded, evaluation is not (every
    rank scores the whole set, the main one writes the reports)."""
    root, annotations = slue_corpus
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            "train.py",
            "hparams/ner_tiny.yaml",
            f"--data_folder={root}",
            f"--output_folder={out}",
            f"--sense_model={sense_model_dir}",
            "--number_of_epochs=1",
            "--freeze_encoder=False",
            "--distributed_backend=gloo",
            "--device=cpu",
        ],
        cwd=NER,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "epoch: 1" in (out / "train_log.txt").read_text()
    metrics = check_reports(
        out, "test", ("NEER", "NEVER"), out / "save" / "test.csv"
    )
    assert metrics["utterances"] == len(annotations["dev"])
