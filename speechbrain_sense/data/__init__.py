"""The data pipeline: corpora on disk in, training batches out.

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
