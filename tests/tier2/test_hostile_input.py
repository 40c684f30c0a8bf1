"""Tier 2: input that reaches the parser or the database never causes a 500, nor a truncated write.

Each request goes to gunicorn directly and, where nginx is selected, through nginx too. Every
answer is a JSON 4xx naming the problem, and the service logs no ERROR for any of it.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests

from .auth import raw_header
from .deployment import fresh_secret
from .test_served import TIMEOUT, assert_json_error, each

# It only sends requests and starts a refused instance; it counts rows and log lines since its own
# marks: the combination's shared deployment serves it (conftest.py).
SHARE_DEPLOYMENT = True
MAX_CONTENT_LENGTH = 1024 * 1024
CHUNKED = "Transfer-Encoding: chunked\r\n"


def entries(deployment) -> list[str]:
    """Return the base URLs a client may reach: gunicorn, and nginx when selected."""
    urls = [deployment.service.url]
    if deployment.nginx is not None:
        urls.append(deployment.nginx.url)
    return urls


def errors_logged(deployment, since: int) -> list[str]:
    """Return the service's log lines at ERROR or above written after ``since``."""
    lines = [json.loads(line) for line in deployment.service.lines(since) if line.strip()]
    return [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]


def raw_exchange(port: int, request: bytes, timeout: float = TIMEOUT) -> bytes:
    """Send raw bytes to 127.0.0.1:port and return what comes back until the peer closes."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before it has read everything
        for _ in range(1000):
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
    return answer


def response_of(raw: bytes) -> tuple[int, dict, dict]:
    """Split a raw HTTP/1.1 answer into status, headers (lower-case names) and JSON body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    return int(status_line.split()[1]), headers, json.loads(body)


def chunked(body: bytes, piece: int = 65536) -> bytes:
    """Encode ``body`` with chunked transfer coding."""
    out = b""
    for start in range(0, len(body), piece):
        part = body[start : start + piece]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


def post_raw(port: int, body: bytes, headers: str) -> tuple[int, dict, dict]:
    """POST /api/items with a raw body and extra header lines; return the parsed answer."""
    head = (
        f"POST /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\n{headers}\r\n"
    ).encode()
    return response_of(raw_exchange(port, head + body))


def ports(deployment) -> list[int]:
    """Return the ports of gunicorn, and of nginx when selected."""
    return [int(url.rsplit(":", 1)[1]) for url in entries(deployment)]


@each()
def test_json_nested_thousands_deep_is_a_400_saying_so(deployment):
    """It answers 400 JSON saying the body is nested too deeply, with no ERROR logged."""
    since = deployment.service.mark()
    body = "[" * 50_000 + "]" * 50_000
    for entry in entries(deployment):
        response = requests.post(
            f"{entry}/api/items",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT,
        )
        assert "nested too deeply" in assert_json_error(response, 400)["error"]["detail"]
    assert errors_logged(deployment, since) == []


@each()
def test_invalid_json_says_so(deployment):
    """It answers 400 saying the body is not valid JSON, not Werkzeug's generic sentence."""
    for entry in entries(deployment):
        response = requests.post(
            f"{entry}/api/items",
            data="{not json",
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT,
        )
        assert "not valid JSON" in assert_json_error(response, 400)["error"]["detail"]


@each()
def test_ids_and_offsets_outside_the_columns_range_are_4xx(deployment):
    """It answers 404 for ids no column can hold or not in ASCII digits, 422 for huge offsets."""
    since = deployment.service.mark()
    created = requests.post(
        f"{deployment.entry}/api/items", json={"name": "one"}, timeout=TIMEOUT
    ).json()
    digit = chr(0x0660 + created["id"] % 10)  # the same digit in ARABIC-INDIC script
    for entry in entries(deployment):
        for item_id in (2**31, 2**63, 10**40, digit):
            response = requests.get(f"{entry}/api/items/{item_id}", timeout=TIMEOUT)
            assert_json_error(response, 404)
        for offset in (2**31, 2**63, 10**40):
            response = requests.get(f"{entry}/api/items?offset={offset}", timeout=TIMEOUT)
            body = assert_json_error(response, 422)
            assert body["error"]["detail"][0]["field"] == "offset"
    assert errors_logged(deployment, since) == []


