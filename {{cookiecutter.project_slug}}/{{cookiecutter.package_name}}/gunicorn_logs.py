"""gunicorn's access log: one structured line per request, in the app's log format."""

from gunicorn.glogging import Logger

from .logs import write_access_line


def status_code(resp) -> int | None:
    """Return a gunicorn response's status code; its own error answers carry only ``status``."""
    code = getattr(resp, "status_code", None)
    if code is None:
        try:
            code = int(str(resp.status).split()[0])
        except (ValueError, IndexError):
            return None
    return code


class GunicornLogger(Logger):
    """Write gunicorn's access log as one structured line per request."""

    def access(self, resp, req, environ, request_time) -> None:
        """Log method, path, status, duration and the request id of one answer.

        ``req`` is None when gunicorn could not parse the request at all.
        """
        if not self.access_log_enabled:
            return
        request_id = next(
            (value for name, value in resp.headers if name.lower() == "x-request-id"), None
        )
        method, path = getattr(req, "method", None), getattr(req, "path", None)
        status = status_code(resp)
        fields = {
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "bytes": getattr(resp, "sent", None),
        }
        write_access_line(self.access_log, method, path, status, fields)
