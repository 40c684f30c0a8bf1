"""Read request bodies safely: a size limit however the body is framed, and clear JSON errors."""

import flask
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_content_length, get_input_stream


class MalformedBody(BadRequest):
    """The body ended early or its framing (chunked encoding) is broken."""

    description = "The request body is incomplete or its chunked framing is malformed."


class BodyTooLarge(RequestEntityTooLarge):
    """The body is larger than MAX_CONTENT_LENGTH."""

    def __init__(self, limit: int) -> None:
        """Name the limit in the message."""
        super().__init__(f"The request body is larger than {limit} bytes.")


class LimitedBody(LimitedStream):
    """A streamed (chunked) body that is refused, never truncated, past the limit.

    Werkzeug stops reading a stream of unknown length at MAX_CONTENT_LENGTH and hands the first
    bytes on as if they were the whole body; reading one byte further tells the two apart.
    """

    def __init__(self, stream, limit: int) -> None:
        """Read at most ``limit + 1`` bytes from ``stream``."""
        super().__init__(stream, limit + 1, is_max=True)
        self.allowed = limit

    def readinto(self, buffer) -> int | None:
        """Read into ``buffer``; refuse a body over the limit or with broken framing."""
        try:
            count = super().readinto(buffer)
        except HTTPException:
            raise
        except Exception as exc:  # the server's own framing errors (e.g. gunicorn's)
            raise MalformedBody() from exc
        if self.tell() > self.allowed:
            raise BodyTooLarge(self.allowed)
        return count

    def on_disconnect(self, error: Exception | None = None) -> None:
        """Refuse a body whose connection broke before it ended."""
        if error is not None:
            raise MalformedBody()


class Request(flask.Request):
    """Flask's request, with a strict body limit and JSON errors that say what is wrong."""

    @cached_property
    def stream(self):
        """Return the body stream; one of unknown length is limited strictly (see LimitedBody)."""
        limit = self.max_content_length
        streamed = get_content_length(self.environ) is None
        if limit is not None and streamed and "wsgi.input_terminated" in self.environ:
            return LimitedBody(self.environ["wsgi.input"], limit)
        if limit is not None and not streamed and get_content_length(self.environ) > limit:
            raise BodyTooLarge(limit)
        return get_input_stream(self.environ, max_content_length=limit)

    def on_json_loading_failed(self, e: ValueError | None):
        """Say that the body is not JSON, or not declared as JSON."""
        if e is None:
            return super().on_json_loading_failed(e)  # 415: Content-Type is not JSON
        raise BadRequest(f"The request body is not valid JSON: {e}")


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, where input nested too deeply is invalid JSON instead of a RecursionError."""

    def loads(self, s, **kwargs):
        """Parse JSON; turn a recursion overflow into the ValueError of any other bad input."""
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("it is nested too deeply") from None


def init_app(app: Flask) -> None:
    """Use the strict request class and JSON provider."""
    app.request_class = Request
    app.json = JSONProvider(app)
