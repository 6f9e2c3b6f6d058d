"""Synthetic corpora in real corpus layouts, for tests, demos and benchmarks.

Authors
 * speechbrain-sense developers 2026
"""

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def synthesize_if_empty(data_folder, make_corpus, **options):
    """Writes a synthetic corpus into ``data_folder`` if it is missing or empty.

    The demo configurations of the recipes call this before preparation: a
    folder that holds anything (a real corpus, or a corpus synthesised
    earlier) is left alone.

    Arguments
    ---------
    data_folder : str or Path
        Where the corpus goes.
    make_corpus : callable
        ``make_corpus(data_folder, **options)``, e.g.
        :func:`speechbrain_sense.synthetic.common_voice.make_synthetic_cv`.
    **options
        Passed to ``make_corpus``.

    Returns
    -------
    bool
        Whether a corpus was written.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "corpus"
    >>> def make(path, lines):
    ...     path.mkdir()
    ...     (path / "a.txt").write_text(lines)
    >>> synthesize_if_empty(folder, make, lines="x")
    True
    >>> synthesize_if_empty(folder, make, lines="y")
    False
    """
    folder = Path(data_folder)
    if folder.is_dir() and any(folder.iterdir()):
        return False
    logger.info(f"data_folder {folder} is empty: synthesising a corpus")
    make_corpus(folder, **options)
    return True
