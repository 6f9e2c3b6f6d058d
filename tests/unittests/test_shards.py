"""WebDataset shards: exact features, deterministic resumable builds,
multi-job partitions, bad clips counted, corrupt shards named."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from speechbrain_sense.audio import load_audio
from speechbrain_sense.data import shards as shards_module
from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.data.shards import (
    ShardError,
    ShardReader,
    build_shards,
    check_fingerprint,
    job_shards,
    load_index,
    load_rows,
    main,
    plan_shards,
    scan_manifests,
    verify_shards,
)
from speechbrain_sense.encoders.w2v_bert import W2VBertFeatures

# fp16 keeps 11 significant bits: |x - fp16(x)| <= 2**-11 |x| (normal
# range), plus the subnormal spacing 2**-24 near zero.
FP16_RTOL, FP16_ATOL = 2.0**-11, 2.0**-24


def manifest_rows(corpus):
    """{id: row} over all splits, wav paths resolved."""
    rows = {}
    for path in corpus["manifests"].values():
        rows.update(
            read_manifest(path, {"data_root": str(corpus["data_folder"])})
        )
    return rows


def all_samples(folder):
    out = {}
    for shard in load_index(folder)["shards"]:
        for sample in ShardReader(Path(folder) / f"{shard['name']}.tar"):
            out[sample["id"]] = sample
    return out


def tar_bytes(folder):
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(Path(folder).rglob("*.tar"))
    }


def build(corpus, out, **kwargs):
    kwargs.setdefault("samples_per_shard", 4)
    return build_shards(
        corpus["manifests"],
        out,
        corpus["encoder"],
        data_root=corpus["data_folder"],
        progress=False,
        **kwargs,
    )


def test_features_equal_w2v_bert_fbank_to_fp16_precision(shard_corpus):
    rows = manifest_rows(shard_corpus)
    samples = all_samples(shard_corpus["shards"])
    assert set(samples) == set(rows)  # every clip, once
    features = W2VBertFeatures(shard_corpus["encoder"])
    for utt_id, sample in samples.items():
        expected = features(load_audio(rows[utt_id]["wav"]))
        got = sample["features"]
        assert got.shape == expected.shape
        assert got.shape[0] == sample["num_frames"]
        bound = FP16_RTOL * expected.abs() + FP16_ATOL
        assert bool(((got - expected).abs() <= bound).all()), utt_id
        assert sample["sentence"] == rows[utt_id]["sentence"]
        assert sample["lang"] == rows[utt_id]["lang"]
        assert sample["client_id"] == rows[utt_id]["client_id"]


def test_shards_read_with_webdataset_itself(shard_corpus):
    import webdataset

    shard = load_index(shard_corpus["shards"])["shards"][0]
    path = str(shard_corpus["shards"] / f"{shard['name']}.tar")
    ours = list(ShardReader(path))
    theirs = list(webdataset.WebDataset(path, shardshuffle=False).decode())
    assert len(theirs) == len(ours) == shard["samples"]
    for a, b in zip(ours, theirs):
        assert b["json"]["id"] == a["id"]
        np.testing.assert_array_equal(
            b["features.npy"].astype(np.float32), a["features"].numpy()
        )


def test_index_records_counts_durations_and_checksums(shard_corpus):
    index = load_index(shard_corpus["shards"])
    rows = manifest_rows(shard_corpus)
    assert sum(s["samples"] for s in index["shards"]) == len(rows)
    for split, langs in index["totals"].items():
        for lang, total in langs.items():
            manifest = read_manifest(
                shard_corpus["manifests"][split], path_columns=()
            )
            expected = [r for r in manifest.values() if r["lang"] == lang]
            assert total["samples"] == len(expected)
    samples = all_samples(shard_corpus["shards"])
    for shard in index["shards"]:
        sidecar = json.loads(
            (shard_corpus["shards"] / f"{shard['name']}.json").read_text()
        )
        assert len(shard["durations"]) == shard["samples"]
        for utt_id, duration in zip(sidecar["ids"], shard["durations"]):
            assert duration == pytest.approx(samples[utt_id]["duration"], 1e-3)
        assert {s["lang"] for s in map(samples.get, sidecar["ids"])} == {
            shard["language"]
        }


def test_plan_is_deterministic_and_jobs_partition_it():
    codes = np.array([0] * 50 + [1] * 7, dtype=np.int32)
    scan = {
        "train": (["xx", "yy"], np.random.default_rng(0).permutation(codes))
    }
    plan = plan_shards(scan, samples_per_shard=8, seed=1)
    again = plan_shards(scan, samples_per_shard=8, seed=1)
    assert [s.indices.tolist() for s in plan] == [
        s.indices.tolist() for s in again
    ]
    other = plan_shards(scan, samples_per_shard=8, seed=2)
    assert [s.indices.tolist() for s in plan] != [
        s.indices.tolist() for s in other
    ]
    # Each shard holds one language; together every row exactly once.
    for spec in plan:
        language = scan["train"][0].index(spec.language)
        assert (scan["train"][1][spec.indices] == language).all()
    rows = sorted(i for s in plan for i in s.indices.tolist())
    assert rows == list(range(57))
    jobs = [job_shards(plan, 3, i) for i in range(3)]
    names = [s.name for job in jobs for s in job]
    assert sorted(names) == sorted(s.name for s in plan)
    assert len(set(names)) == len(names)
    with pytest.raises(ValueError, match="job-id"):
        job_shards(plan, 2, 2)


def test_two_jobs_build_the_same_shards_as_one(shard_corpus, tmp_path):
    out = tmp_path / "two"
    build(shard_corpus, out, num_jobs=2, job_id=1)
    with pytest.raises(ShardError, match=r"missing shard .*\(#0\)"):
        verify_shards(out)
    build(shard_corpus, out, num_jobs=2, job_id=0)
    index = verify_shards(out)
    assert index["totals"] == load_index(shard_corpus["shards"])["totals"]
    # Deterministic bytes: the same tars as the single-job fixture build.
    assert tar_bytes(out) == tar_bytes(shard_corpus["shards"])
    reports = sorted((out / "reports").glob("*.json"))
    assert [p.name for p in reports] == [
        "job-00000-of-00002.json",
        "job-00001-of-00002.json",
    ]


def test_killed_build_resumes_without_rewriting(shard_corpus, tmp_path):
    """A build killed mid-shard restarts at the first unfinished shard."""
    out = tmp_path / "killed"
    calls = []
    real_build = shards_module._ShardBuilder.build

    def dying_build(self, spec):
        if len(calls) == 3:
            # Die inside a shard: a partial tar is left behind.
            partial = out / f"{spec.name}.tar.partial"
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(b"half a shard")
            raise KeyboardInterrupt
        calls.append(spec.name)
        return real_build(self, spec)

    shards_module._ShardBuilder.build = dying_build
    try:
        with pytest.raises(KeyboardInterrupt):
            build(shard_corpus, out)
    finally:
        shards_module._ShardBuilder.build = real_build
    finished = {
        name: (out / f"{name}.tar").stat().st_mtime_ns for name in calls
    }
    with pytest.raises(ShardError, match="missing shard"):
        verify_shards(out)
    report = build(shard_corpus, out)
    assert report["shards_resumed"] == 3
    for name, mtime in finished.items():  # never rewritten
        assert (out / f"{name}.tar").stat().st_mtime_ns == mtime
    assert not list(out.rglob("*.partial"))
    assert tar_bytes(out) == tar_bytes(shard_corpus["shards"])
    assert set(all_samples(out)) == set(manifest_rows(shard_corpus))


def test_sigkilled_cli_build_resumes(shard_corpus, tmp_path):
    """The CLI killed with SIGKILL, rerun: nothing lost, nothing twice."""
    out = tmp_path / "cli"
    command = [
        sys.executable,
        "-m",
        "speechbrain_sense.data.shards",
        "build",
        *(f"{s}={p}" for s, p in shard_corpus["manifests"].items()),
        f"--out={out}",
        f"--encoder-source={shard_corpus['encoder']}",
        f"--data-root={shard_corpus['data_folder']}",
        "--samples-per-shard=1",
        "--no-progress",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if len(list(out.rglob("*.json"))) >= 4:  # plan + 3 sidecars
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "finished before the kill"
    before = {p.name for p in out.glob("*/*/*.json")}
    assert 0 < len(before) < len(manifest_rows(shard_corpus))
    result = subprocess.run(
        [*command, "--json"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["shards_resumed"] >= len(before)
    samples = all_samples(out)
    assert sorted(samples) == sorted(manifest_rows(shard_corpus))
    assert report["kept"] == len(samples)


def break_clips(corpus, tmp_path):
    """A copy of the corpus with an undecodable, an empty and a missing
    clip; returns the new corpus dict and {reason: id}."""
    data = tmp_path / "cv"
    shutil.copytree(corpus["data_folder"], data)
    rows = read_manifest(corpus["manifests"]["train"], {"data_root": str(data)})
    ids = sorted(rows)
    Path(rows[ids[0]]["wav"]).write_bytes(b"\x00not an mp3" * 50)
    Path(rows[ids[1]]["wav"]).write_bytes(b"")
    Path(rows[ids[2]]["wav"]).unlink()
    broken = dict(corpus, data_folder=data)
    return broken, {"undecodable": ids[0], "empty": ids[1], "missing": ids[2]}


def test_bad_clips_are_counted_by_reason_and_listed(shard_corpus, tmp_path):
    broken, bad = break_clips(shard_corpus, tmp_path)
    rows = manifest_rows(shard_corpus)
    longest = max(rows, key=lambda i: rows[i]["duration"])
    shortest = min(rows, key=lambda i: rows[i]["duration"])
    low = rows[shortest]["duration"] + 0.01
    high = rows[longest]["duration"] - 0.01
    out = tmp_path / "shards"
    report = build(
        broken,
        out,
        min_duration=low,
        max_duration=high,
        max_bad_fraction=0.5,
    )
    by_reason = report["skipped_by_reason"]
    for reason in ("undecodable", "empty", "missing"):
        assert by_reason[reason] == 1
    assert by_reason["too_short"] >= 1 and by_reason["too_long"] >= 1
    assert report["kept"] + report["skipped"] == len(rows)
    listed = {}
    for sidecar in out.glob("*/*/*.json"):
        for reason, ids in json.loads(sidecar.read_text())["skipped"].items():
            listed.update(dict.fromkeys(ids, reason))
    for reason, utt_id in bad.items():
        assert listed[utt_id] == reason
    assert listed[longest] == "too_long" and listed[shortest] == "too_short"
    kept = all_samples(out)
    assert not set(kept) & set(listed)
    assert len(kept) + len(listed) == len(rows)


def test_too_many_bad_clips_fail_with_the_report(shard_corpus, tmp_path):
    broken, _ = break_clips(shard_corpus, tmp_path)
    with pytest.raises(ShardError, match=r"3 of \d+ clips .*'empty': 1"):
        build(broken, tmp_path / "shards", max_bad_fraction=0.0)
    # The CLI: exit 1 and one line, no traceback.
    code = main(
        [
            "build",
            *(f"{s}={p}" for s, p in broken["manifests"].items()),
            f"--out={tmp_path / 'cli'}",
            f"--encoder-source={broken['encoder']}",
            f"--data-root={broken['data_folder']}",
            "--max-bad-fraction=0",
            "--no-progress",
        ]
    )
    assert code == 1


def test_rebuild_with_other_options_is_refused(shard_corpus, tmp_path):
    out = tmp_path / "shards"
    shutil.copytree(shard_corpus["shards"], out)
    with pytest.raises(ShardError, match="samples_per_shard"):
        build(shard_corpus, out, samples_per_shard=5)
    assert build(shard_corpus, out)["shards_resumed"] > 0


def test_truncated_and_corrupt_shards_name_shard_and_sample(
    shard_corpus, tmp_path
):
    out = tmp_path / "shards"
    shutil.copytree(shard_corpus["shards"], out)
    shard = load_index(out)["shards"][0]
    path = out / f"{shard['name']}.tar"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ShardError, match=rf"{path.name}: sample 0000\d\d"):
        list(ShardReader(path))
    with pytest.raises(ShardError, match="truncated or replaced shard"):
        ShardReader(path).read(0)
    with pytest.raises(ShardError, match="checksum or size differs"):
        verify_shards(out)
    # Same size, one flipped byte inside the first sample's features.
    start = data.index(b"\x93NUMPY")
    corrupt = bytearray(data)
    corrupt[start + 1] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    with pytest.raises(ShardError, match="sample 000000: corrupt sample"):
        ShardReader(path).read(0)
    with pytest.raises(ShardError, match="checksum"):
        verify_shards(out)
    assert ShardReader(path).read(1)["id"]  # the next sample is intact


def test_manifest_errors_name_the_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("ID,duration,wav\na,1.0,/a.wav\n")
    with pytest.raises(ShardError, match=r"train.csv:1: no 'sentence' column"):
        scan_manifests({"train": path})
    path.write_text("ID,duration,wav,sentence\na,1.0,/a.wav,hi\n")
    with pytest.raises(ShardError, match=r"train.csv:2: no language"):
        scan_manifests({"train": path})
    path.write_text("ID,duration,wav,sentence,lang\na,1.0,/a.wav,hi\n")
    with pytest.raises(ShardError, match=r"train.csv:2: 4 fields"):
        scan_manifests({"train": path})
    path.write_text(
        "ID,duration,wav,sentence\n"
        "a,1.0,$data_root/a.wav,hi\nb,1.0,$other/b.wav,yo\n"
    )
    scan = scan_manifests({"train": path}, language="en")
    [spec] = plan_shards(scan)
    with pytest.raises(ShardError, match=r"train.csv:3: wav .* needs \$other"):
        load_rows([spec], {"train": path}, "/cv", language="en")


def test_second_pass_reads_only_the_rows_of_a_job(tmp_path):
    path = tmp_path / "dev.csv"
    lines = ["ID,duration,wav,text,lang"]
    lines += [f"u{i},1.5,$data_root/u{i}.mp3,words {i},fr" for i in range(9)]
    path.write_text("\n".join(lines) + "\n")
    plan = plan_shards(scan_manifests({"dev": path}, "text"), 4)
    load_rows(plan[1:2], {"dev": path}, "/cv", "text")
    assert plan[0].rows is None and plan[2].rows is None
    for index, row in zip(plan[1].indices.tolist(), plan[1].rows):
        assert row["ID"] == f"u{index}" and row["wav"] == f"/cv/u{index}.mp3"
        assert row["sentence"] == f"words {index}" and row["lang"] == "fr"


def test_verify_names_a_clip_listed_twice(shard_corpus, tmp_path):
    out = tmp_path / "shards"
    shutil.copytree(shard_corpus["shards"], out)
    index = load_index(out)
    first, second = (out / f"{s['name']}.json" for s in index["shards"][:2])
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    b["skipped"] = {"missing": [a["ids"][0]]}
    b["ids"] = b["ids"][1:]
    second.write_text(json.dumps(b))
    with pytest.raises(ShardError, match=rf"clip {a['ids'][0]} in .* and "):
        verify_shards(out, checksums=False)


def test_fingerprint_binds_shards_to_the_extractor(shard_corpus, tmp_path):
    from transformers import AutoFeatureExtractor

    index = load_index(shard_corpus["shards"])
    extractor = AutoFeatureExtractor.from_pretrained(shard_corpus["encoder"])
    check_fingerprint(index, extractor)  # the same extractor: accepted
    extractor.num_mel_bins = 40
    with pytest.raises(ShardError, match="another feature extractor"):
        check_fingerprint(index, extractor)


def test_audio_store_round_trips_16_bit_audio(shard_corpus, tmp_path):
    out = tmp_path / "audio"
    rows = manifest_rows(shard_corpus)
    report = build(shard_corpus, out, store="both")
    assert report["kept"] == len(rows)
    for utt_id, sample in all_samples(out).items():
        waveform = load_audio(rows[utt_id]["wav"])
        assert sample["waveform"].shape == waveform.shape
        # FLAC is lossless at 16 bits: within half a quantisation step.
        err = (sample["waveform"] - waveform.clamp(-1, 1 - 2**-15)).abs()
        assert float(err.max()) <= 2**-16 + 1e-7
        assert sample["features"].shape[0] == sample["num_frames"]
    with pytest.raises(ValueError, match="store must be"):
        build(shard_corpus, tmp_path / "x", store="mp3")
    assert torch.is_tensor(sample["features"])


def test_cli_help_names_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--num-jobs", "--job-id", "--store", "--max-bad-fraction"):
        assert flag in text
    assert "(default: features)" in text
    assert main(["verify", "/no/such/folder"]) == 1
    assert "plan.json not found" in capsys.readouterr().err


def test_shards_are_bound_to_their_manifests(shard_corpus, tmp_path):
    from speechbrain_sense.data.shards import check_manifests

    check_manifests(shard_corpus["shards"], shard_corpus["manifests"])
    changed = tmp_path / "train.csv"
    changed.write_text(
        shard_corpus["manifests"]["train"].read_text().rstrip("\n") + "x\n"
    )
    other = dict(shard_corpus["manifests"], train=changed)
    with pytest.raises(ShardError, match="another train manifest"):
        check_manifests(shard_corpus["shards"], other)


def test_reading_by_position_without_a_sidecar_scans_the_headers(
    shard_corpus, tmp_path
):
    shard = load_index(shard_corpus["shards"])["shards"][1]
    path = tmp_path / "lone.tar"
    shutil.copy(shard_corpus["shards"] / f"{shard['name']}.tar", path)
    with_table = ShardReader(shard_corpus["shards"] / f"{shard['name']}.tar")
    alone = ShardReader(path)
    for position in reversed(range(shard["samples"])):  # backwards is fine
        a, b = with_table.read(position), alone.read(position)
        assert a["id"] == b["id"]
        assert torch.equal(a["features"], b["features"])
    with pytest.raises(ShardError, match="past the end"):
        alone.read(shard["samples"])
