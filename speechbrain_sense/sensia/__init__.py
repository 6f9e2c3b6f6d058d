"""SENSIA: adapting an English Backpack LM to new languages.

* :mod:`.losses`: the sense and context views of a sentence, InfoNCE
  across DDP ranks, the LM term and the 3-phase loss-weight curriculum
  (its main names are re-exported here);
* :mod:`.parallel_data`: parallel sentences in the usual formats;
* :mod:`.bitext_retrieval`: the cross-lingual alignment metric;
* :mod:`.zero_shot`: zero-shot multiple-choice accuracy and perplexity;
* :mod:`.analysis`: the paper's sense-level probes of an adapted model.
"""

from speechbrain_sense.sensia.losses import (
    curriculum_weights,
    info_nce,
    label_smoothed_lm_loss,
    last_token_state,
    masked_mean_pooling,
    sense_entropy,
    sense_mixture_pooling,
    sentence_views,
)

__all__ = [
    "curriculum_weights",
    "info_nce",
    "label_smoothed_lm_loss",
    "last_token_state",
    "masked_mean_pooling",
    "sense_entropy",
    "sense_mixture_pooling",
    "sentence_views",
]
