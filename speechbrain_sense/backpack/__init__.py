"""Backpack language models (Hewitt et al., 2023).

A faithful PyTorch port of ``stanfordnlp/backpack-gpt2`` that loads the
published checkpoint layout from a local directory (``model``), its
tokenizers (``tokenizer``), and the label-smoothed next-token objective,
block packing and schedules of the recipes (``language_modeling``). It
imports nothing else of this package: SENSIA builds on it, not the reverse
(the sense-level analysis is :mod:`speechbrain_sense.sensia.analysis`).
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
