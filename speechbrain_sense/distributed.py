"""Ending a DDP run cleanly: the counterpart of ``ddp_init_group``.

SpeechBrain's ``sb.utils.distributed.ddp_init_group`` opens the process
group, and nothing in SpeechBrain closes it. A rank that then reaches the end
of its script leaves the group to the interpreter's finalisation, where gloo's
worker threads can still be running: the rank dies with ``terminate called
without an active exception`` (SIGABRT) after a run that succeeded, and
``torchrun`` reports the whole job as failed.

Destroying the group first is what PyTorch's docs ask for, and it is enough
when no ``DistributedDataParallel`` was built. Once one was (PyTorch 2.14),
the C++ side keeps its gloo group alive past ``destroy_process_group``: its
threads keep running until exit and are torn down during static destruction,
a race that lost once in CI (pytorch/pytorch#65513, #109478). So after the
barrier and the destroy, a multi-rank run ends its process the way
``multiprocessing`` children do: ``atexit`` handlers run (logging is flushed
and closed there), standard streams are flushed, then ``os._exit``. Nothing
that outlives communication is skipped except the finalisers that race.

Authors
 * speechbrain-sense contributors
"""

import atexit
import os
import sys

import torch.distributed as dist


def end_process_now(code=0):
    """Run ``atexit`` handlers, flush stdout/stderr, then ``os._exit(code)``.

    Arguments
    ---------
    code : int
        The process's exit status.
    """
    # The handlers registered by logging, loggers such as wandb and user code
    # are what a normal exit would have run; only finalisation is skipped.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(code)


def ddp_destroy_group(exit_process=None):
    """Wait for every rank, destroy the default process group, and (with
    several ranks) end the process.

    Call it last in a recipe's main block, on the normal path only: a rank
    that failed must not enter a barrier its peers will never reach (the
    launcher stops them instead). A no-op outside DDP, so single-process
    runs call it too.

    Arguments
    ---------
    exit_process : bool, optional
        End the process with :func:`end_process_now` after the destroy. The
        default does so when the group had more than one rank, which is when
        gloo's threads can outlive the group (see the module docstring).

    Returns
    -------
    bool
        True if a process group was destroyed (and the process goes on),
        False if none was open.

    Example
    -------
    >>> ddp_destroy_group()  # not under DDP: nothing to close
    False
    """
    if not (dist.is_available() and dist.is_initialized()):
        return False
    if exit_process is None:
        exit_process = dist.get_world_size() > 1
    # The main rank may still be writing reports; no rank leaves while
    # another could still send to it.
    dist.barrier()
    dist.destroy_process_group()
    if exit_process:
        end_process_now(0)
    return True
