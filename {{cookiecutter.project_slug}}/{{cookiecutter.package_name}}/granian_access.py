"""One access line per request under granian, with the fields gunicorn's line has."""

import logging
import time

from . import create_app
from .logs import write_access_line

access_log = logging.getLogger("granian.access")


def status_of(status: str) -> int | None:
    """Return the code of a WSGI status line such as ``"201 CREATED"``."""
    try:
        return int(status.split(" ", 1)[0])
    except ValueError:
        return None


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    """Return the first value of header ``name`` (any case), or None."""
    return next((value for key, value in headers if key.lower() == name), None)


def log_access(environ: dict, status: int | None, headers: list, started: float) -> None:
    """Log method, path, status, duration and the request id of one answer."""
    method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
    length = header(headers, "content-length")
    fields = {
        "request_id": header(headers, "x-request-id"),
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "remote_addr": environ.get("REMOTE_ADDR"),
        "bytes": int(length) if length and length.isdigit() else None,
    }
    write_access_line(access_log, method, path, status, fields)


def with_access_log(app):
    """Wrap a WSGI app so that each answer it gives writes one access line."""

    def logged(environ, start_response):
        """Call the app, noting the status and headers it starts its answer with."""
        started = time.perf_counter()
        answer = {"status": 500, "headers": []}  # what granian sends if the app raises

        def noting(status, headers, exc_info=None):
            answer.update(status=status_of(status), headers=headers)
            return start_response(status, headers, exc_info)

        try:
            return app(environ, noting)
        finally:
            log_access(environ, answer["status"], answer["headers"], started)

    return logged


def create_logged_app():
    """Build the app and wrap it with the access log (granian's factory target)."""
    return with_access_log(create_app())
