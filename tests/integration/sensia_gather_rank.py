"""One DDP rank of the gathered-InfoNCE check (SENSIA's ``gather_negatives``).

Run by ``test_sensia_paper.py`` under ``torch.distributed.run`` with two gloo
processes. The ranks hold *different* numbers of pairs (3 and 5) cut from one
seeded batch of 8, so each rank can also compute the single-process
reference on the whole batch. Each rank writes ``rank<r>.json`` into the
folder given as argv[1]:

* ``embeddings``: ``gathered_info_nce`` of the local rows, against
  ``info_nce`` of the concatenated batch: the losses, and the gradient of
  the local rows against that of the same rows in one process;
* ``ddp``: a ``DistributedDataParallel`` linear encoder fed the local
  sentences (source and target passes, as the recipe runs them): its
  averaged parameter gradients against those of one process on all 8 pairs.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from speechbrain_sense.sensia.losses import gathered_info_nce, info_nce
from speechbrain_sense.training.distributed import ddp_destroy_group

SIZES = (3, 5)
DIM, FEATURES = 6, 7


def max_abs(a, b):
    """Largest absolute difference of two tensors."""
    return (a - b).abs().max().item()


def main(out_dir):
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    assert world_size == len(SIZES)
    start = sum(SIZES[:rank])
    rows = slice(start, start + SIZES[rank])
    generator = torch.Generator().manual_seed(0)
    src_all = torch.randn(sum(SIZES), DIM, generator=generator)
    tgt_all = torch.randn(sum(SIZES), DIM, generator=generator)

    # Embeddings: the loss, and the gradient of the local rows.
    src = src_all[rows].clone().requires_grad_()
    tgt = tgt_all[rows].clone().requires_grad_()
    loss = gathered_info_nce(src, tgt, temperature=0.07)
    loss.backward()
    whole = [x.clone().requires_grad_() for x in (src_all, tgt_all)]
    reference = info_nce(*whole, temperature=0.07)
    reference.backward()
    embeddings = {
        "loss": loss.item(),
        "single_process_loss": reference.item(),
        "local_only_loss": info_nce(src, tgt, temperature=0.07).item(),
        # The gather's backward sums every rank's (identical) loss.
        "grad_vs_world_size_times_single": max(
            max_abs(src.grad, world_size * whole[0].grad[rows]),
            max_abs(tgt.grad, world_size * whole[1].grad[rows]),
        ),
        "grad_norm": src.grad.norm().item(),
    }

    # A DDP encoder: after DDP's averaging, the single-process gradient.
    torch.manual_seed(1)
    encoder = torch.nn.Linear(FEATURES, DIM)
    single = torch.nn.Linear(FEATURES, DIM)
    single.load_state_dict(encoder.state_dict())
    model = DistributedDataParallel(encoder)
    x_src_all = torch.randn(sum(SIZES), FEATURES, generator=generator)
    x_tgt_all = torch.randn(sum(SIZES), FEATURES, generator=generator)
    loss = gathered_info_nce(
        model(x_src_all[rows]), model(x_tgt_all[rows]), temperature=0.05
    )
    loss.backward()
    reference = info_nce(single(x_src_all), single(x_tgt_all), 0.05)
    reference.backward()
    ddp = {
        "loss": loss.item(),
        "single_process_loss": reference.item(),
        "param_grad_vs_single": max(
            max_abs(p.grad, q.grad)
            for p, q in zip(encoder.parameters(), single.parameters())
        ),
        "param_grad_norm": encoder.weight.grad.norm().item(),
    }
    result = {
        "rank": rank,
        "world_size": world_size,
        "local_pairs": SIZES[rank],
        "embeddings": embeddings,
        "ddp": ddp,
    }
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    ddp_destroy_group()


if __name__ == "__main__":
    main(sys.argv[1])
