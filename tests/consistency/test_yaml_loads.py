"""Every recipe yaml loads with the overrides of its recipe CSV row.

As upstream SpeechBrain's ``load_yaml_test``: each hyperparameter file is
loaded with HyperPyYAML, from its recipe folder, with the row's
``test_debug_flags`` as overrides. Those flags give a value to every
``!PLACEHOLDER``; the paths they name under ``tests/tmp/`` are moved to a
temporary folder, and ``tests/tmp/fixtures/<name>`` are tiny random models
written here (no model hub is reached).
"""

import json
import os
import pathlib

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from recipe_csvs import ROOT, all_rows, debug_overrides

TMP_PREFIX = "tests/tmp/"
FIXTURE_PREFIX = "tests/tmp/fixtures/"


def _tiny_w2v_bert(out):
    """Writes a tiny w2v-BERT 2.0 (32-d).

    Arguments
    ---------
    out : pathlib.Path
        The model directory.
    """
    from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert

    save_tiny_w2v_bert(out)


def _tiny_xls_r(out):
    """Writes a tiny XLS-R (wav2vec 2.0, 32-d).

    Arguments
    ---------
    out : pathlib.Path
        The model directory.
    """
    from speechbrain_sense.testing.tiny_models import save_tiny_xls_r

    save_tiny_xls_r(out)


def _tiny_xlmr(out):
    """Writes a tiny XLM-RoBERTa text encoder (32-d).

    Arguments
    ---------
    out : pathlib.Path
        The model directory.
    """
    from speechbrain_sense.testing.tiny_models import save_tiny_xlm_roberta

    save_tiny_xlm_roberta(out)


def _tiny_text_model(name):
    """A writer for one of the tiny text models.

    Arguments
    ---------
    name : str
        ``save_<name>`` in ``speechbrain_sense.testing.tiny_text_models``.

    Returns
    -------
    callable
        Writes the model into the directory it is given.
    """

    def write(out):
        """Writes the model.

        Arguments
        ---------
        out : pathlib.Path
            The model directory.
        """
        from speechbrain_sense.testing import tiny_text_models

        getattr(tiny_text_models, f"save_{name}")(out)

    return write


def _sense_model(out):
    """Writes an exported tiny SENSE model, as the SENSE recipe exports one.

    Arguments
    ---------
    out : pathlib.Path
        The model directory.
    """
    from speechbrain_sense.encoders.export import export_student
    from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
    from speechbrain_sense.encoders.student import SenseStudent
    from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
    from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert

    encoder = str(save_tiny_w2v_bert(out.parent / "sense_model_encoder"))
    torch.manual_seed(0)
    student = SenseStudent(
        SenseW2VBert(encoder, encoder, output_norm=True),
        SenseEmbeddingHead(32, 16),
    )
    export_student(student.state_dict(), encoder, out, output_norm=True)


def _backpack_micro(out):
    """Writes the ``config.json`` of a Backpack (all its yaml reads).

    Arguments
    ---------
    out : pathlib.Path
        The model directory.
    """
    from speechbrain_sense.backpack.model import BackpackConfig

    out.mkdir(parents=True)
    config = BackpackConfig.micro(n_embd=48, n_layer=1, n_head=2)
    (out / "config.json").write_text(json.dumps(config.to_hf_dict()))


FIXTURES = {
    "tiny_w2v_bert": _tiny_w2v_bert,
    "tiny_xlmr": _tiny_xlmr,
    "tiny_xls_r": _tiny_xls_r,
    "tiny_bart": _tiny_text_model("tiny_bart"),
    "tiny_mbart50": _tiny_text_model("tiny_mbart50"),
    "tiny_bert": _tiny_text_model("tiny_bert"),
    "sense_model": _sense_model,
    "backpack_micro": _backpack_micro,
}

ROWS = all_rows()


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory):
    """The folder that stands for ``tests/tmp/``.

    Arguments
    ---------
    tmp_path_factory : pytest.TempPathFactory
        Pytest's temporary folders.

    Returns
    -------
    pathlib.Path
        A fresh temporary folder, shared by the module's tests.
    """
    return tmp_path_factory.mktemp("recipe_yaml")


def resolve(value, tmp_root):
    """Moves a ``tests/tmp/`` path to the temporary folder.

    Writes the fixture a ``tests/tmp/fixtures/<name>`` path names, once.

    Arguments
    ---------
    value : str
        An override value.
    tmp_root : pathlib.Path
        The folder that stands for ``tests/tmp/``.

    Returns
    -------
    str
        ``value``, or the path it names in ``tmp_root``.
    """
    if not value.startswith(TMP_PREFIX):
        return value
    path = tmp_root / value[len(TMP_PREFIX) :]
    if value.startswith(FIXTURE_PREFIX) and not path.exists():
        name = value[len(FIXTURE_PREFIX) :]
        assert name in FIXTURES, f"no fixture named {name!r}"
        FIXTURES[name](path)
    return str(path)


def placeholders(hparam_file):
    """Lists the top-level keys whose value is ``!PLACEHOLDER``.

    Arguments
    ---------
    hparam_file : pathlib.Path
        The yaml file.

    Returns
    -------
    list of str
        The keys.
    """
    keys = []
    for line in hparam_file.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if line[:1].strip() and value.split("#")[0].strip() == "!PLACEHOLDER":
            keys.append(key)
    return keys


@pytest.mark.parametrize("row", ROWS, ids=[r["Hparam_file"] for r in ROWS])
def test_yaml_loads_with_debug_flags(row, tmp_root, monkeypatch):
    """The yaml of a row loads with the row's debug flags.

    Arguments
    ---------
    row : dict
        The recipe CSV row.
    tmp_root : pathlib.Path
        The folder that stands for ``tests/tmp/``.
    monkeypatch : pytest.MonkeyPatch
        Changes the working directory for the test.
    """
    hparam_file = ROOT / row["Hparam_file"]
    flags = debug_overrides(row["test_debug_flags"])
    missing = [k for k in placeholders(hparam_file) if k not in flags]
    assert not missing, f"test_debug_flags give no value to {missing}"
    assert flags.get("output_folder", "").startswith(TMP_PREFIX), (
        "test_debug_flags must set --output_folder under tests/tmp/"
    )
    overrides = "\n".join(
        f"{key}: {resolve(value, tmp_root)}" for key, value in flags.items()
    )
    monkeypatch.chdir(ROOT / os.path.dirname(row["Script_file"]))
    with open(hparam_file, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    assert pathlib.Path(hparams["output_folder"]).is_relative_to(tmp_root)
