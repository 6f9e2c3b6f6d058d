"""The data pipeline: corpora on disk in, training batches out.

* :mod:`.manifests`, :mod:`.preparation`, :mod:`.clip_check`: what the
  ``<dataset>_prepare.py`` scripts share (CSV manifests read byte for byte,
  idempotent outputs, every clip decoded once);
* :mod:`.dataio`: manifests to SpeechBrain datasets, encoder features
  computed in the DataLoader workers;
* :mod:`.sampling`: language re-balancing and duration-based batches;
* :mod:`.shards` and :mod:`.streaming`: WebDataset shards of features, and
  streaming batches from them with the same semantics;
* :mod:`.vad`: speech activity (Silero VAD) on encoder frames.

Before 0.2.0 this package held the synthetic corpora, which are
:mod:`speechbrain_sense.synthetic` now; their old names still resolve here,
with a ``DeprecationWarning``.
"""

from speechbrain_sense._moved import moved_attribute


def __getattr__(name):
    """The synthetic-corpus names of the old ``speechbrain_sense.data``.

    Arguments
    ---------
    name : str
        An attribute that is not defined here.

    Returns
    -------
    object
        ``speechbrain_sense.synthetic.<name>``.
    """
    return moved_attribute(__name__, "speechbrain_sense.synthetic", name)
