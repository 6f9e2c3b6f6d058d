"""Fixtures shared by the SENSIA analysis tests: words, tokenizer, bitext
and tiny random Backpacks."""

import pytest
import torch

from speechbrain_sense.backpack import BackpackConfig, BackpackLM
from speechbrain_sense.backpack.tokenizer import BackpackTokenizer

TINY_BACKPACK = {
    "vocab_size": 60,
    "n_positions": 32,
    "n_embd": 16,
    "n_layer": 1,
    "n_head": 2,
    "num_senses": 4,
    "dropout": 0.0,
}

EN = "the a cat dog house tree sees takes big small".split()
FR = "le un chat chien maison arbre voit prend grand petit".split()


@pytest.fixture(scope="module")
def tokenizer():
    """A SentencePiece tokenizer that knows the ten English and French
    words."""
    texts = [" ".join(EN[i::3]) for i in range(3)] + [
        " ".join(FR[i::3]) for i in range(3)
    ]
    return BackpackTokenizer.train_sentencepiece(texts * 10, vocab_size=55)


@pytest.fixture
def bitext_file(tmp_path):
    """40 ManyThings-format pairs of three words, each a word-for-word
    translation."""
    lines = []
    for i in range(40):
        e = [EN[(i + k) % 10] for k in range(3)]
        f = [FR[(i + k) % 10] for k in range(3)]
        lines.append(" ".join(e) + "\t" + " ".join(f) + "\tCC-BY\n")
    path = tmp_path / "fra.txt"
    path.write_text("".join(lines))
    return path


@pytest.fixture
def tiny_backpack():
    """``tiny_backpack(seed=0, **config)``: a seeded random Backpack in
    eval mode, :data:`TINY_BACKPACK` with ``config`` over it."""

    def build(seed=0, **overrides):
        torch.manual_seed(seed)
        config = BackpackConfig(**{**TINY_BACKPACK, **overrides})
        return BackpackLM(config).eval()

    return build
