"""Task metrics of the downstream recipes.

* :mod:`speechbrain_sense.metrics.slu`: semantic tags in transcripts,
  named-entity / concept error rates (NEER, COER) and their value variants
  with SpeechBrain's ``ErrorRateStats`` alignment, SLUE's entity F1.
* :mod:`speechbrain_sense.metrics.translation`: corpus BLEU and chrF
  (sacrebleu), per language, with their signatures.
* :mod:`speechbrain_sense.metrics.summarization`: ROUGE-1/2/L
  (rouge-score) and BERTScore (bert-score) with a configurable scoring
  model and a description of the settings.
"""
