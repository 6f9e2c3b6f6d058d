"""End-to-end runs of the SENSE recipe on a synthetic Common Voice corpus.

The recipe runs as a user runs it (``python train.py hparams/...yaml`` in a
subprocess), with the tiny configuration shrunk further by command-line
overrides so that each run takes seconds.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from speechbrain.core import Stage

from speechbrain_sense.synthetic.common_voice import make_synthetic_cv
from speechbrain_sense.testing import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sense_ddp_step import build_brain, random_batch  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "recipes/CommonVoice/SENSE"
HPARAMS = RECIPE / "hparams" / "sense_tiny.yaml"
LANGUAGES = ["en", "fr"]

pytestmark = pytest.mark.integration


def tiny_overrides(data_folder, output_folder, epochs=2):
    return [
        f"--data_folder={data_folder}",
        f"--output_folder={output_folder}",
        f"--number_of_epochs={epochs}",
        f"--languages=[{', '.join(LANGUAGES)}]",
        "--encoder_dim=32",
        "--max_batch_seconds=20",
        "--num_workers=0",
        "--min_duration=0",
    ]


def run_recipe(args, launcher=(sys.executable,), timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [*launcher, "train.py", str(HPARAMS), *args],
        cwd=RECIPE,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    make_synthetic_cv(root, LANGUAGES, per_language=12, seed=5)
    return root


def test_two_epochs_then_resume(corpus, tmp_path):
    out = tmp_path / "exp"
    log = run_recipe(tiny_overrides(corpus, out, epochs=2))
    assert "Going into epoch 1" in log and "Going into epoch 2" in log

    checkpoints = list((out / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1  # best R@1 kept, the other deleted
    saved = set(os.listdir(checkpoints[0]))
    for name in (
        "student.ckpt",
        "encoder_optimizer.ckpt",
        "head_optimizer.ckpt",
        "counter.ckpt",
        "train_loader.ckpt",
    ):
        assert name in saved
    meta = (checkpoints[0] / "CKPT.yaml").read_text()
    assert "R@1" in meta

    for name in ("dev", "test"):
        metrics = json.loads((out / f"{name}_metrics.json").read_text())
        assert set(metrics) >= {*LANGUAGES, "all", "mean", "cosine"}
        for lang in LANGUAGES:
            assert 0.0 <= metrics[lang]["R@1"] <= metrics[lang]["R@5"] <= 1
            assert metrics[lang]["candidates"] >= 1
        table = (out / f"{name}_metrics.md").read_text()
        assert re.search(r"^\| en \| \d+ \| \d+ \|", table, re.M)
    train_log = (out / "train_log.txt").read_text()
    assert "epoch: 1" in train_log and "epoch: 2" in train_log
    assert "valid R@1" in train_log and "test R@1" in train_log

    # Same command with one more epoch: continues from the checkpoint.
    log = run_recipe(tiny_overrides(corpus, out, epochs=3))
    assert "Loading a checkpoint" in log
    assert "Going into epoch 3" in log
    assert "Going into epoch 1" not in log
    # The teacher cache and the manifests were reused, not rebuilt.
    assert "teacher embedded" not in log
    assert "are up to date" in log


def test_a_resumed_run_equals_the_uninterrupted_one(corpus, tmp_path):
    """Equal, not close: the checkpoints hold the generators' states."""

    def kept_student(out):
        (checkpoint,) = (out / "save").glob("CKPT+*")
        meta = (checkpoint / "CKPT.yaml").read_text()
        state = torch.load(checkpoint / "student.ckpt", weights_only=True)
        return re.search(r"epoch: \d+", meta).group(), state

    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_recipe(tiny_overrides(corpus, whole, epochs=3))
    run_recipe(tiny_overrides(corpus, resumed, epochs=2))
    run_recipe(tiny_overrides(corpus, resumed, epochs=3))
    (epoch, expected), (epoch2, state) = map(kept_student, (whole, resumed))
    assert epoch == epoch2
    assert all(torch.equal(expected[k], state[k]) for k in expected)


def test_a_clip_that_fails_to_load_in_training_is_skipped_and_reported(
    corpus, tmp_path
):
    data = Path(shutil.copytree(corpus, tmp_path / "cv"))
    out = tmp_path / "exp"
    args = tiny_overrides(data, out, epochs=1)
    run_recipe(args)
    # A disk error after preparation: a clip now fails to decode. A dev
    # clip, since validation reads every one of them every epoch (the
    # training sampler draws with replacement); both go through the same
    # collate_fn and guard.
    rows = (out / "save" / "dev.csv").read_text().splitlines()[1:]
    utterance, _, wav = rows[0].split(",")[:3]
    clip = data / wav.replace("$data_root/", "")
    clip.write_bytes(b"\xff" * 2000)
    # The same experiment goes on (its preparation is up to date, so the
    # clip is not checked again): epoch 2 is validated without it.
    log = run_recipe(tiny_overrides(data, out, epochs=2))
    assert "Going into epoch 2" in log
    assert re.search(rf"utterance {utterance} skipped: .*{clip.name}", log)
    # Past max_load_failures the run stops with a summary naming the clip,
    # from the training process: no DataLoader worker traceback.
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            str(HPARAMS),
            *[
                a
                for a in tiny_overrides(data, out, epochs=3)
                if not a.startswith("--num_workers")
            ],
            "--max_load_failures=0",
            "--num_workers=1",
        ],
        cwd=RECIPE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "more than max_load_failures=0" in output, output[-3000:]
    assert f"{utterance}: {clip}" in output
    assert "DataLoader worker" not in output


