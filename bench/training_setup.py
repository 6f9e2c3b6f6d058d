"""What the two SENSE training pipelines of the benchmark share.

Both recipes train the encoder with Adam and the head with Adadelta, clip
gradients at 5 and run one ``Brain`` step per batch; only the precision, the
fused optimiser and ``torch.compile`` differ, and those are arguments here.

Authors
 * speechbrain-sense developers 2026
"""

import functools

import torch

SAMPLE_RATE = 16000


def optimizer_classes(options, fused):
    """The optimisers of both recipes (encoder: Adam; head: Adadelta).

    ``fused``: the encoder's Adam as one multi-tensor kernel (ours, as
    sense_cv.yaml sets it) or per tensor (upstream).
    """
    return {
        "head_opt_class": functools.partial(
            torch.optim.Adadelta, lr=1.0, rho=0.95, eps=1e-8
        ),
        "encoder_opt_class": functools.partial(
            torch.optim.Adam, lr=options["lr_encoder"], fused=fused
        ),
    }


def run_opts(options, precision, compile):
    """Brain ``run_opts`` for one precision, with torch.compile if asked."""
    run_opts = {
        "device": options["device"],
        "precision": precision,
        "max_grad_norm": 5.0,
        "grad_accumulation_factor": 1,
    }
    if compile and options["compile"]:
        run_opts.update(
            compile=True,
            compile_module_keys=["student"],
            compile_using_dynamic_shape_tracing=True,
        )
    return run_opts
