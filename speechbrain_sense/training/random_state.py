"""The random generators' states as a SpeechBrain checkpoint recoverable.

A resumed run seeds its generators afresh (``seed`` in the yaml), so after
a mid-training checkpoint its dropout masks, SpecAugment-style masks and
DataLoader worker seeds differ from those of the run that was interrupted:
the two runs drift apart (in the third digit by epoch 3 on the SENSE
recipe). :class:`RandomState` in a ``Checkpointer``'s recoverables saves
the torch (CPU and every CUDA device), NumPy and Python generator states
with each checkpoint and restores them on recovery, so that a resumed run
continues the very same random streams.

Under DDP the main process saves its states, and every rank restores them.
SpeechBrain seeds all ranks with the same seed, so their streams are equal
in an uninterrupted run too.

Authors
 * speechbrain-sense developers 2026
"""

import random

import numpy as np
import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)


@register_checkpoint_hooks
class RandomState:
    """Saves and restores the torch, CUDA, NumPy and Python RNG states.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "random_state.ckpt")
    >>> state = RandomState()
    >>> state.save(path)
    >>> expected = torch.rand(3), np.random.rand(), random.random()
    >>> state.load(path, end_of_epoch=False)
    >>> torch.equal(torch.rand(3), expected[0])
    True
    >>> (np.random.rand(), random.random()) == expected[1:]
    True
    """

    @mark_as_saver
    def save(self, path):
        """Writes the current generator states to ``path``.

        Arguments
        ---------
        path : str or Path
            The checkpoint file.
        """
        torch.save(
            {
                "torch": torch.get_rng_state(),
                "cuda": (
                    torch.cuda.get_rng_state_all()
                    if torch.cuda.is_available()
                    else []
                ),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
            path,
        )

    @mark_as_loader
    def load(self, path, end_of_epoch):
        """Restores the generator states saved in ``path``.

        Arguments
        ---------
        path : str or Path
            The checkpoint file.
        end_of_epoch : bool
            Unused: the states are restored at any checkpoint.
        """
        del end_of_epoch
        # NumPy and Python states are tuples of arrays and ints, which the
        # weights-only unpickler refuses; the file is this run's own.
        state = torch.load(path, map_location="cpu", weights_only=False)
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            if len(state["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(state["cuda"])
            else:
                torch.cuda.set_rng_state(state["cuda"][0])
        np.random.set_state(state["numpy"])
        random.setstate(state["python"])
