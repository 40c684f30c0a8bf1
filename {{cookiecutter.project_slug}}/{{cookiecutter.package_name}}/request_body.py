"""Read request bodies strictly: past MAX_CONTENT_LENGTH refused (never truncated), framing
errors a 400, and JSON errors that say what is wrong."""

import flask
from flask import Flask
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream


class LimitedBody(LimitedStream):
    """A streamed (chunked) body, read to one byte past MAX_CONTENT_LENGTH (``limit`` - 1).

    Werkzeug's own stops reading a stream of unknown length at MAX_CONTENT_LENGTH and hands the
    first bytes on as if they were the whole body; the byte past the limit tells the two apart.
    """

    def readinto(self, buffer) -> int | None:
        """Read into ``buffer``; refuse a body over the limit or with broken framing."""
        try:
            count = super().readinto(buffer)
        except Exception as exc:  # a broken connection, or the server's framing errors
            raise BadRequest("The body is incomplete or its chunked framing is broken.") from exc
        if self.tell() == self.limit:
            raise RequestEntityTooLarge()
        return count


class Request(flask.Request):
    """Flask's request, with a strict body limit and JSON errors that say what is wrong."""

    @cached_property
    def stream(self):
        """Return the body stream; one of unknown length is read as a LimitedBody."""
        limit = self.max_content_length
        if self.content_length is None and "wsgi.input_terminated" in self.environ:
            return LimitedBody(self.environ["wsgi.input"], limit + 1, is_max=True)
        return get_input_stream(self.environ, max_content_length=limit)

    def get_json(self, *args, **kwargs):
        """Parse the body as JSON; input nested too deeply is invalid JSON, not a RecursionError."""
        try:
            return super().get_json(*args, **kwargs)
        except RecursionError:
            return self.on_json_loading_failed(ValueError("it is nested too deeply"))

    def on_json_loading_failed(self, e: ValueError | None):
        """Say why the body is not JSON (Flask hides it outside debug), or not declared JSON."""
        if e is None:
            return super().on_json_loading_failed(e)  # 415: Content-Type is not JSON
        raise BadRequest(f"The request body is not valid JSON: {e}")


def init_app(app: Flask) -> None:
    """Use the strict request class."""
    app.request_class = Request
