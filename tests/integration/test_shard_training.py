"""Training from shards: DDP ranks x workers split an epoch exactly, a
killed run resumes at the next batch, shards and audio train alike, and
the recipe runs with ``data_format: shards``."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_sense.audio import load_audio
from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.data.sampling import load_language_ratios
from speechbrain_sense.data.streaming import (
    ShardStream,
    StreamLoader,
    stream_batches_seen,
)
from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
from speechbrain_sense.encoders.student import SenseStudent
from speechbrain_sense.encoders.w2v_bert import SenseW2VBert, W2VBertFeatures
from speechbrain_sense.testing import free_port
from speechbrain_sense.training.losses import cosine_alignment_loss

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from shard_stream_rank import STREAM_OPTIONS  # noqa: E402
from test_sense_recipe import run_recipe, tiny_overrides  # noqa: E402

pytestmark = pytest.mark.integration


def ratios_file(corpus):
    return corpus["save_folder"] / "language_ratios.json"


def planned_stream(corpus, num_replicas=1, rank=0):
    return ShardStream(
        corpus["shards"],
        "train",
        language_ratios=load_language_ratios(ratios_file(corpus)),
        num_replicas=num_replicas,
        rank=rank,
        **STREAM_OPTIONS,
    )


def test_two_ranks_two_workers_split_the_epoch_exactly(shard_corpus, tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(HERE / "shard_stream_rank.py"),
        str(shard_corpus["shards"]),
        str(ratios_file(shard_corpus)),
        str(tmp_path),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [
        json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1]) > 0  # DDP never waits
    seen = [{i for batch in batches for i in batch} for batches in ranks]
    assert not seen[0] & seen[1]  # no clip reaches both ranks
    # ... and together they are exactly the epoch's plan, batch by batch.
    plan = stream_batches_seen(planned_stream(shard_corpus, 2), 1)
    for rank, batches in enumerate(ranks):
        slots = plan[2 * rank : 2 * rank + 2]
        assert batches == [b for pair in zip(*slots) for b in pair]
    all_clips = {i for slot in plan for batch in slot for i in batch}
    assert seen[0] | seen[1] == all_clips


def run_probe(corpus, out, kill=(0, 0), random_state=True):
    command = [
        sys.executable,
        str(HERE / "shard_resume_brain.py"),
        str(corpus["shards"]),
        str(ratios_file(corpus)),
        str(out),
        *map(str, kill),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if not random_state:
        env["NO_RANDOM_STATE"] = "1"
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300
    )


def final_weights(out):
    return torch.load(Path(out) / "final.pt", weights_only=True)


def seen_batches(out):
    lines = (Path(out) / "seen.jsonl").read_text().splitlines()
    return [tuple(map(json.dumps, json.loads(line))) for line in lines]


def test_killed_training_resumes_at_the_next_batch(shard_corpus, tmp_path):
    whole = tmp_path / "whole"
    result = run_probe(shard_corpus, whole)
    assert result.returncode == 0, result.stderr[-4000:]
    reference = seen_batches(whole)
    first_epoch = sum(1 for epoch, _ in reference if epoch == "1")
    assert first_epoch >= 4 and len(reference) - first_epoch >= 4

    # Killed after step 3 of epoch 2, then started again as a job would be.
    killed = tmp_path / "killed"
    result = run_probe(shard_corpus, killed, kill=(2, 3))
    assert result.returncode == -9, result.stderr[-4000:]
    assert len(seen_batches(killed)) == first_epoch + 3
    result = run_probe(shard_corpus, killed)
    assert result.returncode == 0, result.stderr[-4000:]
    # Nothing lost, nothing trained twice, in the same order.
    assert seen_batches(killed) == reference
    # Bit-exact: the resumed run continues the same random streams
    # (dropout here), so its final weights equal the uninterrupted run's.
    whole_weights, resumed = final_weights(whole), final_weights(killed)
    assert all(torch.equal(whole_weights[k], resumed[k]) for k in resumed)

    # Without the generator states in the checkpoints, the resumed run
    # reseeds and drifts: what the check above would catch.
    drifted = tmp_path / "drifted"
    for kill in ((2, 3), (0, 0)):
        run_probe(shard_corpus, drifted, kill=kill, random_state=False)
    assert seen_batches(drifted) == reference
    assert not torch.equal(
        final_weights(drifted)["1.weight"], whole_weights["1.weight"]
    )


def test_shards_and_audio_give_the_same_loss_curve(shard_corpus):
    """The same model on the same batches, features from shards or from
    the audio: the losses agree to fp16 input precision."""
    torch.manual_seed(0)
    encoder = SenseW2VBert(shard_corpus["encoder"], shard_corpus["encoder"])
    student = SenseStudent(encoder, SenseEmbeddingHead(32, 16))
    rows = read_manifest(
        shard_corpus["manifests"]["train"],
        {"data_root": str(shard_corpus["data_folder"])},
    )
    features = W2VBertFeatures(shard_corpus["encoder"])
    targets = {
        utt: torch.nn.functional.normalize(torch.randn(16), dim=0)
        for utt in rows
    }

    def train(batches):
        torch.manual_seed(1)  # the same dropout masks in every run
        model = copy.deepcopy(student)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses = []
        for batch in batches:
            feats, _ = batch.features
            target = torch.stack([targets[utt] for utt in batch.id])
            loss = cosine_alignment_loss(model(feats, batch.num_frames), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return torch.tensor(losses)

    def from_audio(batch, ids=None):
        return PaddedBatch(
            [
                {
                    "id": utt,
                    "features": features(load_audio(rows[src]["wav"])),
                    "num_frames": n,
                }
                for utt, src, n in zip(
                    batch.id, ids or batch.id, batch.num_frames.tolist()
                )
            ]
        )

    shard_batches = list(StreamLoader(planned_stream(shard_corpus)))
    assert len(shard_batches) >= 6
    audio_batches = [from_audio(b) for b in shard_batches]
    # Two passes over the same batches: the second is fitted better.
    shards = train(shard_batches * 2)
    audio = train(audio_batches * 2)
    half = len(shard_batches)
    assert float(shards[half:].mean()) < float(shards[:half].mean())
    gap = float((shards - audio).abs().max())
    assert gap < 2e-4, (shards, audio)  # measured: 4.7e-5 over 24 steps
    # The bound is meaningful: other clips of the same lengths (targets
    # kept) move the curve by far more than fp16 does.
    shuffled = []
    for batch in shard_batches:
        others = sorted(
            rows,
            key=lambda utt: abs(rows[utt]["duration"] - batch.duration[0]),
        )
        ids = [o for o in others if o not in batch.id][: len(batch.id)]
        shuffled.append(from_audio(batch, ids))
    control = float((train(shuffled * 2) - audio).abs().max())  # 0.16
    assert control > 10 * max(gap, 2e-5)


def test_recipe_trains_from_shards_and_resumes(shard_corpus, tmp_path):
    out = tmp_path / "exp"
    shards = tmp_path / "recipe_shards"

    def args(epochs):
        base = tiny_overrides(shard_corpus["data_folder"], out, epochs)
        return [a for a in base if not a.startswith("--num_workers")] + [
            "--data_format=shards",
            f"--shards_folder={shards}",
            "--samples_per_shard=5",
            "--epoch_audio_hours=0.02",
            "--num_workers=2",
        ]

    log = run_recipe(args(2))
    assert "Going into epoch 2" in log
    index = json.loads((shards / "index.json").read_text())
    assert {s["split"] for s in index["shards"]} == {"train", "dev", "test"}
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["all"]["count"] == sum(
        s["samples"] for s in index["shards"] if s["split"] == "test"
    )
    built = (shards / "index.json").stat().st_mtime_ns
    log = run_recipe(args(3))
    assert "Going into epoch 3" in log and "Going into epoch 1" not in log
    assert (shards / "index.json").stat().st_mtime_ns == built  # reused
