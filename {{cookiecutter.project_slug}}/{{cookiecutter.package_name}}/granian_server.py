"""Serve the app with granian, configured from the environment and sized to the container.

The image runs ``python -m {{ cookiecutter.package_name }}.granian_server``. Each worker process builds
the app and wraps it with granian_access.py, so every request gets one JSON access line.
"""

import multiprocessing
import sys

from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from pydantic import Field

from . import metrics_folder
from .logs import logging_config
from .server import ServerSettings
from .settings import SettingsError, load_settings

# granian reads a request head for at most 60 s (its own upper bound).
HEAD_TIMEOUT_CAP_MS = 60000
# granian's own loggers, routed through the app's handler so every line has the app's format.
GRANIAN_LOGGERS = ("_granian", "granian.access")


class GranianSettings(ServerSettings):
    """granian's knobs: the shared server settings, and how workers are recycled."""

    # Respawn a worker that outgrows this many MiB (0: never). A fresh worker uses about 60;
    # 256 is half the container's memory limit, so a leak is caught long before the OOM killer.
    workers_max_rss: int = Field(256, ge=0)
    # Respawn each worker after this many seconds (0: never; granian needs at least 60).
    workers_lifetime: int = Field(0, ge=0)
    # Seconds a client has to send its request head; then granian closes the connection.
    # Heads are read in Rust, so a silent client holds no thread meanwhile.
    request_read_timeout: float = Field(10, gt=0, le=HEAD_TIMEOUT_CAP_MS / 1000)

    def head_timeout_ms(self) -> int:
        """Return REQUEST_READ_TIMEOUT in milliseconds."""
        return max(1, round(self.request_read_timeout * 1000))


def logging_dict(settings: GranianSettings) -> dict:
    """Return the app's logging config, granian's loggers included."""
    config = logging_config(settings.log_level, settings.log_format)
    for name in GRANIAN_LOGGERS:
        config["loggers"][name] = {"level": settings.log_level, "handlers": [], "propagate": True}
    return config


def server(settings: GranianSettings) -> Granian:
    """Return a granian server for the app, from ``settings``."""
    lifetime = settings.workers_lifetime
    return Granian(
        f"{__package__}.granian_access:create_logged_app",
        factory=True,  # each worker builds its own app: no connection crosses a fork
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        address=settings.host,
        port=settings.port,
        workers=settings.workers(),
        blocking_threads=settings.web_threads,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=settings.head_timeout_ms()),
        workers_max_rss=settings.workers_max_rss or None,
        workers_lifetime=max(lifetime, 60) if lifetime else None,
        respawn_failed_workers=True,  # a worker that dies is replaced, as under gunicorn
        workers_kill_timeout=settings.graceful_timeout,  # SIGTERM: requests in flight finish
        log_dictconfig=logging_dict(settings),
        log_level=settings.log_level.lower(),
        log_access=False,  # granian_access.py writes the access line, with the request id
    )


def main() -> int:
    """Load the settings (the server's and the app's), then serve until SIGTERM.

    A bad setting ends it at once: exit 1, and one line on STDERR naming the variable.
    """
    try:
        settings = load_settings(model=GranianSettings)
        load_settings()  # the app's own, checked once here: no worker starts to fail on one
    except SettingsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    metrics_folder.start_server(settings.prometheus_multiproc_dir)
    # Workers start as new interpreters, not forks of this one: each imports prometheus_client
    # anew and finds the folder named above (a fork would keep this process's import, made
    # before the folder was named, and count in memory alone).
    multiprocessing.set_start_method("spawn", force=True)
    try:
        server(settings).serve()
    finally:
        metrics_folder.stop_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
