"""Tier 2: hostile HTTP at the edge, against the app server directly and through nginx.

Requests nginx refuses itself get an answer in the app's JSON error shape with an X-Request-ID
and one JSON access line; gunicorn's own refusals get gunicorn's stock answer (its status, never
a 500) and the service goes on; behind nginx, gunicorn refuses nothing nginx passes on; slow
clients cannot starve a service behind nginx or served by granian (the generated docs tell
owners not to expose gunicorn to untrusted clients without a buffering proxy); forwarded headers
are trusted only from the configured proxies; a slow PostgreSQL statement is cancelled.

granian refuses requests in Rust, before any Python runs: its answer is its own (a status with an
empty body and Connection: close, no request id, no access line). There the contract is an
answer with the right status, never a 500, and a service that goes on serving; what HTTP lets a
server accept (duplicate equal Content-Lengths, chunked over Content-Length) reaches the app and
gets its JSON. granian bounds request heads, not bodies: slow bodies are shown harmless through
nginx, which buffers them and drops a body that stops arriving, unanswered (the generated docs
say so).
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from .auth import raw_header
from .servers import Nginx, free_port, loopback_nginx_config, owned_dir, whole_lines
from .servers import wait_until as wait_for
from .test_served import combos, each

# Its nginx and app-server instances are its own, stopped after it; it reads log lines since its
# marks, and every line of every instance (which must all be JSON, whoever wrote them): the
# combination's shared deployment serves it (conftest.py).
SHARE_DEPLOYMENT = True
TIMEOUT = 10
# Requests gunicorn refuses itself, with the status it must answer directly (gunicorn's own
# answer: a short HTML body and Connection: close).
REFUSED_BY_GUNICORN = {
    "duplicate Content-Length": (
        b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        400,
    ),
    "signed Content-Length": (
        b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Length: +2\r\n\r\n{}",
        400,
    ),
    "Content-Length and Transfer-Encoding": (
        b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "unknown transfer coding": (
        b"POST /api/items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: bogus\r\n\r\n",
        501,
    ),
    "duplicate Host": (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "request line without a version": (b"GET\r\n\r\n", 400),
    "unknown HTTP version": (b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", 400),
    "request line over gunicorn's limit": (
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        414,
    ),
    "too many header fields": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-F%d: 1\r\n" % number for number in range(120))
        + b"\r\n",
        431,
    ),
}
# Requests granian refuses itself, with the status it answers (an empty body, Connection: close).
REFUSED_BY_GRANIAN = {
    "signed Content-Length": (REFUSED_BY_GUNICORN["signed Content-Length"][0], 400),
    "unknown transfer coding": (REFUSED_BY_GUNICORN["unknown transfer coding"][0], 400),
    "request line without a version": (b"GET\r\n\r\n", 400),
    "unknown HTTP version": (b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", 400),
    "too many header fields": (REFUSED_BY_GUNICORN["too many header fields"][0], 431),
    "head over granian's buffer": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 2_000_000 + b"\r\n\r\n",
        431,
    ),
}
# Requests gunicorn refuses that HTTP lets a server accept; granian passes them to the app.
ACCEPTED_BY_GRANIAN = (
    "duplicate Content-Length",
    "Content-Length and Transfer-Encoding",
    "duplicate Host",
    "request line over gunicorn's limit",
)
# Requests nginx refuses itself (it never passes them on), with the status it must answer.
REFUSED_BY_NGINX = {
    "request line without a version": (b"GET\r\n\r\n", 400),
    "duplicate Host": (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "unknown transfer coding": (
        b"POST /api/items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: bogus\r\n\r\n",
        501,
    ),
    "unknown HTTP version": (b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", 505),
    "header over nginx's buffer": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        431,
    ),
    "request line over nginx's buffer": (
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        414,
    ),
    "body over the limit": (
        b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000000\r\n\r\n{",
        413,
    ),
}
SLOW_SOCKETS = 30
SLOW_SECONDS = 10


# --------------------------------------------------------------------------- raw HTTP


def exchange(port: int, data: bytes, seconds: float = 8, trickle: bytes = b"", over: float = 0):
    """Send ``data``, then ``trickle`` byte by byte over ``over`` s; return the answer."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(data)
        for index in range(len(trickle)):
            time.sleep(over / len(trickle))
            sock.sendall(trickle[index : index + 1])
        deadline = time.monotonic() + seconds
        for _ in range(1000):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or response_is_whole(answer):
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
    return answer


