"""Shared fixtures: tiny real HuggingFace models written once per session."""

import pytest
import torch

from speechbrain_sense.encoders.export import export_student
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
from speechbrain_sense.testing.tiny_models import (
    save_tiny_w2v_bert,
    save_tiny_xlm_roberta,
)


@pytest.fixture(scope="session")
def tiny_w2v_bert_dir(tmp_path_factory):
    """A tiny random w2v-BERT 2.0 model and feature extractor (seed 0)."""
    return save_tiny_w2v_bert(tmp_path_factory.mktemp("tiny_w2v_bert"))


@pytest.fixture(scope="session")
def tiny_xlmr_dir(tmp_path_factory):
    """A tiny random XLM-RoBERTa encoder and tokenizer (seed 0)."""
    return save_tiny_xlm_roberta(tmp_path_factory.mktemp("tiny_xlmr"))


@pytest.fixture(scope="session")
def sense_model_dir(tiny_w2v_bert_dir, tmp_path_factory):
    """An exported tiny SENSE model (32-d frames, 16-d embeddings), as the
    SENSE recipe exports one, for the downstream recipes to load."""
    torch.manual_seed(0)
    d = str(tiny_w2v_bert_dir)
    student = SenseStudent(
        SenseW2VBert(d, d, output_norm=True), SenseEmbeddingHead(32, 16)
    )
    # Not the random initialisation a fresh load would reproduce by chance.
    with torch.no_grad():
        for param in student.parameters():
            param.add_(0.01 * torch.randn_like(param))
    out = tmp_path_factory.mktemp("sense_model")
    return export_student(student.state_dict(), d, out, output_norm=True)


@pytest.fixture(scope="session")
def shard_corpus(tiny_w2v_bert_dir, tmp_path_factory):
    """A prepared 2-language synthetic Common Voice corpus and its shards.

    Returns a dict with ``data_folder``, ``save_folder``, ``manifests``
    (split -> CSV), ``encoder`` (tiny w2v-BERT dir) and ``shards`` (a
    verified folder, 4 clips per shard, features stored).
    """
    import sys
    from pathlib import Path

    from speechbrain_sense.data.shards import build_shards
    from speechbrain_sense.synthetic.common_voice import make_synthetic_cv

    recipe = Path(__file__).resolve().parents[1] / "recipes/CommonVoice/SENSE"
    sys.path.insert(0, str(recipe))
    from common_voice_sense_prepare import prepare_common_voice

    root = tmp_path_factory.mktemp("shard_corpus")
    data, save = root / "cv", root / "save"
    make_synthetic_cv(data, ["en", "fr"], per_language=15, seed=3)
    prepare_common_voice(data, save, ["en", "fr"], min_duration=0.0)
    manifests = {s: save / f"{s}.csv" for s in ("train", "dev", "test")}
    shards = root / "shards"
    build_shards(
        manifests,
        shards,
        str(tiny_w2v_bert_dir),
        data_root=data,
        samples_per_shard=4,
        progress=False,
    )
    return {
        "data_folder": data,
        "save_folder": save,
        "manifests": manifests,
        "encoder": str(tiny_w2v_bert_dir),
        "shards": shards,
    }
