"""Ending a DDP run cleanly: the counterpart of ``ddp_init_group``.

SpeechBrain's ``sb.utils.distributed.ddp_init_group`` opens the process
group, and nothing in SpeechBrain closes it. A rank that then reaches the end
of its script leaves the group to the interpreter's finalisation, where gloo's
worker threads can still hold work objects with Python references: the rank
dies with ``terminate called without an active exception`` (SIGABRT) after a
run that succeeded, and ``torchrun`` reports the whole job as failed. PyTorch's
distributed docs ask every trainer process to call ``destroy_process_group``
once communication is over; every recipe here ends with
``ddp_destroy_group()`` for that reason.

Authors
 * speechbrain-sense contributors
"""

import torch.distributed as dist


def ddp_destroy_group():
    """Wait for every rank, then destroy the default process group.

    Call it last in a recipe's main block, on the normal path only: a rank
    that failed must not enter a barrier its peers will never reach (the
    launcher stops them instead). A no-op outside DDP, so single-process
    runs call it too.

    Returns
    -------
    bool
        True if a process group was destroyed, False if none was open.

    Example
    -------
    >>> ddp_destroy_group()  # not under DDP: nothing to close
    False
    """
    if not (dist.is_available() and dist.is_initialized()):
        return False
    # The main rank may still be writing reports; no rank leaves while
    # another could still send to it.
    dist.barrier()
    dist.destroy_process_group()
    return True