def response_is_whole(answer: bytes) -> bool:
    """Say whether ``answer`` holds a whole response with a Content-Length."""
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    length = headers_of(head).get("content-length")
    return length is not None and len(body) >= int(length)


def headers_of(head: bytes) -> dict[str, str]:
    """Return the headers of a response head, names in lower case."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    fields = [line.partition(":") for line in lines]
    return {name.strip().lower(): value.strip() for name, _, value in fields}


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split a raw response into status, headers and body."""
    head, found, body = answer.partition(b"\r\n\r\n")
    assert found, f"no whole response head: {answer[:300]!r}"
    return int(head.split(b" ", 2)[1]), headers_of(head), body


def assert_json_refusal(answer: bytes, status: int) -> str:
    """Assert a JSON error of ``status`` with an X-Request-ID; return that id."""
    code, headers, body = parse(answer)
    assert code == status, answer[:500]
    assert headers["content-type"].startswith("application/json"), headers
    assert json.loads(body)["error"]["status"] == status, body
    assert headers.get("x-request-id"), headers
    return headers["x-request-id"]


def json_lines(path_or_lines) -> list[dict]:
    """Parse lines (bytes must be UTF-8) as JSON objects, one per line."""
    return [json.loads(line) for line in path_or_lines if line.strip()]


def nginx_lines(deployment) -> list[dict]:
    """Return nginx's access lines; each must be UTF-8 JSON."""
    return json_lines(whole_lines(deployment.nginx.stdout))


# --------------------------------------------------------------------------- class 2 and 3


# gunicorn's limits that gunicorn.conf.py lifts behind nginx, whose own buffers bound them first.
LIFTED_BEHIND_NGINX = ("request line over gunicorn's limit", "too many header fields")


@each(without=("app_server=granian",))
def test_requests_gunicorn_refuses_get_its_status_and_the_service_goes_on(deployment):
    """It answers each request gunicorn refuses with gunicorn's status and Connection: close,
    never a 500, and serves the next request; behind nginx its line and header limits are lifted."""
    service = deployment.service
    for name, (data, status) in REFUSED_BY_GUNICORN.items():
        if deployment.nginx is not None and name in LIFTED_BEHIND_NGINX:
            continue
        code, headers, _ = parse(exchange(service.port, data))
        assert (code, headers.get("connection")) == (status, "close"), name
        assert requests.get(f"{service.url}/healthz", timeout=TIMEOUT).ok, name


@each("use_nginx")
def test_requests_nginx_refuses_get_a_json_answer_and_a_json_access_line(deployment):
    """It answers what nginx refuses itself in JSON with an X-Request-ID, and logs it as JSON."""
    for name, (data, status) in REFUSED_BY_NGINX.items():
        rid = assert_json_refusal(exchange(deployment.nginx.port, data), status)

        def logged(rid=rid) -> list[dict]:
            return [line for line in nginx_lines(deployment) if line["request_id"] == rid]

        wait_for(logged, 5, f"nginx's access line of {name}")
        assert logged()[0]["status"] == status, (name, logged())


@each("app_server=granian")
def test_requests_granian_refuses_get_its_status_and_the_service_goes_on(deployment):
    """It answers each request granian refuses with its 4xx and Connection: close, never a 500."""
    port = deployment.service.port
    for name, (data, status) in REFUSED_BY_GRANIAN.items():
        code, headers, _ = parse(exchange(port, data))
        assert (code, headers.get("connection")) == (status, "close"), name
        assert requests.get(f"{deployment.service.url}/healthz", timeout=TIMEOUT).ok, name


