"""Models and configurations written before the package layout changed."""

import json
import tarfile
from pathlib import Path

import pytest
import torch

from speechbrain_sense.inference import SenseEncoder

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
