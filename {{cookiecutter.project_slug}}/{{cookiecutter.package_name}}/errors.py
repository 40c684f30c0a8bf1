"""Answer every error with a JSON body; never send a stack trace to a client."""

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError


def _http_error(exc: HTTPException):
    """Render an HTTP error as ``{"error": {"status", "title", "detail"}}``."""
    body = {"error": {"status": exc.code, "title": exc.name, "detail": exc.description}}
    response = jsonify(body)
    response.status_code = exc.code or 500
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _unexpected_error(exc: Exception):
    """Log an unhandled exception with its traceback and answer a plain 500."""
    current_app.logger.exception("unhandled error: %s", type(exc).__name__)
    return _http_error(InternalServerError())


def init_app(app: Flask) -> None:
    """Register the JSON error handlers."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
