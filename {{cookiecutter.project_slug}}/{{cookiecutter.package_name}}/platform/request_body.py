"""Read request bodies strictly: past MAX_CONTENT_LENGTH refused (never truncated), framing
errors a 400, and JSON errors that say what is wrong."""

from typing import IO, Any, cast

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

    def readinto(self, b: bytearray) -> int | None:  # type: ignore[override]  # as werkzeug's
        """Read into ``b``; refuse a body over the limit or with broken framing."""
        try:
            count = super().readinto(b)
        except Exception as exc:  # a broken connection, or the server's framing errors
            raise BadRequest("The body is incomplete or its chunked framing is broken.") from exc
        if self.tell() == self.limit:
            raise RequestEntityTooLarge()
        return count


class Request(flask.Request):
    """Flask's request, with a strict body limit and JSON errors that say what is wrong."""

    @cached_property
    def stream(self) -> IO[bytes]:
        """Return the body stream; one of unknown length is read as a LimitedBody."""
        limit, environ = self.max_content_length, self.environ
        if limit is not None and self.content_length is None and "wsgi.input_terminated" in environ:
            # Typed as werkzeug's get_input_stream types its LimitedStream: a file of bytes.
            return cast(IO[bytes], LimitedBody(environ["wsgi.input"], limit + 1, is_max=True))
        return get_input_stream(self.environ, max_content_length=limit)

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """Parse the body as JSON; input nested too deeply is invalid JSON, not a RecursionError."""
        try:
            return super().get_json(force, silent, cache)
        except RecursionError:
            return self.on_json_loading_failed(ValueError("it is nested too deeply"))

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """Say why the body is not JSON (Flask hides it outside debug), or not declared JSON."""
        if e is None:
            return super().on_json_loading_failed(e)  # 415: Content-Type is not JSON
        raise BadRequest(f"The request body is not valid JSON: {e}")


def init_app(app: Flask) -> None:
    """Use the strict request class."""
    app.request_class = Request
