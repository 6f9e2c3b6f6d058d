"""Reads the recipe list, ``tests/recipes/<Dataset>.csv``.

One row per hyperparameter file, in upstream SpeechBrain's columns (see
``tests/consistency/README.md``).
"""

import csv
import pathlib
import shlex

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPE_LIST = ROOT / "tests" / "recipes"
COLUMNS = [
    "Task",
    "Dataset",
    "Script_file",
    "Hparam_file",
    "Data_prep_file",
    "Readme_file",
    "Result_url",
    "HF_repo",
    "test_debug_flags",
    "test_debug_checks",
    "performance",
]


def recipe_csv_files():
    """Lists the recipe CSV files.

    Returns
    -------
    list of pathlib.Path
        ``tests/recipes/*.csv``, sorted.
    """
    return sorted(RECIPE_LIST.glob("*.csv"))


def read_rows(csv_file):
    """Reads the rows of one recipe CSV file.

    Arguments
    ---------
    csv_file : pathlib.Path
        The CSV file.

    Returns
    -------
    list of dict
        Column name -> value (stripped), one dict per row.
    """
    with open(csv_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        return [
            {key: (value or "").strip() for key, value in row.items()}
            for row in reader
        ]


def all_rows():
    """Reads the rows of every recipe CSV file.

    Returns
    -------
    list of dict
        Every row, with ``csv_file`` (the name of its CSV file) added.
    """
    rows = []
    for csv_file in recipe_csv_files():
        for row in read_rows(csv_file):
            rows.append(dict(row, csv_file=csv_file.name))
    return rows


def debug_overrides(flags):
    """Turns ``test_debug_flags`` into hyperparameter overrides.

    Arguments
    ---------
    flags : str
        Command-line flags, ``--key=value`` each.

    Returns
    -------
    dict
        Key -> value, the values still strings (as the command line gives
        them to ``speechbrain.parse_arguments``).
    """
    overrides = {}
    for token in shlex.split(flags):
        assert token.startswith("--") and "=" in token, token
        key, value = token[2:].split("=", 1)
        overrides[key] = value
    return overrides
