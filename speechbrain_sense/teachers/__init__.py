"""Frozen sentence encoders that give SENSE its targets, and their cache.

* :mod:`.sentence_encoders`: the teachers (BGE-M3 and any HuggingFace
  sentence encoder, USE, e5, ...), built from a spec string, and the
  ``training.json`` that names a model's teacher;
* :mod:`.cache`: the teacher embedding of every transcript, computed once
  before training and read by the data pipeline.

Before 0.2.0 ``speechbrain_sense.teachers`` was the module that is
:mod:`.sentence_encoders` now; its names still resolve here, with a
``DeprecationWarning``.
"""

from speechbrain_sense._moved import moved_attribute


def __getattr__(name):
    """The names of the old ``speechbrain_sense.teachers`` module.

    Arguments
    ---------
    name : str
        An attribute that is not defined here.

    Returns
    -------
    object
        ``speechbrain_sense.teachers.sentence_encoders.<name>``.
    """
    return moved_attribute(
        __name__, "speechbrain_sense.teachers.sentence_encoders", name
    )
