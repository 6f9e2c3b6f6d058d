"""A SpeechBrain ``Checkpointer`` that does not lose an epoch to a bad disk.

SpeechBrain's ``Checkpointer`` finds out that its folder cannot be written
when it saves, at the end of an epoch (or an interval), and the run then
dies with that epoch's work. :class:`ResilientCheckpointer`:

* checks that its folder is writable when it is built, before any
  training (a probe file written, flushed and removed);
* before every save, probes again, retrying ``retries`` times
  ``retry_wait`` seconds apart (a network filesystem that hiccups), and
  then saves to ``fallback_dir`` instead, with an error in the log that
  names both folders. The checkpoints of ``fallback_dir`` are listed with
  the folder's own, so the run resumes from them;
* in a single process, also retries a save that fails half-way (a full
  disk) in ``fallback_dir``. Under DDP the save holds a broadcast, so
  only the probe decides, on the main process, before it: the other ranks
  receive the folder chosen;
* keeps going when old checkpoints cannot be deleted (a warning): an
  extra checkpoint costs disk, not work.

Authors
 * speechbrain-sense developers 2026
"""

import hashlib
import os
import tempfile
import time
from pathlib import Path

from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import ddp_barrier, if_main_process
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


def check_writable(folder):
    """Makes ``folder`` (and parents) and proves that a file can be written.

    Arguments
    ---------
    folder : str or Path
        The folder.

    Raises
    ------
    PermissionError
        Naming the folder and the reason, when it cannot be created or
        written.

    Example
    -------
    >>> import tempfile
    >>> check_writable(tempfile.mkdtemp())
    """
    folder = Path(folder)
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"speechbrain-sense write probe\n")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as error:
        raise PermissionError(
            f"output folder {folder} is not writable: {error}"
        ) from error


def default_fallback_dir(checkpoints_dir):
    """A folder on the local temporary disk for ``checkpoints_dir``.

    Arguments
    ---------
    checkpoints_dir : str or Path
        The checkpoint folder it stands in for.

    Returns
    -------
    Path
        ``<tmp>/speechbrain-sense-fallback/<name>-<hash of the path>``.
    """
    path = Path(checkpoints_dir).resolve()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / "speechbrain-sense-fallback"
    return root / f"{path.name}-{digest}"


class ResilientCheckpointer(Checkpointer):
    """``Checkpointer`` with an up-front write check, retries and a fallback.

    Arguments
    ---------
    checkpoints_dir : str or Path
        Where checkpoints go.
    recoverables : dict, optional
        As for ``Checkpointer``.
    custom_load_hooks : dict, optional
        As for ``Checkpointer``.
    custom_save_hooks : dict, optional
        As for ``Checkpointer``.
    allow_partial_load : bool
        As for ``Checkpointer``.
    fallback_dir : str or Path, optional
        Where to save when ``checkpoints_dir`` cannot be written (default:
        :func:`default_fallback_dir`, on the local temporary disk).
    retries : int
        Probes of ``checkpoints_dir`` after a failed one, before falling
        back.
    retry_wait : float
        Seconds between probes.

    Example
    -------
    >>> import tempfile, torch
    >>> model = torch.nn.Linear(2, 2)
    >>> ckpt = ResilientCheckpointer(tempfile.mkdtemp(), {"model": model})
    >>> ckpt.save_checkpoint().paramfiles["model"].name
    'model.ckpt'
    """

    def __init__(
        self,
        checkpoints_dir,
        recoverables=None,
        custom_load_hooks=None,
        custom_save_hooks=None,
        allow_partial_load=False,
        fallback_dir=None,
        retries=2,
        retry_wait=10.0,
    ):
        if if_main_process():
            check_writable(checkpoints_dir)
        super().__init__(
            checkpoints_dir,
            recoverables=recoverables,
            custom_load_hooks=custom_load_hooks,
            custom_save_hooks=custom_save_hooks,
            allow_partial_load=allow_partial_load,
        )
        self.home_dir = self.checkpoints_dir
        self.fallback_dir = Path(
            fallback_dir or default_fallback_dir(checkpoints_dir)
        )
        self.retries = int(retries)
        self.retry_wait = float(retry_wait)

    def _writable_dir(self):
        """The home folder if it can be written (after retries), else the
        fallback folder, loudly.

        Returns
        -------
        Path
        """
        for attempt in range(self.retries + 1):
            try:
                check_writable(self.home_dir)
                return self.home_dir
            except PermissionError as error:
                reason = error
                if attempt < self.retries:
                    logger.warning(
                        f"{error}; trying again in {self.retry_wait:g} s "
                        f"({attempt + 1}/{self.retries})"
                    )
                    time.sleep(self.retry_wait)
        check_writable(self.fallback_dir)
        logger.error(
            f"CHECKPOINT NOT SAVED WHERE EXPECTED: {reason}. Saving to "
            f"{self.fallback_dir} instead; a resumed run finds it there, "
            f"but copy it to {self.home_dir} before moving the experiment."
        )
        return self.fallback_dir

    def save_checkpoint(self, *args, **kwargs):
        """Saves to the first writable of the home and fallback folders.

        Arguments
        ---------
        *args
            As for ``Checkpointer.save_checkpoint``.
        **kwargs
            As for ``Checkpointer.save_checkpoint``.

        Returns
        -------
        Checkpoint
            The saved checkpoint (``None`` on other processes than the
            main one).
        """
        if if_main_process():
            self.checkpoints_dir = self._writable_dir()
        try:
            return super().save_checkpoint(*args, **kwargs)
        except OSError as error:
            if _world_size() > 1 or self.checkpoints_dir == self.fallback_dir:
                raise
            check_writable(self.fallback_dir)
            logger.error(
                f"CHECKPOINT SAVE FAILED in {self.checkpoints_dir}: {error}. "
                f"Saving to {self.fallback_dir} instead."
            )
            self.checkpoints_dir = self.fallback_dir
            return super().save_checkpoint(*args, **kwargs)
        finally:
            self.checkpoints_dir = self.home_dir

    def list_checkpoints(self):
        """The checkpoints of the home folder and of the fallback folder.

        Returns
        -------
        list of Checkpoint
        """
        found = super().list_checkpoints()
        if self.fallback_dir.is_dir():
            self.checkpoints_dir = self.fallback_dir
            try:
                found += super().list_checkpoints()
            finally:
                self.checkpoints_dir = self.home_dir
        return found

    def delete_checkpoints(self, *args, **kwargs):
        """Deletes old checkpoints; warns instead when they cannot be.

        Arguments
        ---------
        *args
            As for ``Checkpointer.delete_checkpoints``.
        **kwargs
            As for ``Checkpointer.delete_checkpoints``.
        """
        if if_main_process():
            try:
                check_writable(self.home_dir)
            except PermissionError as error:
                logger.warning(f"old checkpoints not deleted: {error}")
                # The other ranks wait in the barrier that ends a deletion.
                ddp_barrier()
                return
        try:
            super().delete_checkpoints(*args, **kwargs)
        except OSError as error:
            if _world_size() > 1:
                raise
            logger.warning(f"old checkpoints not all deleted: {error}")


def _world_size():
    """Processes of the run (``WORLD_SIZE``, set by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))