@each()
def test_text_no_database_can_store_is_a_422(deployment):
    """It refuses NUL characters and lone surrogates with 422 naming the field; stores nothing."""
    since = deployment.service.mark()
    before = deployment.rows()
    for entry in entries(deployment):
        for body in ('{"name": "a\\u0000b"}', '{"name": "\\ud800"}'):
            response = requests.post(
                f"{entry}/api/items",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=TIMEOUT,
            )
            assert assert_json_error(response, 422)["error"]["detail"][0]["field"] == "name"
    assert deployment.rows() == before
    assert errors_logged(deployment, since) == []


@each()
def test_malformed_chunked_framing_is_a_400(deployment):
    """It answers 400 JSON to a chunked body whose framing is broken, with no ERROR logged.

    granian hands the app an empty body when the framing breaks (it decodes chunks in Rust and
    drops a body it cannot decode), so there the app answers what an empty body gets: 400 or 422,
    in JSON, storing nothing.
    """
    allowed = {400} if deployment.combo.selected("app_server=gunicorn") else {400, 422}
    before = deployment.rows()
    since = deployment.service.mark()
    broken = [
        b"zz\r\n{}\r\n0\r\n\r\n",  # a chunk size that is not hexadecimal
        b"2\r\n{}XX0\r\n\r\n",  # a chunk missing its CRLF terminator
    ]
    for port in ports(deployment):
        for body in broken:
            status, headers, answer = post_raw(port, body, raw_header(deployment) + CHUNKED)
            assert status in allowed, answer
            assert answer["error"]["status"] == status
            assert headers.get("x-request-id")
    assert errors_logged(deployment, since) == []
    assert deployment.rows() == before


@each()
def test_a_chunked_body_over_the_limit_is_a_413_never_truncated(deployment):
    """It refuses a chunked body over MAX_CONTENT_LENGTH with 413 and stores nothing of it.

    The JSON object is complete within the limit and padded past it: an app that stopped
    reading at the limit would store it with a 201.
    """
    name = f"cut-{uuid.uuid4().hex[:8]}"
    document = json.dumps({"name": name}).encode()
    body = document + b" " * (MAX_CONTENT_LENGTH + 100 - len(document))
    for port in ports(deployment):
        status, _, answer = post_raw(port, chunked(body), raw_header(deployment) + CHUNKED)
        assert status == 413, answer
        assert answer["error"]["status"] == 413
    assert deployment.query("SELECT count(*) FROM items WHERE name = ?", name) == [(0,)]

    fits = document + b" " * (MAX_CONTENT_LENGTH - len(document))
    for port in ports(deployment):
        status, _, answer = post_raw(port, chunked(fits), raw_header(deployment) + CHUNKED)
        assert status == 201, answer
    assert deployment.query("SELECT count(*) FROM items WHERE name = ?", name) == [
        (len(ports(deployment)),)
    ]


@each()
def test_production_refuses_a_short_secret(deployment):
    """It exits 1 with one line naming SECRET_KEY when the secret is shorter than 32 characters."""
    code, output = deployment.failed_start("weak-secret", SECRET_KEY=fresh_secret()[:31])
    assert code == 1
    assert "Error: Invalid settings: SECRET_KEY is shorter than 32 characters" in output
    assert "Traceback" not in output  # the server said it in one line, before any worker


@pytest.fixture(autouse=True)
def _service_survives(deployment):
    """Check the service is still running after each test: no input may take it down."""
    yield
    assert deployment.service.process.poll() is None, deployment.service.output()
