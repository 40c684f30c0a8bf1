"""gunicorn workers that answer gunicorn's own refusals in JSON and bound what a slow client holds.

gunicorn refuses some requests itself (bad framing, oversized request lines or headers) before
the app sees them; these workers answer those in the app's JSON error shape with an X-Request-ID
and one access line. The threaded worker reads each request head in its event loop, so a client
that sends half its headers and goes silent holds no thread; it is answered 408 after
REQUEST_READ_TIMEOUT. Reading the body in a thread has the same deadline.
"""

import json
import selectors
import ssl
import time
import uuid
from collections import deque
from datetime import datetime
from functools import partial
from http import HTTPStatus

from gunicorn import util
from gunicorn.http import errors
from gunicorn.http.wsgi import Response
from gunicorn.workers import gthread, sync
from werkzeug.exceptions import RequestTimeout

from .errors import error_body
from .gunicorn_settings import load_gunicorn_settings
from .request_id import HEADER, VALID_ID

# gunicorn's refusals and their status; any other error is the server's fault (500).
REFUSALS = (
    ((errors.InvalidResponseHeader, errors.InvalidResponseHeaderName), 500),
    (RequestTimeout, 408),
    (errors.LimitRequestLine, 414),
    (errors.LimitRequestHeaders, 431),
    (errors.UnsupportedTransferCoding, 501),
    (errors.ExpectationFailed, 417),
    ((errors.ForbiddenProxyRequest, ssl.SSLError), 403),
    (errors.ConfigurationProblem, 500),
    (errors.ParseException, 400),
)
HEAD_ENDS = (b"\r\n\r\n", b"\n\n")
# Real heads are a few KiB. A larger one is read on by a thread, within the same deadline, until
# gunicorn's own limits (request line, header count and size) refuse it.
HEAD_READ_CAP = 64 * 1024


class RequestTimedOut(RequestTimeout):
    """The client did not send its request within REQUEST_READ_TIMEOUT; the app answers 408 too."""

    description = "The request did not arrive whole in time."


def refusal_status(exc: BaseException) -> int:
    """Return the status gunicorn's error ``exc`` deserves."""
    return next((status for kinds, status in REFUSALS if isinstance(exc, kinds)), 500)


def refusal_request_id(req) -> str:
    """Return the client's well-formed X-Request-ID, or a fresh one."""
    headers = getattr(req, "headers", None) or []
    given = next((value for name, value in headers if name.upper() == HEADER.upper()), "")
    return given if VALID_ID.fullmatch(given) else uuid.uuid4().hex


def refusal_bytes(status: int, detail: str, request_id: str) -> bytes:
    """Return a whole HTTP/1.1 response in the app's JSON error shape; it closes the connection."""
    phrase = HTTPStatus(status).phrase
    body = json.dumps(error_body(status, phrase, detail)) + "\n"
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{HEADER}: {request_id}\r\n\r\n"
    )
    return (head + body).encode()


class JsonRefusals:
    """Answer what gunicorn refuses in the app's JSON shape, with an access line, never HTML."""

    def handle_error(self, req, client, addr, exc) -> None:
        """Log the refusal, write its JSON answer and one access line."""
        started = datetime.now()
        addr = addr or ("", -1)
        status = refusal_status(exc)
        if status == 500:
            self.log.exception("Error handling request")
            detail = "The server could not answer this request."
        else:
            self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
            detail = exc.description if isinstance(exc, RequestTimeout) else str(exc)
        req = req or getattr(exc, "req", None)
        request_id = refusal_request_id(req)
        answer = refusal_bytes(status, detail, request_id)
        resp = Response(req, client, self.cfg)
        resp.status = f"{status} {HTTPStatus(status).phrase}"
        resp.headers = [(HEADER, request_id)]
        resp.sent = len(answer)
        self.log.access(resp, req, {"REMOTE_ADDR": addr[0]}, datetime.now() - started)
        try:
            util.write_nonblock(client, answer)
        except OSError:
            self.log.debug("Failed to send error message.")


