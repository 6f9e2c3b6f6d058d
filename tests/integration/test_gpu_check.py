"""``bench/gpu_check.sh``: the prepared GPU check runs, reports, fails loudly.

On this CPU-only machine the script runs in ``--smoke`` mode (tiny models,
a few steps each): the same steps, benchmarks and report as on a GPU.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.sh"

pytestmark = pytest.mark.integration


def run_check(out, *args, python=sys.executable):
    env = {**os.environ, "PYTHON": str(python)}
    return subprocess.run(
        ["bash", str(SCRIPT), *args, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def fake_python(tmp_path, body):
    """An interpreter wrapper: ``body`` runs first, then the real one."""
    path = tmp_path / "python"
    path.write_text(f'#!/bin/bash\n{body}\nexec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return path


def test_smoke_run_writes_every_section_of_the_report(tmp_path):
    result = run_check(tmp_path / "out", "--smoke")
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "out" / "report.md").read_text()
    for title, last_line in [
        ("## Training: ours and upstream-style", "speedup_vs_upstream: "),
        ("## Training: ours, reading feature shards", "ours_audio_per_second"),
        ("## Encoder real-time factor and exact search", "retrieval_fraction"),
        ("## Teacher cache build", "cache_speedup: "),
    ]:
        section = report.split(title)[1].split("\n## ")[0]
        assert last_line in section, title
        assert "| --- |" not in section and "|---|" in section  # tables
        assert "Loading weights" not in section
    assert "| topk_search | fp16 |" in report
    for log in ("train_audio", "train_shards", "embed", "teacher"):
        assert (tmp_path / "out" / "logs" / f"{log}.log").stat().st_size > 0


def test_a_failing_step_stops_the_check_with_its_name(tmp_path):
    python = fake_python(
        tmp_path,
        'if [[ "$1" == train_throughput.py ]]; then\n'
        "    echo 'simulated CUDA error' >&2; exit 3\nfi",
    )
    result = run_check(tmp_path / "out", "--smoke", python=python)
    assert result.returncode == 1
    assert "step train_audio failed with exit status 3" in result.stderr
    assert "simulated CUDA error" in result.stderr  # the log's end
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**FAILED** with exit status 3" in report
    assert "## Encoder" not in report  # nothing ran after it


def test_missing_packages_are_named_and_wheels_are_offered(tmp_path):
    # -S: no site-packages, so none of the required packages is found.
    python = tmp_path / "python"
    python.write_text(f'#!/bin/bash\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    result = run_check(tmp_path / "out", "--smoke", python=python)
    assert result.returncode == 1
    assert "missing Python packages: torch" in result.stderr
    assert "speechbrain" in result.stderr and "--wheels DIR" in result.stderr
    result = run_check(
        tmp_path / "out", "--smoke", "--wheels", "/no/such/dir", python=python
    )
    assert result.returncode == 1
    assert "--wheels /no/such/dir is not a folder" in result.stderr


def test_unknown_option_and_missing_folder_are_refused(tmp_path):
    result = subprocess.run(
        ["bash", str(SCRIPT), "--smoke"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "OUT_DIR" in result.stdout
    result = run_check(tmp_path / "out", "--fast")
    assert result.returncode == 2
    assert "unknown option --fast" in result.stderr