@each("app_server=granian")
def test_requests_granian_accepts_as_http_allows_get_the_apps_json_and_an_access_line(deployment):
    """It passes what HTTP lets a server accept to the app: its JSON, an access line, no 500."""
    service = deployment.service
    for name in ACCEPTED_BY_GRANIAN:
        data = REFUSED_BY_GUNICORN[name][0]
        since = service.mark()
        code, headers, _ = parse(exchange(service.port, data))
        assert code < 500 and headers["content-type"].startswith("application/json"), name
        rid = headers["x-request-id"]

        def access(since=since, rid=rid) -> list[dict]:
            lines = json_lines(service.lines(since))
            return [ln for ln in lines if ln.get("logger") == deployment.access_logger]

        wait_for(access, 5, f"the access line of {name}")
        assert [(line["status"], line["request_id"]) for line in access()] == [(code, rid)], name


@each("use_nginx", without=("app_server=granian",))
def test_what_nginx_passes_on_gunicorn_serves_instead_of_refusing_in_html(deployment):
    """It serves through nginx a request line and a header count past gunicorn's defaults
    (gunicorn.conf.py lifts them behind nginx) with the app's JSON answers, not gunicorn's HTML."""
    long_line = b"GET /api/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    many_headers = REFUSED_BY_GUNICORN["too many header fields"][0]
    for data, status in ((long_line, 404), (many_headers, 200)):
        code, headers, body = parse(exchange(deployment.nginx.port, data))
        assert code == status, body[:300]
        assert headers["content-type"].startswith("application/json"), headers


@each("use_nginx")
def test_the_apps_own_errors_pass_through_nginx_untouched(deployment):
    """It passes the app's JSON 404 and 405 through nginx byte for byte."""
    for method, path in (("GET", "/no/such/route"), ("DELETE", "/api/items")):
        direct = requests.request(method, f"{deployment.service.url}{path}", timeout=TIMEOUT)
        proxied = requests.request(method, f"{deployment.nginx.url}{path}", timeout=TIMEOUT)
        assert proxied.status_code == direct.status_code
        assert proxied.content == direct.content


class SilentUpstream:
    """A loopback server that accepts connections and never answers; closed on exit."""

    def __init__(self) -> None:
        """Listen on a free loopback port."""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        """Accept at most a few connections and hold them open."""
        for _ in range(20):
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def __enter__(self) -> SilentUpstream:
        """Start accepting."""
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        """Close the listener and every held connection."""
        self.listener.close()
        for connection in self.held:
            connection.close()
        self.thread.join(timeout=5)


@each("use_nginx")
def test_nginx_limits_each_clients_api_requests_with_a_json_429(deployment):
    """It answers a client past NGINX_API_RATE and its burst with nginx's own JSON 429 and a
    Retry-After, while the app's other paths stay uncounted and the API serves again after."""
    nginx = start_nginx_for(
        deployment,
        "nginx-api-rate",
        deployment.service.port,
        NGINX_API_RATE="2r/s",
        NGINX_API_BURST="3",
    )
    try:
        answers = [requests.get(f"{nginx.url}/api/items", timeout=TIMEOUT) for _ in range(8)]
        statuses = [answer.status_code for answer in answers]
        assert statuses[:4] == [200] * 4, statuses  # the first, and the burst of 3 more
        assert 429 in statuses[4:], statuses
        refused = answers[statuses.index(429)]
        assert refused.headers["Content-Type"].startswith("application/json")
        assert refused.json()["error"] == {
            "status": 429,
            "title": "Too Many Requests",
            "detail": "Too many requests from this address; slow down.",
        }
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["X-Request-ID"]
        assert "X-RateLimit-Limit" not in refused.headers  # nginx's own, not the app's
        assert all(
            requests.get(f"{nginx.url}/healthz", timeout=TIMEOUT).status_code == 200
            for _ in range(8)
        )
        time.sleep(2.5)  # the bucket drains at 2 a second
        assert requests.get(f"{nginx.url}/api/items", timeout=TIMEOUT).status_code == 200
    finally:
        nginx.stop()


