"""SENSIA: adapting an English Backpack LM to new languages.

Losses, pooling and the loss-weight curriculum live in
:mod:`speechbrain_sense.sensia.losses`.
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
