"""SpeechBrain's command line, with fractional checkpoint intervals.

``speechbrain.parse_arguments`` types ``--ckpt_interval_minutes`` as an
``int``, so ``--ckpt_interval_minutes=0.5`` (a checkpoint every 30 s, for a
pre-emptible job or a test) is refused although ``Brain`` compares it as a
number. :func:`parse_arguments` accepts any non-negative number for it and
leaves everything else to SpeechBrain.

Authors
 * speechbrain-sense developers 2026
"""

import dataclasses

import speechbrain as sb

# Run options that SpeechBrain types as int but uses as any number.
FRACTIONAL_OPTIONS = ("ckpt_interval_minutes",)


def parse_arguments(arg_list):
    """``speechbrain.parse_arguments`` with fractional ``FRACTIONAL_OPTIONS``.

    Arguments
    ---------
    arg_list : list of str
        The command line (``sys.argv[1:]``).

    Returns
    -------
    param_file : str
        The hyperparameter file.
    run_opts : RunOptions
        SpeechBrain's run options, fractional ones included.
    overrides : str
        The yaml overrides.

    Example
    -------
    >>> _, run_opts, _ = parse_arguments(["x.yaml", "--ckpt_interval_minutes=0.5"])
    >>> run_opts.ckpt_interval_minutes
    0.5
    """
    kept, fractional = [], {}
    arguments = iter(arg_list)
    for argument in arguments:
        name, has_value, value = argument.partition("=")
        option = name[2:] if name.startswith("--") else None
        if option not in FRACTIONAL_OPTIONS:
            kept.append(argument)
            continue
        if not has_value:
            value = next(arguments, "")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not number >= 0:
            raise SystemExit(f"--{option} must be a number >= 0, got {value!r}")
        fractional[option] = number
    param_file, run_opts, overrides = sb.parse_arguments(kept)
    if fractional:
        # RunOptions is a frozen dataclass: a copy with the numbers.
        run_opts = dataclasses.replace(
            run_opts,
            **fractional,
            overridden_args=set(run_opts.overridden_args) | set(fractional),
        )
    return param_file, run_opts, overrides
