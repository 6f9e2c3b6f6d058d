"""One training epoch of shard batches per DDP rank, ids written out.

Run by ``test_shard_training.py`` under ``torch.distributed.run`` (gloo),
2 ranks x 2 DataLoader workers. Each rank writes the clip ids of every
batch it received, in order, to ``<out>/rank<r>.json``.

Usage: shard_stream_rank.py SHARDS RATIOS OUT
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from speechbrain_sense.data.sampling import load_language_ratios
from speechbrain_sense.data.streaming import ShardStream, StreamLoader
from speechbrain_sense.training.distributed import ddp_destroy_group

STREAM_OPTIONS = {
    "max_batch_seconds": 12.0,
    "max_batch_size": 6,
    "epoch_audio_hours": 0.03,
    "seed": 3,
    "num_workers": 2,
}


def main(shards, ratios, out):
    dist.init_process_group("gloo")
    stream = ShardStream(
        shards,
        "train",
        language_ratios=load_language_ratios(ratios),
        **STREAM_OPTIONS,
    )
    stream.set_epoch(1)
    batches = [batch.id for batch in StreamLoader(stream)]
    rank = dist.get_rank()
    Path(out, f"rank{rank}.json").write_text(json.dumps(batches))
    ddp_destroy_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
