"""Smoke tests of ``bench/``: the benchmarks import and run one tiny step.

Nothing here checks a speed; the benchmarks' figures are in
``docs/benchmarks.md``.
"""

import doctest
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    """The benchmark modules (``bench/`` is not a package)."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield {
            name: importlib.import_module(name)
            for name in (
                "measurement",
                "train_throughput",
                "teacher_cache",
                "embed_throughput",
                "shard_data_path",
                "onnx_rtf",
                "clip_check",
                "memory_fit",
                "attention_bias",
                "search_bench",
                "search_indexing",
                "search_queries",
                "search_storage",
                "throughput_run",
                "throughput_report",
                "recipe_pipeline",
                "upstream_baseline",
                "training_setup",
            )
        }
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_train_throughput_one_step_each(bench, tmp_path):
    module = bench["train_throughput"]
    args = module.parse_arguments(
        [
            "--config=tiny",
            "--device=cpu",
            "--steps=4",
            "--warmup-steps=1",
            "--per-language=5",
            "--num-workers=0",
            "--max-batch-seconds=8",
            "--max-batch-size=1",
            f"--work-dir={tmp_path}",
        ]
    )
    options = {
        key: value
        for key, value in vars(args).items()
        if key not in ("child", "child_options")
    }
    module.prepare(options)
    for pipeline in module.PIPELINES:
        result = module.measure_pipeline(options, pipeline)
        # Upstream's epoch (8 clips in pairs) is shorter than warm-up +
        # timed steps: its timed steps run on into the next epoch.
        assert result["warmup_steps"] == 1
        assert result["steps"] == 4
        assert result["audio_seconds"] > 0
        assert result["flops"] > 0
        assert "encoder+pooling forward" in result["breakdown"]


def test_teacher_cache_runs(bench, tmp_path, capsys):
    speedup = bench["teacher_cache"].main(
        [
            "--teachers=xlmr",
            "--texts=16",
            "--epochs=2",
            "--measured-epochs=1",
            "--device=cpu",
            f"--work-dir={tmp_path}",
        ]
    )
    assert speedup > 0
    assert (
        capsys.readouterr()
        .out.strip()
        .splitlines()[-1]
        .startswith("cache_speedup: ")
    )


def test_embed_throughput_runs(bench, tmp_path, capsys):
    fraction = bench["embed_throughput"].main(
        [
            "--device=cpu",
            "--seconds=1",
            "--batch-sizes=2",
            "--repeat=1",
            "--sizes=256,512",
            "--dim=32",
            "--block-size=128",
            "--topk-max-size=512",
            "--precisions=fp32,fp16",
            f"--work-dir={tmp_path}",
        ]
    )
    assert fraction > 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("retrieval_fraction_of_matmul_peak: ")
    rows = [line for line in out if line.startswith("| topk_search | fp16 |")]
    assert len(rows) == 2


def test_shard_data_path_runs(bench, tmp_path, capsys):
    results_file = tmp_path / "results.json"
    stream_ms = bench["shard_data_path"].main(
        [
            "--languages=en",
            "--per-language=6",
            "--repeat=1",
            "--samples-per-shard=2",
            "--prepare-rows=300",
            "--prepare-languages=3",
            "--trace-prepare=always",
            "--trace-rows=100",
            f"--work-dir={tmp_path}",
            f"--json={results_file}",
        ]
    )
    assert stream_ms > 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("stream_ms_per_audio_second: ")
    figures = dict(line.split(": ", 1) for line in lines[-20:] if ": " in line)
    for name in (
        "mp3_path_ms_per_audio_second",
        "features_shards_ms_per_audio_second",
        "audio_shards_ms_per_audio_second",
        "build_features_audio_h_per_core_h",
        "disk_audio_mb_per_audio_h",
        "full_cv_both_tb",
        "prepare_peak_mb_above_import",
    ):
        assert float(figures[name]) >= 0, name
    results = json.loads(results_file.read_text())
    assert results["stream_breakdown"]["samples_read"] > 0
    assert results["prepare"]["rows"] == 300
    assert results["prepare_trace"]["top"]
    assert set(results["full_cv_estimate"]) == {"features", "audio", "both"}


def test_onnx_rtf_runs(bench, tmp_path, capsys):
    speedup = bench["onnx_rtf"].main(
        [
            "--seconds=1",
            "--batch-sizes=2",
            "--repeat=1",
            "--threads=1",
            f"--work-dir={tmp_path}",
        ]
    )
    assert speedup > 0
    out = capsys.readouterr().out
    for backend in ("torch eager", "onnxruntime fp32", "onnxruntime int8"):
        assert f"| 2 | {backend} |" in out
    assert out.strip().splitlines()[-1].startswith("onnx_int8_speedup: ")


def test_bench_doctests(bench):
    names = (
        "measurement",
        "embed_throughput",
        "shard_data_path",
        "onnx_rtf",
        "search_bench",
        "search_indexing",
        "search_queries",
    )
    for name in names:
        results = doctest.testmod(bench[name])
        assert results.attempted > 0 and results.failed == 0, name


def test_clip_check_runs(bench, tmp_path, capsys):
    cost = bench["clip_check"].main(
        ["--clips=8", "--workers=1", f"--work-dir={tmp_path}"]
    )
    assert cost > 0
    out = capsys.readouterr().out
    # The rerun is answered by the cache: nothing opened again.
    assert out.count("(0 opened)") == 2
    assert out.strip().endswith(f"decode_ms_per_audio_second: {cost:.3f}")


def test_search_bench_runs(bench, tmp_path, capsys):
    threshold = bench["search_bench"].main(
        ["--quick", f"--work-dir={tmp_path}", f"--tmp-dir={tmp_path}"]
    )
    # At the quick sizes exact search may stay under the latency bound
    # (then no threshold: keep exact), but the verdict is always printed.
    assert threshold is None or threshold > 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"faiss_min_passages: {threshold}")
    assert "recall@10" in out and "recommendation: " in out


def test_memory_fit_runs(tmp_path):
    # Its own process: on the CPU it reads the resident-memory high-water
    # mark, which the tests run before would already have raised.
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "memory_fit.py"),
            "--device=cpu",
            "--budget-gib=4",
            "--utterance-seconds=1",
            "--start-seconds=4",
            "--cpu-points=2",
            f"--work-dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.count("| 4 | 4 |") == 2  # a 4 s batch of 1 s utterances
    last = out.strip().splitlines()[-1]
    assert last.startswith("max_batch_seconds: ")
    # Extrapolated past the measured sizes.
    found = [int(part.split()[0]) for part in last.split(": ")[1].split(", ")]
    assert len(found) == 2 and all(seconds > 8 for seconds in found)


def test_attention_bias_runs(bench, capsys):
    share = bench["attention_bias"].main(
        ["--frames=30", "--batch=1", "--repeat=1", "--device=cpu"]
    )
    assert 0 < share < 1
    out = capsys.readouterr().out
    # The table formulation gives the same bias.
    error = float(out.split("max |difference| ")[1].split()[0])
    assert error < 1e-5
    assert out.strip().splitlines()[-1].startswith("bias_share_of_layer: ")
