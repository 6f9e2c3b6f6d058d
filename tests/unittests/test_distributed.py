"""``ddp_destroy_group`` closes an open process group, and only then."""

import socket

import torch.distributed as dist

from speechbrain_sense.distributed import ddp_destroy_group


def free_port():
    """Asks the OS for a free TCP port.

    Returns
    -------
    int
        A port nothing listens on.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
