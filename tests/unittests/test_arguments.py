"""Fractional --ckpt_interval_minutes on a SpeechBrain command line."""

import pytest
import speechbrain as sb
import torch

from speechbrain_sense.training.arguments import parse_arguments


@pytest.mark.parametrize(
    "argv",
    [
        ["x.yaml", "--ckpt_interval_minutes=0.25", "--seed=7"],
        ["x.yaml", "--ckpt_interval_minutes", "0.25", "--seed=7"],
    ],
)
def test_a_fraction_reaches_the_brain(argv):
    # SpeechBrain's own parser refuses it.
    with pytest.raises(SystemExit):
        sb.parse_arguments(argv)
    param_file, run_opts, overrides = parse_arguments(argv)
    assert param_file == "x.yaml" and "seed: 7" in overrides
    assert "ckpt_interval_minutes" in run_opts.overridden_args
    # As the recipes pass it.
    brain = sb.Brain(modules={"m": torch.nn.Linear(1, 1)}, run_opts=run_opts)
    assert brain.ckpt_interval_minutes == 0.25


def test_other_arguments_are_speechbrains():
    _, run_opts, _ = parse_arguments(["x.yaml", "--ckpt_interval_steps=5"])
    assert run_opts.ckpt_interval_steps == 5
    assert run_opts.ckpt_interval_minutes == 0


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_a_value_that_is_not_a_duration_is_refused(value):
    with pytest.raises(SystemExit, match="must be a number >= 0"):
        parse_arguments(["x.yaml", f"--ckpt_interval_minutes={value}"])
