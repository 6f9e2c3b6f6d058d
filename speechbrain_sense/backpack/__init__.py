"""Backpack language models (Hewitt et al., 2023).

A faithful PyTorch port of ``stanfordnlp/backpack-gpt2`` that loads the
published checkpoint layout from a local directory (``model``), its
tokenizers (``tokenizer``), the next-token objective and block packing of
the recipes (``language_modeling``), and the sense-level analysis of SENSIA
(``analysis``).
"""

from speechbrain_sense.backpack.model import (
    BackpackConfig,
    BackpackLM,
    BackpackOutput,
)
from speechbrain_sense.backpack.tokenizer import BackpackTokenizer

__all__ = [
    "BackpackConfig",
    "BackpackLM",
    "BackpackOutput",
    "BackpackTokenizer",
]
