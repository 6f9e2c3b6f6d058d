"""The recipe list ``tests/recipes/<Dataset>.csv`` is complete and sound.

As upstream SpeechBrain's ``tests/consistency/test_recipe.py``:

* every recipe yaml under ``recipes/<Dataset>/`` has a row in
  ``tests/recipes/<Dataset>.csv``, in upstream's columns;
* every row has ``test_debug_flags`` (tiny data, one epoch, outputs under
  ``tests/tmp/``) and its script, yaml and README exist, as do the
  preparation script it names;
* the README of a row links its ``Result_url`` and ``HF_repo``, if any;
* every recipe folder has an ``extra_requirements.txt``.
"""

import pytest
from recipe_csvs import (
    COLUMNS,
    ROOT,
    all_rows,
    debug_overrides,
    read_rows,
    recipe_csv_files,
)

ROWS = all_rows()
RECIPE_FOLDERS = sorted(
    {p.parent.parent for p in (ROOT / "recipes").rglob("hparams/*.yaml")}
)


def test_every_dataset_has_a_csv():
    """Each dataset folder of ``recipes/`` has its CSV file."""
    datasets = {p.name for p in (ROOT / "recipes").iterdir() if p.is_dir()}
    listed = {p.stem for p in recipe_csv_files()}
    assert datasets <= listed, sorted(datasets - listed)


@pytest.mark.parametrize("csv_file", recipe_csv_files(), ids=lambda p: p.name)
def test_csv_lists_every_yaml(csv_file):
    """The CSV of a dataset has upstream's columns and lists its yamls.

    Arguments
    ---------
    csv_file : pathlib.Path
        The recipe CSV file.
    """
    header = csv_file.read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == COLUMNS
    rows = read_rows(csv_file)
    listed = [row["Hparam_file"] for row in rows]
    assert len(listed) == len(set(listed)), "a yaml is listed twice"
    dataset = ROOT / "recipes" / csv_file.stem
    yamls = {
        p.relative_to(ROOT).as_posix()
        for p in dataset.rglob("*.yaml")
        if "/results/" not in p.as_posix()
    }
    assert yamls == set(listed), (
        f"not listed: {sorted(yamls - set(listed))}, "
        f"missing: {sorted(set(listed) - yamls)}"
    )
    for row in rows:
        assert row["Dataset"] == csv_file.stem
        assert row["Hparam_file"].startswith(f"recipes/{csv_file.stem}/")


@pytest.mark.parametrize("row", ROWS, ids=[r["Hparam_file"] for r in ROWS])
def test_row_files_and_flags(row):
    """The files of a row exist and its debug flags run a tiny, short test.

    Arguments
    ---------
    row : dict
        The recipe CSV row.
    """
    for field in ("Script_file", "Hparam_file", "Readme_file"):
        assert row[field], f"{field} is mandatory"
    for field in (
        "Script_file",
        "Hparam_file",
        "Data_prep_file",
        "Readme_file",
    ):
        for path in row[field].split():
            assert (ROOT / path).is_file(), f"{field} {path} does not exist"
    assert row["test_debug_flags"], "test_debug_flags are missing"
    flags = debug_overrides(row["test_debug_flags"])
    assert flags.get("output_folder", "").startswith("tests/tmp/")
    assert flags.get("data_folder", "").startswith("tests/")
    if "number_of_epochs" in (ROOT / row["Hparam_file"]).read_text("utf-8"):
        assert flags.get("number_of_epochs") == "1"
    assert row["test_debug_checks"].startswith("file_exists=[")
    readme = (ROOT / row["Readme_file"]).read_text(encoding="utf-8")
    for field in ("Result_url", "HF_repo"):
        for link in row[field].split():
            assert link in readme, f"{row['Readme_file']} does not link {link}"


@pytest.mark.parametrize(
    "folder", RECIPE_FOLDERS, ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_extra_requirements(folder):
    """A recipe folder lists the packages it needs beyond SpeechBrain.

    Arguments
    ---------
    folder : pathlib.Path
        The recipe folder (the one holding ``hparams/``).
    """
    requirements = folder / "extra_requirements.txt"
    assert requirements.is_file(), f"{requirements} is missing"
    lines = [
        line.split("#")[0].strip()
        for line in requirements.read_text(encoding="utf-8").splitlines()
    ]
    assert [line for line in lines if line], f"{requirements} is empty"
