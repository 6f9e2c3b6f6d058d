"""Shared fixtures: tiny real HuggingFace models written once per session."""

import pytest
import torch

from speechbrain_sense.export import export_student
from speechbrain_sense.pooling import SenseEmbeddingHead
from speechbrain_sense.student import SenseStudent
from speechbrain_sense.testing.tiny_models import (
    save_tiny_w2v_bert,
    save_tiny_xlm_roberta,
)
from speechbrain_sense.w2v_bert import SenseW2VBert


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