def test_ddp_two_processes_gloo(corpus, tmp_path):
    out = tmp_path / "ddp"
    launcher = (
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
    )
    args = tiny_overrides(corpus, out, epochs=1)
    args += ["--distributed_backend=gloo", "--device=cpu"]
    log = run_recipe(args, launcher=launcher, timeout=400)
    assert "Going into epoch 1" in log
    # Only the main process logs; the sharded cache build itself is tested
    # with two ranks in test_teacher_cache.py.
    assert re.search(r"embedded \d+ transcripts on rank 0", log)
    assert "epoch: 1" in (out / "train_log.txt").read_text()
    assert json.loads((out / "test_metrics.json").read_text())["all"]


def test_ddp_ranks_hold_identical_parameters_after_a_step(tmp_path):
    """Different data per rank, one step: DDP keeps the replicas equal."""
    script = Path(__file__).resolve().parent / "sense_ddp_step.py"
    result_file = tmp_path / "result.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            str(script),
            str(result_file),
            str(tmp_path),
        ],
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    result = json.loads(result_file.read_text())
    assert result["world_size"] == 2
    assert result["ddp_wrapped"] == "DistributedDataParallel"
    assert result["max_abs_update"] > 0
    assert result["max_abs_difference_between_ranks"] == 0.0


@pytest.fixture
def brain_factory(tmp_path):
    """Builds SENSEBrains from sense_tiny.yaml without any data loading."""

    def build():
        return build_brain(tmp_path, run_opts={"device": "cpu"})

    return build


def test_every_trainable_parameter_is_stepped(brain_factory):
    """Both optimisers step: the upstream head optimiser never did."""
    brain, hparams = brain_factory()
    brain.on_fit_start()
    assert set(brain.optimizers_dict) == {"encoder_optimizer", "head_optimizer"}
    student = brain.modules.student
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    received_grad = set()
    brain.modules.train()
    for step in range(3):
        batch = random_batch(3, hparams["teacher_dim"], seed=step)
        # Record which parameters get a gradient before the step clears it.
        brain.compute_objectives(
            brain.compute_forward(batch, Stage.TRAIN), batch, Stage.TRAIN
        ).backward()
        received_grad |= {
            n
            for n, p in student.named_parameters()
            if p.grad is not None and p.grad.abs().sum() > 0
        }
        brain.zero_grad()
        brain.fit_batch(batch)
    unchanged = {
        n
        for n, p in student.named_parameters()
        if p.requires_grad and torch.equal(before[n], p.detach())
    }
    # Parameters that receive gradients all move, the head's included.
    assert not (unchanged & received_grad), unchanged & received_grad
    assert any(n.startswith("head.") for n in received_grad)
    # Every trainable tensor gets a gradient. Frozen on purpose: the pooling
    # score's bias (softmax is shift-invariant, so it has no effect) and
    # the SpecAugment mask embedding (unused in the tiny recipe).
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trainable == received_grad
    assert "head.pooling.attn_pooling_w.bias" not in trainable
    assert "encoder.model.masked_spec_embed" not in trainable


def test_optimiser_state_round_trips_through_checkpoint(
    brain_factory, tmp_path
):
    from speechbrain.utils.checkpoints import Checkpointer

    brain, hparams = brain_factory()
    brain.on_fit_start()
    brain.modules.train()
    brain.fit_batch(random_batch(2, hparams["teacher_dim"], seed=0))
    checkpointer = Checkpointer(tmp_path, dict(brain.optimizers_dict))
    checkpointer.save_checkpoint()
    head_state = brain.optimizers_dict["head_optimizer"].state_dict()

    fresh, _ = brain_factory()
    fresh.on_fit_start()
    Checkpointer(tmp_path, dict(fresh.optimizers_dict)).recover_if_possible()
    restored = fresh.optimizers_dict["head_optimizer"].state_dict()
    assert restored["state"].keys() == head_state["state"].keys()
    for key, state in head_state["state"].items():
        for name, value in state.items():
            assert torch.equal(
                torch.as_tensor(restored["state"][key][name]),
                torch.as_tensor(value),
            )


@pytest.fixture(autouse=True, scope="module")
def _cleanup_recipe_results():
    yield
    # The recipe's relative default output must not be polluted by tests.
    shutil.rmtree(RECIPE / "results" / "pytest", ignore_errors=True)


def test_prepared_splits_need_train_and_dev_data(tmp_path):
    sys.path.insert(0, str(RECIPE))
    import train

    header, row = "ID,duration,wav,sentence,lang\n", "a,1.0,/a.mp3,hi,en\n"
    hparams = {}
    for split in ("train", "dev", "test"):
        hparams[f"{split}_csv"] = tmp_path / f"{split}.csv"
        hparams[f"{split}_csv"].write_text(header + row)
    assert train.prepared_splits(hparams) == ["train", "dev", "test"]
    hparams["test_csv"].write_text(header)  # a release without test.tsv
    assert train.prepared_splits(hparams) == ["train", "dev"]
    hparams["dev_csv"].write_text(header)
    with pytest.raises(ValueError, match="dev.csv holds no utterance"):
        train.prepared_splits(hparams)
