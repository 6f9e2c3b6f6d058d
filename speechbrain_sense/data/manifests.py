"""Reading SpeechBrain CSV manifests without touching the transcripts.

SpeechBrain's ``load_data_csv`` substitutes ``$name`` patterns in *every*
column, so a transcript such as ``"It costs 5$."`` or ``"$100 prize"``
either crashes the loader or is silently rewritten. Here only the path
columns get ``$data_root`` replaced; text is returned byte for byte.

Authors
 * speechbrain-sense developers 2026
"""

import csv


def read_manifest(csv_path, replacements=None, path_columns=("wav",)):
    """Reads a manifest into the ``{id: row}`` dict ``DynamicItemDataset``
    takes.

    Arguments
    ---------
    csv_path : str or Path
        CSV with an ``ID`` column (and typically ``duration``).
    replacements : dict, optional
        ``{"data_root": "/data/cv"}``: replaces ``$data_root`` at the start
        of the ``path_columns`` values only.
    path_columns : tuple of str
        Columns holding paths.

    Returns
    -------
    dict
        ``{ID: {column: value}}`` with ``duration`` as float.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> _ = open(path, "w").write(
    ...     "ID,duration,wav,sentence\\n"
    ...     "a,1.5,$data_root/a.mp3,It costs 5$ or $5.\\n"
    ... )
    >>> row = read_manifest(path, {"data_root": "/cv"})["a"]
    >>> row["wav"], row["sentence"], row["duration"]
    ('/cv/a.mp3', 'It costs 5$ or $5.', 1.5)
    """
    replacements = replacements or {}
    data = {}
    with open(csv_path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "ID" not in reader.fieldnames:
            raise ValueError(f"{csv_path}: manifest needs an 'ID' column")
        for line, row in enumerate(reader, start=2):
            utt_id = row.pop("ID")
            if utt_id in data:
                raise ValueError(f"{csv_path}:{line}: duplicate ID {utt_id!r}")
            for column in path_columns:
                value = row.get(column)
                if value is None or not value.startswith("$"):
                    continue
                name, _, rest = value[1:].partition("/")
                if name not in replacements:
                    raise KeyError(
                        f"{csv_path}:{line}: {column} {value!r} needs "
                        f"${name}, which was not given"
                    )
                row[column] = f"{replacements[name]}/{rest}"
            if "duration" in row:
                row["duration"] = float(row["duration"])
            data[utt_id] = row
    return data
