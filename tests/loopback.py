"""Loopback helpers shared by every tier and by bench/: the one way to pick a free port."""

import os
import random
import socket

# Ports are taken from below Linux's ephemeral range (32768-60999 by default), so no outgoing
# connection is given one between the probe and the server's own bind. Under xdist each worker
# takes its own slice of the range, so two workers never hand out the same port; within a
# process a port is handed out once, since the kernel may let two servers started one after
# the other (Caddy's HTTP and HTTPS ports) bind the same free port.
_LOW, _HIGH = 20_000, 32_000
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
_WORKERS = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
_SLICE = (_HIGH - _LOW) // _WORKERS
_FIRST = _LOW + (_WORKER % _WORKERS) * _SLICE
_handed_out: set[int] = set()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now, never one this process
    handed out before, nor one another xdist worker of this run may hand out."""
    start = random.randrange(_SLICE)
    for step in range(_SLICE):  # bounded: each port of the slice is tried at most once
        port = _FIRST + (start + step) % _SLICE
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {_FIRST}-{_FIRST + _SLICE - 1}")
