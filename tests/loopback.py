"""Loopback helpers shared by every tier and by bench/: the one way to pick a free port."""

import os
import socket

# Ports this process has handed out. The kernel may offer a port again as soon as the probe
# socket closes, before the server it was meant for binds it: two servers started one after the
# other (Caddy's HTTP and HTTPS ports) could be given the same one.
_handed_out: set[int] = set()
# Under xdist each worker takes only the ports whose remainder is its own, so two workers never
# hand out the same port either.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_ATTEMPTS = 1000


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now, never one this process
    handed out before, nor one another xdist worker of this run may hand out."""
    for _ in range(_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out and port % _WORKERS == int(_WORKER) % _WORKERS:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port of this worker's own in {_ATTEMPTS} attempts")
