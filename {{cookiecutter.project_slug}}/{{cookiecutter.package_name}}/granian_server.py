"""Serve the app with granian, configured from the environment and sized to the container.

The image runs ``python -m {{ cookiecutter.package_name }}.granian_server``. Each worker process builds
the app with create_logged_app, which writes one access line per answer.
"""

import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from flask import Flask, Response, g, request
from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import MPServer, MTServer
from pydantic import Field

from . import create_app
from .platform.logs import access_fields, logging_config
from .settings import Settings, SettingsError, load_settings
from .settings.server import ServerSettings

METRICS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"
access_log = logging.getLogger("granian.access")


class GranianSettings(ServerSettings):
    """granian's knobs: the shared server settings, and how workers are recycled."""

    # A fresh worker uses about 60 MiB; 256 is half the container's memory limit, so a leak is
    # caught long before the OOM killer.
    workers_max_rss: int = Field(
        256, ge=0, le=1_048_576, description="respawn a worker past this many MiB; 0: never"
    )
    workers_lifetime: int = Field(
        0,
        ge=0,
        le=31_536_000,
        description="respawn each worker after this many seconds (at least 60); 0: never",
    )
    # Heads are read in Rust, so a silent client holds no thread meanwhile.
    request_read_timeout: float = Field(
        10, gt=0, le=60, description="seconds a client has to send its request head"
    )


def _start_clock() -> None:
    """Note when the request arrived."""
    g.access_started = time.perf_counter()


def _log_access(response: Response) -> Response:
    """Write the answer's access line: method, path and status, with the request id, and the
    fields the app added (platform/logs.py's access_field)."""
    started = g.get("access_started", time.perf_counter())  # unset if a hook answered first
    fields = {
        **access_fields(request.environ),  # the line's own fields, below, keep theirs
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "remote_addr": request.remote_addr,
        "bytes": response.content_length,
    }
    access_log.info("%s %s %s", request.method, request.path, response.status_code, extra=fields)
    return response


def create_logged_app(overrides: dict[str, object] | None = None) -> Flask:
    """Build the app, writing one access line per answer (granian's factory: one per worker)."""
    app = create_app(overrides)
    app.before_request(_start_clock)
    app.after_request(_log_access)  # the last registered runs first: before any other
    return app


def server(settings: GranianSettings) -> MPServer | MTServer:  # Granian: one of them
    """Return a granian server for the app, from ``settings``."""
    lifetime = settings.workers_lifetime
    return Granian(
        f"{__package__}.granian_server:create_logged_app",
        factory=True,  # each worker builds its own app: no connection crosses a fork
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        address=settings.host,
        port=settings.port,
        workers=settings.workers(),
        blocking_threads=settings.web_threads,
        websockets=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(settings.request_read_timeout * 1000))
        ),
        workers_max_rss=settings.workers_max_rss or None,
        workers_lifetime=max(lifetime, 60) if lifetime else None,
        respawn_failed_workers=True,  # a worker that dies is replaced, as under gunicorn
        workers_kill_timeout=settings.graceful_timeout,  # SIGTERM: requests in flight finish
        log_dictconfig=logging_config(
            settings.log_level, settings.log_format, "_granian", "granian.access"
        ),
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,  # create_logged_app writes the access line, with the request id
    )


def main() -> int:
    """Check the settings (exit 1 with one line naming a bad one), then serve until SIGTERM."""
    try:
        settings = load_settings(model=GranianSettings)
        load_settings(Settings)  # the app's own, checked once here: no worker starts to fail on one
    except SettingsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    # Each worker writes its metrics into files of PROMETHEUS_MULTIPROC_DIR, summed by /metrics:
    # a temporary folder of this run when unset, else emptied of an earlier run's files.
    temporary = not os.environ.get(METRICS_FOLDER)
    if temporary:
        os.environ[METRICS_FOLDER] = tempfile.mkdtemp(prefix="metrics-")
    for leftover in Path(os.environ[METRICS_FOLDER]).glob("*.db"):
        leftover.unlink()
    # prometheus_client chose its multiprocess mode when this process imported it: with a folder
    # named before the start (as compose names one), workers start as the interpreter's default
    # (fork, on Linux before 3.14) and keep the imported modules. A temporary folder was named
    # after that import: workers then start as new interpreters, which import it and find it.
    if temporary:
        multiprocessing.set_start_method("spawn", force=True)
    try:
        server(settings).serve()
    finally:
        if temporary:
            shutil.rmtree(os.environ[METRICS_FOLDER], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
