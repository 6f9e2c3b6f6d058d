"""Shared bookkeeping of the recipes' ``<dataset>_prepare.py`` scripts.

Every preparation writes its outputs, then the options it ran with (last:
the file's presence means everything before it completed). A second run
with the same options and all outputs present does nothing; different
options prepare again. Manifests are written to a temporary file and
renamed, so an interrupted run never leaves a half-written CSV behind.

Authors
 * speechbrain-sense developers 2026
"""

import csv
import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

OPTIONS_FILE = "prepare_options.json"

# The clip TSV header (train/dev/test/validated.tsv) of Common Voice
# releases, by version: 17.0 added sentence_id and sentence_domain.
_CV_16_COLUMNS = (
    "client_id",
    "path",
    "sentence",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accents",
    "variant",
    "locale",
    "segment",
)
COMMON_VOICE_COLUMNS = {
    "16.1": _CV_16_COLUMNS,
    "17.0": _CV_16_COLUMNS[:2]
    + ("sentence_id", "sentence", "sentence_domain")
    + _CV_16_COLUMNS[3:],
}


def already_prepared(save_folder, options, outputs, options_file=OPTIONS_FILE):
    """Whether a previous run wrote ``outputs`` with the same ``options``.

    Arguments
    ---------
    save_folder : str or Path
        The preparation's output folder.
    options : dict
        JSON-serialisable options of this run.
    outputs : list of str
        Files (relative to ``save_folder``) the preparation writes.
    options_file : str
        Name of the options file.

    Returns
    -------
    bool

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> already_prepared(folder, {"a": 1}, ["train.csv"])
    False
    >>> _ = (folder / "train.csv").write_text("ID\\n")
    >>> mark_prepared(folder, {"a": 1})
    >>> already_prepared(folder, {"a": 1}, ["train.csv"])
    True
    >>> already_prepared(folder, {"a": 2}, ["train.csv"])
    False
    """
    save_folder = Path(save_folder)
    files = list(outputs) + [options_file]
    if not all((save_folder / name).is_file() for name in files):
        return False
    saved = json.loads((save_folder / options_file).read_text())
    if saved != json.loads(json.dumps(options)):
        logger.info(
            f"preparation options changed ({saved} -> {options}); "
            "preparing again"
        )
        return False
    return True


def mark_prepared(save_folder, options, options_file=OPTIONS_FILE):
    """Records ``options``: call once every output is written.

    Arguments
    ---------
    save_folder : str or Path
        The preparation's output folder.
    options : dict
        JSON-serialisable options of this run.
    options_file : str
        Name of the options file.
    """
    path = Path(save_folder) / options_file
    path.write_text(json.dumps(options, indent=1))


def write_manifest(path, rows, fieldnames):
    """Writes a CSV manifest atomically (temporary file, then rename).

    Arguments
    ---------
    path : str or Path
        The CSV file.
    rows : list of dict
        One dict per utterance, keys ``fieldnames``.
    fieldnames : list of str
        The columns, in order (SpeechBrain's first column is ``ID``).

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "dev.csv"
    >>> write_manifest(path, [{"ID": "a", "wav": "$data_root/a.wav"}],
    ...                ["ID", "wav"])
    >>> path.read_text().splitlines()
    ['ID,wav', 'a,$data_root/a.wav']
    """
    with ManifestWriter(path, fieldnames) as writer:
        writer.writerows(rows)
        writer.commit()


class ManifestWriter:
    """A CSV manifest written row by row, put in place by :meth:`commit`.

    The header and rows go to ``<path>.tmp``; :meth:`commit` renames it
    to ``path`` (atomic on one file system), :meth:`discard` deletes it,
    and so does leaving a ``with`` block without a commit (an exception
    included). Until the commit, ``path`` keeps what it held before, so a
    preparation streaming several manifests commits them only once all
    its checks have passed. The bytes are those of :func:`write_manifest`
    for the same rows.

    Arguments
    ---------
    path : str or Path
        The CSV file.
    fieldnames : list of str
        The columns, in order (SpeechBrain's first column is ``ID``).

    Attributes
    ----------
    rows : int
        Rows written so far.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with ManifestWriter(folder / "train.csv", ["ID", "lang"]) as writer:
    ...     writer.writerow({"ID": "a", "lang": "en"})
    ...     writer.writerows([{"ID": "b", "lang": "fr"}])
    ...     sorted(p.name for p in folder.iterdir())
    ...     writer.commit()
    ['train.csv.tmp']
    >>> writer.rows
    2
    >>> (folder / "train.csv").read_text().splitlines()
    ['ID,lang', 'a,en', 'b,fr']
    >>> with ManifestWriter(folder / "train.csv", ["ID", "lang"]) as writer:
    ...     writer.writerow({"ID": "c", "lang": "de"})
    >>> sorted(p.name for p in folder.iterdir())  # no commit: unchanged
    ['train.csv']
    >>> (folder / "train.csv").read_text().splitlines()[1:]
    ['a,en', 'b,fr']
    """

    def __init__(self, path, fieldnames):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.rows = 0
        self._file = open(self.tmp, "w", encoding="utf-8", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=fieldnames)
        self._writer.writeheader()
        self._done = False

    def writerow(self, row):
        """Writes one row (a dict keyed by the columns).

        Arguments
        ---------
        row : dict
            Column name -> value.
        """
        self._writer.writerow(row)
        self.rows += 1

    def writerows(self, rows):
        """Writes every row of an iterable of dicts.

        Arguments
        ---------
        rows : iterable of dict
            Rows, each keyed by the column names.
        """
        for row in rows:
            self.writerow(row)

    def commit(self):
        """Closes the temporary file and renames it to ``path``."""
        if self._done:
            raise ValueError(f"{self.path}: already committed or discarded")
        self._file.close()
        os.replace(self.tmp, self.path)
        self._done = True

    def discard(self):
        """Closes and deletes the temporary file; ``path`` is untouched."""
        if self._done:
            return
        self._file.close()
        self.tmp.unlink(missing_ok=True)
        self._done = True

    def __enter__(self):
        """Enter the context; returns the writer itself."""
        return self

    def __exit__(self, *exc_info):
        """Discard the temporary file unless committed; exceptions propagate.

        Returns
        -------
        bool
            False, so that an exception of the ``with`` block is re-raised.
        """
        self.discard()
        return False
