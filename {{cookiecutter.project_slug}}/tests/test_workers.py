"""gunicorn's own refusals are answered in JSON, and reads give up at the request's deadline."""

import io
import json
import socket
import time
from types import SimpleNamespace

import pytest
from gunicorn.http import errors

from {{ cookiecutter.package_name }}.workers import (
    DeadlineSocket,
    RequestTimedOut,
    ThreadWorker,
    refusal_bytes,
    refusal_request_id,
    refusal_status,
)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.InvalidHeader("CONTENT-LENGTH"), 400),
        (errors.InvalidRequestLine("GET"), 400),
        (errors.LimitRequestLine(5000, 4094), 414),
        (errors.LimitRequestHeaders("too many"), 431),
        (errors.UnsupportedTransferCoding("bogus"), 501),
        (errors.InvalidResponseHeader("X-Bad"), 500),
        (RequestTimedOut(), 408),
        (RuntimeError("a bug"), 500),
    ],
)
def test_refusal_status(exc, status):
    """It gives each gunicorn refusal its status, and anything unexpected a 500."""
    assert refusal_status(exc) == status


def test_refusal_is_a_whole_json_response_that_closes():
    """It writes the app's error shape with the request id, a length and Connection: close."""
    head, _, body = refusal_bytes(431, "too large", "rid-1").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Connection: close" in head and b"X-Request-ID: rid-1" in head
    assert b"Content-Length: %d" % len(body) in head
    assert json.loads(body) == {
        "error": {"status": 431, "title": "Request Header Fields Too Large", "detail": "too large"}
    }


class _Request:
    """A parsed request head, as gunicorn hands it over: upper-case header names."""

    def __init__(self, request_id: str) -> None:
        """Carry one X-Request-ID header."""
        self.headers = [("X-REQUEST-ID", request_id)]


def test_refusal_echoes_only_a_well_formed_request_id():
    """It echoes a well-formed X-Request-ID and replaces anything else."""
    assert refusal_request_id(_Request("abc-123")) == "abc-123"
    assert refusal_request_id(_Request("bad id\x7f")) != "bad id\x7f"
    assert len(refusal_request_id(None)) == 32


def test_reads_give_up_at_the_deadline():
    """It raises RequestTimedOut when nothing arrives before the deadline, and reads otherwise."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader = DeadlineSocket(ours)
        reader.deadline = time.monotonic() + 0.3
        theirs.sendall(b"GET")
        assert reader.recv(10) == b"GET"
        started = time.monotonic()
        with pytest.raises(RequestTimedOut):
            reader.recv(10)
        assert 0.1 < time.monotonic() - started < 2
        reader.deadline = None
        theirs.sendall(b" /")
        assert reader.recv(10) == b" /"


def test_a_shorter_timeout_of_the_caller_wins_and_the_deadline_fires_once():
    """It leaves a read with its own shorter timeout to that timeout, and raises only once."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader = DeadlineSocket(ours)
        reader.deadline = time.monotonic() + 5
        ours.settimeout(0.1)
        with pytest.raises(TimeoutError):
            reader.recv(10)
        ours.settimeout(None)
        reader.deadline = time.monotonic()
        with pytest.raises(RequestTimedOut):
            reader.recv(10)
        ours.settimeout(0.1)
        with pytest.raises(TimeoutError):
            reader.recv(10)


def test_a_head_read_ahead_by_a_body_drain_is_whole_with_nothing_left_to_read():
    """It serves a pipelined request gunicorn already buffered, instead of waiting for more bytes.

    Found by fuzzing: a 415 or 429 leaves its body unread; gunicorn's drain reads on into the
    next request, and the connection then waited for bytes the client would never send.
    """
    ours, theirs = socket.socketpair()
    with ours, theirs:
        unreader = SimpleNamespace(buf=io.BytesIO(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"))
        conn = SimpleNamespace(sock=DeadlineSocket(ours), head=bytearray())
        conn.parser = SimpleNamespace(unreader=unreader)
        assert ThreadWorker._read_head(None, conn) is True
        unreader.buf = io.BytesIO(b"GET /healthz HTTP/1.1\r\n")
        assert ThreadWorker._read_head(None, conn) is False
        theirs.sendall(b"Host: a\r\n\r\n")
        assert ThreadWorker._read_head(None, conn) is True
