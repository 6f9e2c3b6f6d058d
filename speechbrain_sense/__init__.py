"""speechbrain-sense: SpeechBrain recipes for semantic speech encoders.

SENSE aligns a w2v-BERT 2.0 speech encoder with a frozen sentence encoder
(BGE-M3) so that an utterance and its transcript land on the same point of
the sentence-embedding space; SENSIA adapts Backpack language models to new
languages. Reusable parts live here; the experiments live in ``recipes/``.
"""

__version__ = "0.1.0"
