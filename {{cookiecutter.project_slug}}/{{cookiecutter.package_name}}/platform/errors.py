"""Answer every error with a JSON body (or, to a browser asking for a page, the page a feature
registered); never send a stack trace to a client."""

from collections.abc import Callable

from flask import Flask, Response, current_app, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, InternalServerError

Detail = str | list[dict[str, str | None]] | None  # a sentence, or the invalid fields (a 422)
Header = tuple[str, str]
Answer = tuple[Response, int, list[Header]]
# Renders an error (status, title, detail, headers) as a page for the request being answered, or
# returns None when that request wants JSON.
ErrorPage = Callable[[int, str, Detail, tuple[Header, ...]], Response | None]


def show_as_page(app: Flask, render: ErrorPage) -> None:
    """Have ``render`` answer the errors of the requests it takes (a feature with pages takes a
    browser's page requests); every other error keeps its JSON body."""
    app.extensions["error_page"] = render


def json_error(status: int, title: str, detail: Detail, headers: tuple[Header, ...] = ()) -> Answer:
    """Answer the one JSON error shape, ``{"error": {"status", "title", "detail"}}``, unless the
    page renderer a feature registered (show_as_page) takes the request: then its page, with the
    same status and headers."""
    render: ErrorPage | None = current_app.extensions.get("error_page")
    page = render(status, title, detail, headers) if render is not None else None
    if page is not None:
        return page, status, list(headers)
    body = {"error": {"status": status, "title": title, "detail": detail}}
    return jsonify(body), status, list(headers)


def http_error(exc: HTTPException) -> Answer:
    """Render an HTTP error as JSON, keeping its own headers (Allow, Retry-After)."""
    headers = tuple((name, value) for name, value in exc.get_headers() if name != "Content-Type")
    return json_error(exc.code or 500, exc.name, exc.description, headers)


def invalid(exc: ValidationError) -> Answer:
    """Answer input a pydantic model refused with 422, one entry per invalid field."""
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]) or None, "message": error["msg"]}
        for error in exc.errors(include_url=False)
    ]
    return json_error(422, "Unprocessable Content", errors)


def unexpected_error(exc: Exception) -> Answer:
    """Log an unhandled exception with its traceback and answer a plain 500."""
    current_app.logger.exception("unhandled error: %s", type(exc).__name__)
    return http_error(InternalServerError())


def init_app(app: Flask) -> None:
    """Register the JSON error handlers: HTTP errors, refused input (422), the unexpected."""
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(ValidationError, invalid)
    app.register_error_handler(Exception, unexpected_error)
