"""speechbrain-sense: SpeechBrain recipes for semantic speech encoders.

SENSE aligns a w2v-BERT 2.0 speech encoder with a frozen sentence encoder
(BGE-M3) so that an utterance and its transcript land on the same point of
the sentence-embedding space; SENSIA adapts Backpack language models to new
languages. Reusable parts live here; the experiments live in ``recipes/``.
``docs/architecture.md`` draws the subpackages and what each may import.
"""

from speechbrain_sense import _moved

__version__ = "0.2.0"

# The flat layout's module paths (0.1.0) still import, with a warning.
_moved.install()
