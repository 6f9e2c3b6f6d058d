"""The built wheel works on its own: export and load from an install.

The wheel is built from a copy of the sources (no build files land in the
checkout), installed into a fresh virtual environment whose only other
packages are the test environment's, reached through a ``.pth`` file (which
does not run the editable install's finder), and used from a folder
outside the repository.
"""

import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import torch

from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.w2v_bert import SenseW2VBert

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("setup.py", "pyproject.toml", "README.md", "LICENSE")


def run(args, cwd, timeout=600):
    """Runs a command; fails the test with its output on an error.

    Arguments
    ---------
    args : list of str
        The command.
    cwd : Path
        Its working folder.
    timeout : float
        Seconds.

    Returns
    -------
    str
        Its stdout and stderr.
    """
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory):
    """The Python of a fresh venv with the built wheel installed.

    Arguments
    ---------
    tmp_path_factory : pytest.TempPathFactory
        Temporary folders.

    Returns
    -------
    Path
        Its interpreter.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "speechbrain_sense",
        src / "speechbrain_sense",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    dist = tmp / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(src),
        ],
        cwd=tmp,
    )
    (wheel,) = dist.glob("speechbrain_sense-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    site = Path(
        run(
            [
                str(python),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            cwd=tmp,
        ).strip()
    )
    # The dependencies, without the editable speechbrain_sense: a path in
    # a .pth joins sys.path, but the .pth files inside it are not run.
    (site / "test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        cwd=tmp,
    )
    return python


def test_wheel_ships_the_inference_template(wheel_python, tmp_path):
    out = run(
        [
            str(wheel_python),
            "-c",
            "import speechbrain_sense.encoders.export as e; print(e.__file__); "
            "print(len(e.template_text()))",
        ],
        cwd=tmp_path,
    )
    location, size = out.strip().splitlines()[-2:]
    assert "site-packages" in location and str(ROOT) not in location
    assert int(size) > 1000


def test_export_and_load_from_the_installed_wheel(
    wheel_python, tiny_w2v_bert_dir, tmp_path
):
    source = str(tiny_w2v_bert_dir)
    torch.manual_seed(4)
    student = SenseStudent(
        SenseW2VBert(source, source), SenseEmbeddingHead(32, 16)
    ).eval()
    ckpt = tmp_path / "save" / "CKPT+2026-01-01"
    ckpt.mkdir(parents=True)
    torch.save(student.state_dict(), ckpt / "student.ckpt")
    wav = 0.1 * torch.randn(1, 16000, generator=torch.Generator())
    torch.save(wav, tmp_path / "wav.pt")
    run(
        [
            str(wheel_python),
            "-m",
            "speechbrain_sense.encoders.export",
            "--checkpoint",
            str(tmp_path / "save"),
            "--out",
            str(tmp_path / "model"),
            "--encoder-source",
            source,
        ],
        cwd=tmp_path,
    )
    script = textwrap.dedent(
        f"""
        import torch
        import speechbrain_sense
        from speechbrain_sense.encoders.inference import SenseEncoder

        assert {str(ROOT)!r} not in speechbrain_sense.__file__
        wav = torch.load("wav.pt")
        exported = SenseEncoder.from_hparams("model", savedir="fetched")
        direct = SenseEncoder.from_checkpoint(
            {str(ckpt)!r}, savedir="direct", encoder_source={source!r}
        )
        torch.save(
            [exported.encode_batch(wav), direct.encode_batch(wav)], "emb.pt"
        )
        """
    )
    run([str(wheel_python), "-c", script], cwd=tmp_path)
    exported, direct = torch.load(tmp_path / "emb.pt")
    features = student.encoder(wav, torch.ones(1))
    with torch.no_grad():
        counts = torch.tensor([features.shape[1]])
        expected = student.head(features, counts)
    assert torch.allclose(exported[:, 0], expected, atol=1e-5)
    assert torch.equal(exported, direct)
