"""Give every request an id: honour a well-formed X-Request-ID, otherwise make one."""

import os
import re

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _assign_request_id() -> None:
    """Store the incoming id, or a fresh one, on ``g`` for logs and the response."""
    incoming = request.headers.get(HEADER, "")
    g.request_id = incoming if VALID_ID.fullmatch(incoming) else os.urandom(16).hex()


def _return_request_id(response: Response) -> Response:
    """Echo the request id so callers can quote it."""
    response.headers[HEADER] = g.get("request_id", "")
    return response


def init_app(app: Flask) -> None:
    """Register the request-id hooks."""
    app.before_request(_assign_request_id)
    app.after_request(_return_request_id)