class DeadlineSocket:
    """A client socket whose reads give up with RequestTimedOut once ``deadline`` has passed."""

    def __init__(self, sock) -> None:
        """Wrap ``sock``; no deadline until one is set."""
        self._sock = sock
        self.deadline: float | None = None

    def __getattr__(self, name: str):
        """Delegate everything but reads to the real socket."""
        return getattr(self._sock, name)

    def recv(self, size: int, flags: int = 0) -> bytes:
        """Read like socket.recv, waiting no later than the deadline; then raise RequestTimedOut.

        A read the caller bounded itself with a shorter socket timeout (draining a connection
        before closing it, say) is left to that timeout. The deadline fires once.
        """
        if self.deadline is not None:
            own = self._sock.gettimeout()
            remaining = self.deadline - time.monotonic()
            if (own is None or own > remaining) and not self._readable_within(remaining):
                self.deadline = None
                raise RequestTimedOut()
        return self._sock.recv(size, flags)

    def _readable_within(self, seconds: float) -> bool:
        """Wait until the socket is readable; False when ``seconds`` pass first."""
        if seconds <= 0:
            return False
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            return bool(selector.select(seconds))


class ThreadWorker(JsonRefusals, gthread.ThreadWorker):
    """gthread, reading request heads in the event loop: a thread serves only whole requests."""

    def __init__(self, *args, **kwargs) -> None:
        """Read REQUEST_READ_TIMEOUT; no connection is reading its head yet."""
        super().__init__(*args, **kwargs)
        self.read_timeout = load_gunicorn_settings().request_read_timeout
        self.reading_heads: deque = deque()

    def enqueue_req(self, conn) -> None:
        """Pass a connection to a thread once its request head is in; wait for it otherwise."""
        if not isinstance(conn.sock, DeadlineSocket):
            conn.sock = DeadlineSocket(conn.sock)
            conn.head = bytearray()
            conn.head_deadline = None
        if self.cfg.is_ssl or self._read_head(conn):
            self._dispatch(conn)
        elif conn.head_deadline is None:
            conn.head_deadline = time.monotonic() + self.read_timeout
            self.reading_heads.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head, conn))

    def _read_head(self, conn) -> bool:
        """Read what has arrived of the head without blocking; True once it is whole (or EOF).

        The head may be whole already with nothing left to read: gunicorn, draining a body the
        app did not read, reads ahead into a pipelined request and hands the connection back.
        """
        conn.sock.setblocking(False)
        try:
            data = conn.sock._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            data = b""
        conn.head += data or b""
        held = conn.parser.unreader.buf.getvalue() if conn.parser else b""
        whole = any(end in held + conn.head for end in HEAD_ENDS)
        return data == b"" or whole or len(conn.head) > HEAD_READ_CAP

    def _on_head(self, conn, _sock) -> None:
        """Read more of a head in the event loop; dispatch the connection once it is whole."""
        if self._read_head(conn):
            self.poller.unregister(conn.sock)
            self.reading_heads.remove(conn)
            self._dispatch(conn)

    def _dispatch(self, conn) -> None:
        """Give the connection to a thread, which must read the rest within the deadline."""
        conn.head_deadline = None
        conn.sock.deadline = time.monotonic() + self.read_timeout
        super().enqueue_req(conn)

    def handle(self, conn):
        """Serve one request, parsing the head read in the event loop first."""
        if conn.head:
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.buf.seek(0, 2)
            conn.parser.unreader.buf.write(bytes(conn.head))
            conn.head = bytearray()
        return super().handle(conn)

    def handle_request(self, req, conn):
        """Run the app; after it the response is written, so reads have no deadline any more."""
        try:
            return super().handle_request(req, conn)
        finally:
            conn.sock.deadline = None

    def murder_pending(self) -> None:
        """Also answer 408 to connections whose head did not arrive within the deadline."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading_heads and self.reading_heads[0].head_deadline <= now:
            conn = self.reading_heads.popleft()
            self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            self.handle_error(None, conn.sock, conn.client, RequestTimedOut())
            conn.close()


class SyncWorker(JsonRefusals, sync.SyncWorker):
    """gunicorn's sync worker, answering refusals in JSON and giving up on a silent client."""

    def __init__(self, *args, **kwargs) -> None:
        """Read REQUEST_READ_TIMEOUT."""
        super().__init__(*args, **kwargs)
        self.read_timeout = load_gunicorn_settings().request_read_timeout

    def handle(self, listener, client, addr) -> None:
        """Serve one connection, whose request must arrive within REQUEST_READ_TIMEOUT."""
        client = DeadlineSocket(client)
        client.deadline = time.monotonic() + self.read_timeout
        super().handle(listener, client, addr)
