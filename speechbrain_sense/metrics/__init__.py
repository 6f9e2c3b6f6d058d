"""Task metrics of the downstream recipes.

* :mod:`speechbrain_sense.metrics.slu`: semantic tags in transcripts,
  named-entity / concept error rates (NEER, COER) and their value variants,
  SLUE's entity F1.
* :mod:`speechbrain_sense.metrics.generation`: corpus BLEU and chrF
  (sacrebleu), ROUGE (rouge-score) and BERTScore (bert-score) wrappers.
"""
