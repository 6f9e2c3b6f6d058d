"""Models and configurations written before the package layout changed."""

import importlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from speechbrain_sense._moved import MOVED
from speechbrain_sense.encoders.inference import SenseEncoder

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pre_layout_export.tar.gz"


@pytest.fixture(scope="module")
def pre_layout_model(tmp_path_factory):
    """The tiny model folder ``export_student`` wrote at commit 237b664."""
    folder = tmp_path_factory.mktemp("pre_layout")
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(folder, filter="data")
    return folder / "model"


def fixture_waveform():
    """The waveform of ``expected_embedding.json``.

    Returns
    -------
    torch.Tensor
        ``[1, 16000]``.
    """
    n = torch.arange(16000)
    noise = torch.randn(1, 16000, generator=torch.Generator().manual_seed(1))
    return 0.1 * torch.sin(n * 0.05).unsqueeze(0) + 0.01 * noise


def test_an_export_from_before_the_move_embeds_as_it_did(
    pre_layout_model, tmp_path
):
    expected = json.loads(
        (pre_layout_model / "expected_embedding.json").read_text()
    )
    model = SenseEncoder.from_hparams(
        str(pre_layout_model), savedir=tmp_path / "s"
    )
    with torch.no_grad():
        embedding = model.encode_batch(fixture_waveform(), torch.ones(1))
    torch.testing.assert_close(
        embedding.squeeze(),
        torch.tensor(expected["embedding"]),
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_is_the_new_module_with_a_warning(old):
    sys.modules.pop(old, None)
    with pytest.deprecated_call(match=MOVED[old].replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])


def test_old_names_of_packages_that_took_over_a_path_are_forwarded():
    import speechbrain_sense.data as data
    from speechbrain_sense.synthetic import synthesize_if_empty

    with pytest.deprecated_call(match="speechbrain_sense.synthetic"):
        assert data.synthesize_if_empty is synthesize_if_empty
    assert not hasattr(data, "no_such_name")

    import speechbrain_sense.teachers as teachers
    from speechbrain_sense.teachers import cache, sentence_encoders

    with pytest.deprecated_call(match="teachers.sentence_encoders"):
        assert teachers.teacher_from_spec is sentence_encoders.teacher_from_spec
    # A submodule of the new package is not taken for an old name.
    assert cache.__name__ == "speechbrain_sense.teachers.cache"


def test_yaml_tags_with_old_paths_build_the_new_classes():
    from speechbrain_sense.synthetic.common_voice import make_synthetic_cv

    old = "speechbrain_sense.data.synthetic_cv"
    sys.modules.pop(old, None)
    with pytest.deprecated_call():
        loaded = load_hyperpyyaml(f"make: !name:{old}.make_synthetic_cv\n")
    assert loaded["make"] is make_synthetic_cv
    from speechbrain_sense.teachers.sentence_encoders import teacher_from_spec

    # The old module is a package now: its names resolve through it.
    with pytest.deprecated_call():
        loaded = load_hyperpyyaml(
            "build: !name:speechbrain_sense.teachers.teacher_from_spec\n"
        )
    assert loaded["build"] is teacher_from_spec


def test_python_m_on_an_old_path_runs_the_new_module():
    run = subprocess.run(
        [sys.executable, "-m", "speechbrain_sense.data.synthetic_cv", "-h"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "python -m speechbrain_sense.synthetic.common_voice" in run.stdout
    assert "DeprecationWarning" in run.stderr
