"""A downstream recipe on an exported XLS-R SENSE model (SAMU-XLSR row).

The CoVoST 2 speech translation, SLUE NER and SLUE-TED summarization
recipes run as a user runs them (``python train.py hparams/<tiny>.yaml``
in a subprocess) for one epoch on an exported tiny XLS-R student: its workers
compute XLS-R input (normalised samples) and its encoder maps sample
counts to frames, as with a w2v-BERT 2.0 model.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechbrain_sense.encoders.export import export_student
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.xls_r import SenseXLSR
from speechbrain_sense.synthetic.covost import make_synthetic_covost
from speechbrain_sense.testing.tiny_models import save_tiny_xls_r

RECIPE = Path(__file__).resolve().parents[2] / "recipes/CoVoST2/ST"
LANGUAGES = ["fa", "et"]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def xls_r_sense_dir(tmp_path_factory):
    source = str(save_tiny_xls_r(tmp_path_factory.mktemp("xls_r")))
    torch.manual_seed(0)
    student = SenseStudent(
        SenseXLSR(source, save_path=source), SenseEmbeddingHead(32, 16)
    )
    out = tmp_path_factory.mktemp("xls_r_sense")
    return export_student(student.state_dict(), source, out)


def run_recipe(recipe, *args):
    """Runs ``python train.py ARGS`` in a recipe folder, as a user does.

    Arguments
    ---------
    recipe : Path
        The recipe folder.
    *args : str
        The yaml and its overrides.
    """
    result = subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=recipe,
        env=dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]


def test_st_recipe_trains_on_an_exported_xls_r_model(xls_r_sense_dir, tmp_path):
    corpus = tmp_path / "covost"
    make_synthetic_covost(corpus, LANGUAGES, 10, seed=7, split=(0.6, 0.2, 0.2))
    out = tmp_path / "exp"
    run_recipe(
        RECIPE,
        "hparams/st_tiny.yaml",
        f"--data_folder={corpus}",
        f"--output_folder={out}",
        f"--languages=[{', '.join(LANGUAGES)}]",
        "--number_of_epochs=1",
        "--num_workers=0",
        "--max_batch_seconds=20",
        "--precision=fp32",
        "--skip_bad_rows=False",
        f"--encoder_source={xls_r_sense_dir}",
        "--encoder_dim=32",
        "--freeze_encoder=True",
        "--vocab_size=40",
        "--d_model=32",
        "--max_decode_steps=12",
        "--beam_size=2",
        "--valid_search_interval=1",
    )
    assert "epoch: 1" in (out / "train_log.txt").read_text()
    scores = json.loads((out / "test_bleu.json").read_text())
    assert scores["all"]["count"] == 4
    with open(out / "test_translations.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 4
    assert all(len(r["hypothesis"].split()) <= 12 for r in rows)


def test_slue_ner_recipe_trains_on_an_exported_xls_r_model(
    xls_r_sense_dir, tmp_path
):
    """The SLU recipes' features come from speechbrain_sense.tasks.slu."""
    from speechbrain_sense.synthetic.slu import (
        make_synthetic_slue_voxpopuli,
    )

    root = tmp_path / "slue"
    per_split = {"fine-tune": 8, "dev": 4, "test": 2}
    make_synthetic_slue_voxpopuli(root, per_split, seed=2)
    out = tmp_path / "ner"
    run_recipe(
        RECIPE.parents[1] / "SLUE-VoxPopuli/NER",
        "hparams/ner_tiny.yaml",
        f"--data_folder={root}",
        f"--output_folder={out}",
        f"--sense_model={xls_r_sense_dir}",
        "--number_of_epochs=1",
        "--freeze_encoder=True",
    )
    train_log = (out / "train_log.txt").read_text()
    assert "epoch: 1" in train_log and "test NEER" in train_log
    metrics = json.loads((out / "test_metrics.json").read_text())
    with open(out / "save" / "test.csv", encoding="utf-8") as f:
        assert metrics["utterances"] == len(list(csv.DictReader(f))) > 0


def test_summarization_recipe_trains_on_an_exported_xls_r_model(
    xls_r_sense_dir, tmp_path
):
    """Its long-form windows are cut from the talk's normalised samples."""
    from speechbrain_sense.synthetic.slue_ted import make_synthetic_slue_ted

    corpus = tmp_path / "slue-ted"
    make_synthetic_slue_ted(corpus, talks=(3, 1, 1), sentences_per_talk=(3, 4))
    out = tmp_path / "summarization"
    run_recipe(
        RECIPE.parents[1] / "SLUE-TED/summarization",
        "hparams/summarization_tiny.yaml",
        f"--data_folder={corpus}",
        f"--output_folder={out}",
        f"--encoder_source={xls_r_sense_dir}",
        "--number_of_epochs=1",
        "--valid_search_interval=1",
        "--device=cpu",
    )
    assert "epoch: 1" in (out / "train_log.txt").read_text()
    report = json.loads((out / "test_metrics.json").read_text())
    assert report["metrics"]["summaries"] == 1
