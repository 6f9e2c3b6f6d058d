"""One SENSE training step per DDP rank, then a parameter comparison.

Run by ``test_sense_recipe.py`` under ``torch.distributed.run`` with the
gloo backend. Each rank feeds a *different* random batch through the real
``SENSEBrain.fit_batch`` (DDP-wrapped student, both optimisers); DDP must
average the gradients so that all ranks hold identical parameters after
the step. Rank 0 writes the comparison to the JSON file given as argv[1].
"""

import json
import sys
from pathlib import Path

import speechbrain as sb
import torch
import torch.distributed as dist
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch

from speechbrain_sense.training.distributed import ddp_destroy_group

RECIPE = Path(__file__).resolve().parents[2] / "recipes/CommonVoice/SENSE"
HPARAMS = RECIPE / "hparams" / "sense_tiny.yaml"


def random_batch(num_utterances, teacher_dim, seed):
    """A collated batch as the recipe's data pipeline would produce."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(num_utterances):
        frames = 20 + 7 * i
        teacher = torch.randn(teacher_dim, generator=generator)
        examples.append(
            {
                "id": f"utt{i}",
                "features": torch.randn(frames, 160, generator=generator),
                "num_frames": frames,
                "teacher_embedding": torch.nn.functional.normalize(
                    teacher, dim=0
                ),
                "sentence": f"sentence {i}",
                "lang": "en",
            }
        )
    return PaddedBatch(examples)


def build_brain(output_folder, run_opts):
    """A SENSEBrain from sense_tiny.yaml (tiny sizes), no data loading."""
    sys.path.insert(0, str(RECIPE))
    import train

    overrides = {
        "output_folder": str(output_folder),
        "encoder_dim": 32,
        "data_folder": str(output_folder),
    }
    with open(HPARAMS, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    brain = train.SENSEBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=None,
    )
    return brain, hparams


def flat_parameters(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def main(result_file, output_folder):
    run_opts = {"distributed_backend": "gloo", "device": "cpu"}
    sb.utils.distributed.ddp_init_group(run_opts)
    brain, hparams = build_brain(output_folder, run_opts)
    brain.on_fit_start()
    rank = dist.get_rank()
    before = flat_parameters(brain.modules.student)
    brain.modules.train()
    brain.fit_batch(random_batch(3, hparams["teacher_dim"], seed=100 + rank))
    after = flat_parameters(brain.modules.student)
    gathered = [torch.empty_like(after) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, after)
    if rank == 0:
        result = {
            "world_size": dist.get_world_size(),
            "max_abs_difference_between_ranks": max(
                (g - gathered[0]).abs().max().item() for g in gathered
            ),
            "max_abs_update": (after - before).abs().max().item(),
            "ddp_wrapped": type(brain.modules.student).__name__,
        }
        Path(result_file).write_text(json.dumps(result))
    ddp_destroy_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
