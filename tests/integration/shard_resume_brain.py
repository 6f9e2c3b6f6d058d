"""A real ``sb.Brain`` fed by a ShardStream, killed and resumed mid-epoch.

Run by ``test_shard_training.py``. Trains a linear probe (after dropout, so
that the random streams matter) on mean-pooled features for 2 epochs with 2 DataLoader workers and a checkpoint after
every step (``ckpt_interval_steps=1``). Every training batch's clip ids
are appended to ``<out>/seen.jsonl`` as it is trained. With ``KILL_EPOCH``
and ``KILL_STEP`` > 0 the process SIGKILLs itself right after the
checkpoint of that step, as a preempted cluster job dies. The final
weights go to ``<out>/final.pt``. The checkpoints hold the generators'
states (:class:`~speechbrain_sense.training.random_state.RandomState`) unless
``NO_RANDOM_STATE=1``.

Usage: shard_resume_brain.py SHARDS RATIOS OUT KILL_EPOCH KILL_STEP
"""

import json
import os
import signal
import sys
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter

from speechbrain_sense.data.sampling import load_language_ratios
from speechbrain_sense.data.streaming import ShardStream, StreamLoader
from speechbrain_sense.training.random_state import RandomState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shard_stream_rank import STREAM_OPTIONS  # noqa: E402


class ProbeBrain(sb.Brain):
    """Mean-pooled features -> linear; logs the ids it trains on."""

    def compute_forward(self, batch, stage):
        features, _ = batch.to(self.device).features
        return self.modules.probe(features.mean(dim=1))

    def compute_objectives(self, predictions, batch, stage):
        if stage == sb.Stage.TRAIN:
            with open(self.hparams.seen, "a", encoding="utf-8") as f:
                f.write(json.dumps([self.hparams.counter.current, batch.id]))
                f.write("\n")
        return predictions.pow(2).mean()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        self.checkpointer.save_and_keep_only(num_to_keep=1)

    def _save_intra_epoch_ckpt(self):
        super()._save_intra_epoch_ckpt()
        kill = (self.hparams.kill_epoch, self.hparams.kill_step)
        if kill == (self.hparams.counter.current, self.step):
            os.kill(os.getpid(), signal.SIGKILL)


def main(shards, ratios, out, kill_epoch, kill_step):
    torch.manual_seed(0)
    stream = ShardStream(
        shards,
        "train",
        language_ratios=load_language_ratios(ratios),
        **STREAM_OPTIONS,
    )
    # Its own generator: creating an epoch's iterator then draws nothing
    # from the global one, whose state the checkpoints restore.
    loader = StreamLoader(stream, generator=torch.Generator().manual_seed(0))
    probe = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(160, 4))
    counter = EpochCounter(2)
    recoverables = {"probe": probe, "counter": counter, "train_loader": loader}
    if os.environ.get("NO_RANDOM_STATE") != "1":
        recoverables["random_state"] = RandomState()
    checkpointer = Checkpointer(Path(out) / "save", recoverables)
    brain = ProbeBrain(
        modules={"probe": probe},
        opt_class=lambda params: torch.optim.SGD(params, lr=0.01),
        hparams={
            "seen": str(Path(out) / "seen.jsonl"),
            "counter": counter,
            "kill_epoch": int(kill_epoch),
            "kill_step": int(kill_step),
        },
        run_opts={"ckpt_interval_steps": 1, "device": "cpu"},
        checkpointer=checkpointer,
    )
    brain.train_sampler = stream
    brain.fit(counter, loader, progressbar=False)
    torch.save(probe.state_dict(), Path(out) / "final.pt")


if __name__ == "__main__":
    main(*sys.argv[1:6])
