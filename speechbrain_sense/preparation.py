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
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
