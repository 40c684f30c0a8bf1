"""Answer every error with a JSON body; never send a stack trace to a client."""

from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError


def error_body(status: int, title: str, detail) -> dict:
    """Return the one JSON error shape clients get: ``{"error": {"status", "title", "detail"}}``."""
    return {"error": {"status": status, "title": title, "detail": detail}}


def json_error(status: int, title: str, detail, headers=()) -> Response:
    """Return a response with that JSON error body, the status and any extra headers."""
    response = jsonify(error_body(status, title, detail))
    response.status_code = status
    for name, value in headers:
        response.headers[name] = value
    return response


def _http_error(exc: HTTPException) -> Response:
    """Render an HTTP error in the JSON error shape, keeping its headers (Allow, Retry-After)."""
    headers = [
        (name, value)
        for name, value in exc.get_headers()
        if name.lower() not in ("content-type", "content-length")
    ]
    return json_error(exc.code or 500, exc.name, exc.description, headers)


def _unexpected_error(exc: Exception) -> Response:
    """Log an unhandled exception with its traceback and answer a plain 500."""
    current_app.logger.exception("unhandled error: %s", type(exc).__name__)
    return _http_error(InternalServerError())


def init_app(app: Flask) -> None:
    """Register the JSON error handlers."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
