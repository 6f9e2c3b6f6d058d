"""Every name a module uses is defined, and every import is used.

Ruff's pyflakes rules, as upstream SpeechBrain's linters run them: F821
(undefined name), F822 (undefined name in ``__all__``), F401 (unused
import).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ["speechbrain_sense", "recipes", "bench", "tests"]


def ruff():
    """Finds the ruff executable.

    Returns
    -------
    str or None
        The ruff beside the running Python, else the one on ``PATH``.
    """
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.is_file() else shutil.which("ruff")


@pytest.mark.skipif(ruff() is None, reason="ruff is not installed")
def test_no_undefined_names_or_unused_imports():
    """``ruff check --select F821,F822,F401`` finds nothing."""
    result = subprocess.run(
        [ruff(), "check", "--select", "F821,F822,F401", "--no-fix", *FOLDERS],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