def start_nginx_for(deployment, name: str, upstream_port: int, **values: str) -> Nginx:
    """Start another nginx from the generated template, in front of ``upstream_port``."""
    port = free_port()
    config = loopback_nginx_config(deployment.bake, port, upstream_port, **values)
    return Nginx(deployment.root / name, config, port).start()


def healthz_through_nginx(deployment, name: str, upstream_port: int, **values: str):
    """Return nginx's answer to GET /healthz in front of ``upstream_port``; stop that nginx."""
    nginx = start_nginx_for(deployment, name, upstream_port, **values)
    try:
        return requests.get(f"{nginx.url}/healthz", timeout=TIMEOUT)
    finally:
        nginx.stop()


class RecordingUpstream:
    """A loopback HTTP server that answers one GET 200 in JSON, keeping the request's headers
    (names lower-cased); closed on exit."""

    def __init__(self) -> None:
        """Listen on a free loopback port."""
        seen: list[dict[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append({name.lower(): value for name, value in self.headers.items()})
                body = b'{"status":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                """Keep the test's output quiet."""

        self.seen = seen
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = TIMEOUT  # handle_request waits at most this long
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.handle_request, daemon=True)

    def __enter__(self) -> RecordingUpstream:
        """Start answering."""
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        """Stop listening."""
        self.thread.join(timeout=TIMEOUT + 5)
        self.server.server_close()


SPOOFED_FORWARDING = {
    "Host": "shop.example:8443",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "1",
    "X-Real-IP": "198.51.100.7",
}


def forwarded_by_nginx(deployment) -> dict[str, str]:
    """Send SPOOFED_FORWARDING to another nginx from the template; return what its upstream got.

    Whatever the bake, nginx passes the client's Host and a request id, and drops a client's
    X-Forwarded-Host, X-Forwarded-Port and X-Real-IP.
    """
    with RecordingUpstream() as upstream:
        nginx = start_nginx_for(deployment, "nginx-recorded", upstream.port)
        try:
            response = requests.get(
                f"{nginx.url}/healthz", headers=SPOOFED_FORWARDING, timeout=TIMEOUT
            )
        finally:
            nginx.stop()
    assert response.status_code == 200
    (received,) = upstream.seen
    assert received["host"] == "shop.example:8443"
    assert received["x-request-id"] == response.headers["X-Request-ID"]
    for dropped in ("x-forwarded-host", "x-forwarded-port", "x-real-ip"):
        assert dropped not in received, dropped
    return received


@each("use_nginx", without=("use_https",))
def test_nginx_passes_on_only_the_forwarding_headers_the_app_reads(deployment):
    """It appends its hop to X-Forwarded-For and -Proto, passes the client's Host and a request
    id, and drops a client's X-Forwarded-Host, X-Forwarded-Port and X-Real-IP."""
    received = forwarded_by_nginx(deployment)
    assert received["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert received["x-forwarded-proto"] == "https, http"


@each("use_https")
def test_behind_caddy_nginx_takes_the_client_address_from_x_forwarded_for(deployment):
    """It takes the client's address from the X-Forwarded-For of Caddy (its NGINX_REAL_IP_FROM,
    127.0.0.1 here) and passes on that address, then Caddy's, so the app (TRUSTED_PROXIES=2)
    reads the address Caddy saw; the other headers as without HTTPS. A client's own
    X-Forwarded-For never reaches nginx through Caddy: Caddy replaces it (tests/tier2/test_https.py
    proves it end to end)."""
    received = forwarded_by_nginx(deployment)
    assert received["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert received["x-forwarded-proto"] == "https, http"


@each("use_nginx", without=("use_https",))
def test_a_proxy_in_front_of_nginx_is_believed_with_trusted_proxies_2(deployment):
    """It logs the address a load balancer in front of nginx saw, one more hop, with
    TRUSTED_PROXIES=2 (HTTPS bakes: nginx itself takes it from Caddy, test_https.py)."""
    service = deployment.extra_service("two-hops", TRUSTED_PROXIES="2")
    nginx = start_nginx_for(deployment, "nginx-two-hops", service.port)
    try:
        assert remote_addr_logged(service, nginx.port, "203.0.113.9") == "203.0.113.9"
    finally:
        nginx.stop()


def remote_addr_logged(
    service, port: int, forwarded_for: str, source: str = "127.0.0.1", rid: str = ""
) -> str:
    """GET /healthz on ``port`` from ``source`` with an X-Forwarded-For (and the request id
    ``rid``, else a new one); return the client address the service's access line of that
    request gives."""
    since, rid = service.mark(), rid or f"edge-{uuid.uuid4().hex}"
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=TIMEOUT, source_address=(source, 0)
    )
    try:
        headers = {"X-Forwarded-For": forwarded_for, "X-Request-ID": rid}
        connection.request("GET", "/healthz", headers=headers)
        assert connection.getresponse().status == 200
    finally:
        connection.close()

    def access() -> list[dict]:
        lines = json_lines(service.lines(since))
        return [ln for ln in lines if ln.get("request_id") == rid and "remote_addr" in ln]

    return wait_for(access, 5, "the access line")[0]["remote_addr"]


@each("use_https")
def test_only_the_https_terminator_in_front_of_nginx_is_believed(deployment):
    """It takes the client's address from X-Forwarded-For only when Caddy (on 127.0.0.1 here)
    sends it: a client that reaches nginx from elsewhere (127.0.0.2) is logged, by nginx and by
    the app, with its own address, whatever X-Forwarded-For it sends."""
    service, nginx = deployment.service, deployment.nginx
    assert remote_addr_logged(service, nginx.port, "203.0.113.9") == "203.0.113.9"
    rid = f"edge-{uuid.uuid4().hex}"
    assert remote_addr_logged(service, nginx.port, "203.0.113.9", "127.0.0.2", rid) == "127.0.0.2"

    def logged() -> list[dict]:  # nginx writes its line after the answer: wait for it
        return [line for line in nginx_lines(deployment) if line.get("request_id") == rid]

    assert [line["remote_addr"] for line in wait_for(logged, 5, "nginx's line")] == ["127.0.0.2"]


@each("use_nginx")
def test_nginx_answers_502_and_504_in_json_with_a_request_id(deployment):
    """It answers 502 when gunicorn is not there and 504 when it stays silent, both in JSON."""
    down = healthz_through_nginx(deployment, "nginx-502", free_port())
    with SilentUpstream() as upstream:
        silent = healthz_through_nginx(
            deployment, "nginx-504", upstream.port, NGINX_PROXY_TIMEOUT="1s"
        )
    for response, status in ((down, 502), (silent, 504)):
        assert response.status_code == status
        assert response.json()["error"]["status"] == status
        assert response.headers["X-Request-ID"]


@each()
def test_bytes_that_are_not_utf8_in_headers_keep_every_log_line_json(deployment):
    """It keeps gunicorn's and nginx's lines UTF-8 JSON when a client sends bytes like 0xFF."""
    data = (
        b'GET /healthz HTTP/1.1\r\nHost: t\r\nUser-Agent: \xff\xfe"\\ agent\r\n'
        b"X-Request-ID: \xff\r\nConnection: close\r\n\r\n"
    )
    since = deployment.service.mark()
    for port in targets(deployment):
        assert parse(exchange(port, data))[0] == 200
        assert parse(exchange(port, b"GET /\xff%FF HTTP/1.1\r\nHost: t\r\n\r\n"))[0] in (400, 404)
    assert json_lines(deployment.service.lines(since))  # lines() decodes strictly as UTF-8
    if deployment.nginx is not None:
        for line in nginx_lines(deployment):
            assert {"level", "request_id", "status", "path", "user_agent"} <= line.keys()


def targets(deployment) -> list[int]:
    """Return the ports to test: the app server's, and nginx's when selected."""
    return [deployment.service.port] + ([deployment.nginx.port] if deployment.nginx else [])


def untrusted_entries(deployment) -> list[int]:
    """Return the ports untrusted clients may reach: nginx's, and granian's own.

    gunicorn is not one: the generated docs say to keep it behind a buffering proxy."""
    granian = deployment.combo.selected("app_server=granian")
    return ([deployment.nginx.port] if deployment.nginx else []) + (
        [deployment.service.port] if granian else []
    )


# --------------------------------------------------------------------------- class 5


def half_headers(port: int, count: int) -> list[socket.socket]:
    """Open ``count`` connections that each send half a request head, then nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Half: ")
        sockets.append(sock)
    return sockets


def probe_while(port: int, seconds: float) -> list[float]:
    """GET /healthz every 0.25 s for ``seconds``; return each latency (3 s for a failure)."""
    latencies = []
    deadline = time.monotonic() + seconds
    for _ in range(200):
        if time.monotonic() > deadline:
            break
        started = time.monotonic()
        try:
            ok = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code == 200
        except requests.RequestException:
            ok = False
        latencies.append(time.monotonic() - started if ok else 3.0)
        time.sleep(0.25)
    return latencies


@pytest.mark.parametrize(
    "combo",
    combos("use_nginx") + combos("app_server=granian", without=("use_nginx",)),
    scope="module",
)
def test_half_sent_request_heads_do_not_starve_the_service(deployment):
    """It answers /healthz within 2 s while 30 connections hold half a request head each, at
    every entry untrusted clients may reach: nginx, and granian's own port."""
    for port in untrusted_entries(deployment):
        sockets = half_headers(port, SLOW_SOCKETS)
        try:
            latencies = probe_while(port, SLOW_SECONDS)
        finally:
            for sock in sockets:
                sock.close()
        assert max(latencies) < 2, (port, latencies)
        assert len(latencies) >= 10
        print(f"{deployment.combo.id} port {port}: worst {max(latencies):.3f}s", file=sys.stderr)


@each("app_server=granian")
def test_granian_disconnects_a_silent_request_head_after_the_read_timeout(deployment):
    """It closes a connection whose head stops arriving after REQUEST_READ_TIMEOUT, unanswered.

    A service with REQUEST_READ_TIMEOUT=2 is used, so the test waits seconds, not the default 10.
    """
    service = deployment.extra_service("read-timeout", REQUEST_READ_TIMEOUT="2")
    started = time.monotonic()
    assert exchange(service.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Half: ") == b""
    assert 1.5 < time.monotonic() - started < 6
    assert requests.get(f"{service.url}/healthz", timeout=TIMEOUT).ok


@each("use_nginx")
def test_slow_bodies_through_nginx_are_dropped_before_the_app(deployment):
    """It serves others while 20 clients trickle a body through nginx, which then drops them.

    nginx buffers whole bodies before passing them on and gives up on one after 10 s without a
    read: it logs a 408 and closes the connection without an answer (nginx sends no response on
    a client_body_timeout; the generated docs say so). The app server never sees a slow body:
    granian's threads would read one with no deadline.
    """
    since = deployment.service.mark()
    logged = len(nginx_lines(deployment))

    def slow_body(_number: int) -> bytes:
        data = (
            b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b'Content-Length: 50\r\n\r\n{"na'
        )
        return exchange(deployment.nginx.port, data, seconds=25)

    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        slow = pool.map(slow_body, range(20))
        latencies = probe_while(deployment.nginx.port, 4)
        answers = list(slow)
    assert time.monotonic() - started < 20  # nginx closed them, not the client's own deadline
    assert answers == [b""] * 20, answers
    assert max(latencies) < 2, latencies
    posts = [ln for ln in json_lines(deployment.service.lines(since)) if ln.get("method") == "POST"]
    assert posts == []
    dropped = [ln for ln in nginx_lines(deployment)[logged:] if ln["method"] == "POST"]
    assert [(ln["status"], ln["upstream_status"]) for ln in dropped] == [(408, "")] * 20, dropped


@each(without=("use_postgres", "use_redis", "use_nginx", "app_server=granian"))
def test_sync_workers_serve_and_refuse_as_gthread_does(deployment):
    """It serves and answers gunicorn's refusals under WORKER_CLASS=sync, with no worker crash.

    The worker class is independent of the services, so one combination shows it.
    """
    service = deployment.extra_service("sync", WORKER_CLASS="sync")
    data, status = REFUSED_BY_GUNICORN["duplicate Content-Length"]
    assert parse(exchange(service.port, data))[0] == status
    assert requests.get(f"{service.url}/healthz", timeout=TIMEOUT).status_code == 200
    assert "Exception in worker process" not in service.stdout.read_text()


@each(without=("use_postgres", "use_redis", "use_nginx", "app_server=granian"))
def test_gunicorn_timeout_does_not_bound_a_request_under_gthread(deployment):
    """It completes a 6 s request with GUNICORN_TIMEOUT=3, as docs/gunicorn.md says.

    The request is slow honestly: its body arrives over about 6 s. The worker keeps beating
    from its event loop (about once a second), so it is not killed. (A timeout of 2 would leave
    a loaded machine only a second's stall.)
    """
    service = deployment.extra_service("gunicorn-timeout", GUNICORN_TIMEOUT="3")
    body = json.dumps({"name": f"slow-{uuid.uuid4().hex[:8]}"}).encode()
    head = (
        "POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"{raw_header(deployment)}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    wait_for(lambda: len(service.workers()) == 2, 15, "both workers")
    workers = service.workers()
    started = time.monotonic()
    answer = exchange(service.port, head, trickle=body, over=6)
    assert time.monotonic() - started > 5.5
    assert parse(answer)[0] == 201, answer[:300]
    assert service.workers() == workers


# --------------------------------------------------------------------------- class 9

# Paths Werkzeug would redirect (a doubled slash, a trailing one), and what nginx answers itself.
NOT_REDIRECTED = ("/api//items", "//healthz", "/api/items/")
ANSWERED_BY_NGINX = ("/metrics", "/nginx-health")
CLIENTS_HOST = "evil.example"


@each()
def test_no_answer_names_a_host_the_client_chose(deployment):
    """It never names the Host or X-Forwarded-Host a client sent, at its entry (nginx, else the
    app server): no redirect to a URL built from them, and every answer is JSON, nginx's own
    included."""
    forged = {"Host": CLIENTS_HOST, "X-Forwarded-Host": CLIENTS_HOST, "X-Forwarded-Proto": "https"}
    for path in NOT_REDIRECTED + (ANSWERED_BY_NGINX if deployment.nginx else ()):
        answer = requests.get(
            f"{deployment.entry}{path}", headers=forged, allow_redirects=False, timeout=TIMEOUT
        )
        assert answer.status_code in (200, 404), (path, answer.status_code, answer.headers)
        assert "Location" not in answer.headers, (path, answer.headers)
        assert answer.headers["Content-Type"].startswith("application/json"), (path, answer.text)
        assert CLIENTS_HOST not in answer.text + str(answer.headers), path


@each("use_nginx", "use_frontend")
def test_nginx_answers_for_static_files_name_no_host_and_are_json(deployment):
    """It redirects a static folder asked for without its slash to a path (301), and answers a
    folder (403), a missing file (404) and a POST (405) in the JSON error shape, whatever Host
    the client sent."""
    static = owned_dir(deployment.root / "static-probe")
    owned_dir(static / "folder")
    (static / "app.js").write_text("// a file\n")
    nginx = start_nginx_for(
        deployment, "nginx-static-probe", deployment.service.port, NGINX_STATIC_ROOT=str(static)
    )
    try:
        answers = {
            (method, path): requests.request(
                method,
                f"{nginx.url}{path}",
                headers={"Host": CLIENTS_HOST},
                allow_redirects=False,
                timeout=TIMEOUT,
            )
            for method, path in (
                ("GET", "/static/folder"),
                ("GET", "/static/"),
                ("GET", "/static/missing.js"),
                ("POST", "/static/app.js"),
            )
        }
    finally:
        nginx.stop()
    statuses = {key: answer.status_code for key, answer in answers.items()}
    assert list(statuses.values()) == [301, 403, 404, 405], statuses
    assert answers["GET", "/static/folder"].headers["Location"] == "/static/folder/"
    for key, answer in answers.items():
        assert answer.headers["Content-Type"].startswith("application/json"), (key, answer.text)
        assert answer.json()["error"]["status"] == answer.status_code, key
        assert CLIENTS_HOST not in answer.text + str(answer.headers), key


@each(without=("use_nginx",))
def test_without_nginx_x_forwarded_for_does_not_change_the_client_address(deployment):
    """It logs the real peer address, whatever X-Forwarded-For says."""
    since = deployment.service.mark()
    rid = f"edge-{uuid.uuid4().hex}"
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Request-ID": rid}
    assert requests.get(f"{deployment.service.url}/healthz", headers=headers, timeout=TIMEOUT).ok

    def access() -> list[dict]:
        lines = json_lines(deployment.service.lines(since))
        return [ln for ln in lines if ln.get("request_id") == rid and "remote_addr" in ln]

    wait_for(access, 5, "the access line")
    assert access()[0]["remote_addr"] == "127.0.0.1"


@each("use_nginx")
def test_trusted_proxies_zero_ignores_forwarded_headers(deployment):
    """It logs the peer's address, not X-Forwarded-For's, when TRUSTED_PROXIES=0."""
    service = deployment.extra_service("no-proxy", TRUSTED_PROXIES="0")
    assert remote_addr_logged(service, service.port, "203.0.113.9") == "127.0.0.1"


# --------------------------------------------------------------------------- class 8

STATEMENT_PROBE = """
import json, time
from sqlalchemy import text
from {package} import create_app
from {package}.extensions import db

app = create_app()

@app.get("/slow-query")
def slow_query():
    db.session.execute(text("SELECT pg_sleep(5)"))
    return {{}}

started = time.monotonic()
response = app.test_client().get("/slow-query")
print(json.dumps({{"status": response.status_code, "seconds": time.monotonic() - started,
                   "body": response.get_json()}}))
"""


@each("use_postgres")
def test_a_slow_statement_is_cancelled_at_the_statement_timeout(deployment):
    """It cancels a 5 s query after DATABASE_STATEMENT_TIMEOUT=1 and answers 503 JSON."""
    probe = deployment.new_service("statement-timeout", DATABASE_STATEMENT_TIMEOUT="1")
    python = str(deployment.bin / "python")
    ran = probe.run_once([python, "-c", STATEMENT_PROBE.format(package=deployment.package)])
    assert ran.returncode == 0, ran.stdout + ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["status"] == 503, result
    assert result["body"]["error"]["status"] == 503
    assert 0.8 < result["seconds"] < 4, result


# --------------------------------------------------------------------------- every line


@each()
def test_every_line_stayed_json_under_hostile_clients(deployment):
    """It wrote only UTF-8 JSON lines with level, message and request_id, nginx's included."""
    outputs = sorted(deployment.root.glob("*/logs/stdout.log"))
    assert outputs
    for output in outputs:
        for record in json_lines(output.read_bytes().decode("utf-8").splitlines()):
            assert {"level", "message", "request_id"} <= record.keys(), (output, record)
    if deployment.nginx is not None:
        for record in nginx_lines(deployment):
            assert {"level", "request_id", "status"} <= record.keys(), record
