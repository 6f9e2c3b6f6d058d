"""Shared fixtures: tiny real HuggingFace models written once per session."""

import pytest

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
