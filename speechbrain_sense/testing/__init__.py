"""Tiny random models and hub stand-ins for tests, demos and benches."""

import socket


def free_port():
    """Asks the OS for a free TCP port on the loopback interface.

    For the rendezvous of test DDP runs (``--master_port``,
    ``tcp://127.0.0.1:<port>``).

    Returns
    -------
    int
        A port nothing listens on (when this returns).

    Example
    -------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
