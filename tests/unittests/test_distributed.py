"""``ddp_destroy_group`` closes an open process group, and only then; a
multi-rank run then ends its process without interpreter finalisation."""

import subprocess
import sys
import textwrap

import torch.distributed as dist

from speechbrain_sense.testing import free_port
from speechbrain_sense.training.distributed import ddp_destroy_group


def test_destroys_an_open_group_once():
    """A one-rank gloo group is closed: a second call finds nothing."""
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{free_port()}",
        rank=0,
        world_size=1,
    )
    try:
        assert dist.is_initialized()
        # One rank: the default keeps the process (pytest) alive.
        assert ddp_destroy_group() is True
        assert not dist.is_initialized()
        assert ddp_destroy_group() is False
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_no_op_without_a_group():
    """Single-process runs call it too, and nothing happens."""
    assert not dist.is_initialized()
    assert ddp_destroy_group() is False


EXITING_RANK = textwrap.dedent(
    """
    import atexit, sys
    import torch
    import torch.distributed as dist
    from speechbrain_sense.training.distributed import ddp_destroy_group

    dist.init_process_group(
        "gloo", init_method="tcp://127.0.0.1:%d", rank=0, world_size=1
    )
    # A DDP module is what keeps gloo's threads alive past the destroy.
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
    model(torch.ones(1, 2)).sum().backward()
    atexit.register(lambda: open(sys.argv[1], "w").write("atexit ran"))
    sys.stdout.write("buffered, no newline")
    ddp_destroy_group(exit_process=True)
    print("unreachable")
    sys.exit(3)
    """
)


def test_exit_path_runs_atexit_flushes_and_ends_with_status_0(tmp_path):
    """After the destroy, the rank ends with status 0: what was buffered on
    stdout arrives, ``atexit`` handlers ran, and no later line executes."""
    marker = tmp_path / "atexit.txt"
    done = subprocess.run(
        [sys.executable, "-c", EXITING_RANK % free_port(), str(marker)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "buffered, no newline"
    assert marker.read_text() == "atexit ran"
