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

Also here, :func:`gather_with_grad`: every rank's rows (the in-batch
negatives of a contrastive loss) concatenated, with the gradient of the
local ones kept, so a loss on the gathered batch trains each rank's model.

Authors
 * speechbrain-sense contributors
"""

import atexit
import os
import sys

import torch
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


def gather_with_grad(tensor):
    """Every rank's rows, in rank order, keeping the gradient of the local ones.

    ``[B_r, ...]`` on rank r becomes ``[B_0 + ... + B_{W-1}, ...]`` on every
    rank; rank r's own rows sit at offset ``B_0 + ... + B_{r-1}``. Ranks may
    hold different numbers of rows: the counts are all-gathered first, each
    rank pads its rows with zeros to the largest count, and the padding is
    dropped after the gather. Outside DDP, or with one rank, ``tensor``
    itself is returned (single-process code is unchanged).

    The gradient convention is that of
    ``torch.distributed.nn.functional.all_gather`` (which the SENSIA
    authors use): in backward each rank sums the gradient of the *whole*
    gathered tensor over the ranks (an all-reduce) and keeps its own rows.
    When every rank computes the same loss L on the gathered batch, a rank's
    rows thus receive ``W * dL/dx``, and DDP's averaging of the parameter
    gradients (a sum divided by W) gives exactly the gradient of L computed
    by one process on the concatenated batch.

    Arguments
    ---------
    tensor : torch.Tensor
        ``[B_r, ...]`` rows of this rank; every rank must call this, with
        the same trailing shape and dtype.

    Returns
    -------
    torch.Tensor
        ``[sum_r B_r, ...]``, differentiable with respect to ``tensor``.

    Example
    -------
    >>> x = torch.randn(3, 4)
    >>> gather_with_grad(x) is x  # not under DDP
    True
    """
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    if dist.get_world_size() == 1:
        return tensor
    count = torch.tensor([tensor.shape[0]], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    return _GatherRows.apply(tensor, [int(c) for c in counts])


class _GatherRows(torch.autograd.Function):
    """All-gather of rows (padded to equal counts) with a summed backward."""

    @staticmethod
    def forward(ctx, tensor, counts):
        """Pads to ``max(counts)`` rows, gathers, drops the padding.

        Arguments
        ---------
        ctx : torch.autograd.function.FunctionCtx
            Keeps the counts and the rank for backward.
        tensor : torch.Tensor
            ``[counts[rank], ...]`` local rows.
        counts : list of int
            Rows held by each rank.

        Returns
        -------
        torch.Tensor
            ``[sum(counts), ...]``.
        """
        ctx.counts, ctx.rank = counts, dist.get_rank()
        padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        slots = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(slots, padded)
        # [W, max(counts), ...] -> [sum(counts), ...]
        return torch.cat([slot[:n] for slot, n in zip(slots, counts)])

    @staticmethod
    def backward(ctx, grad):
        """Sums the gathered gradient over the ranks; keeps the local rows.

        Arguments
        ---------
        ctx : torch.autograd.function.FunctionCtx
            Holds the counts and the rank.
        grad : torch.Tensor
            ``[sum(counts), ...]`` gradient of this rank's loss.

        Returns
        -------
        tuple
            The gradient of the local rows, and None for ``counts``.
        """
        # An all-reduce rather than a reduce-scatter: every backend has it,
        # and the rows are a few sentence embeddings.
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.counts[: ctx.rank])
        return grad[start : start + ctx.counts[ctx.rank]], None
