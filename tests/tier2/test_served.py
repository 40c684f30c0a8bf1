"""Tier 2: every combination served for real, natively, through its own configuration, under faults.

Each combination is baked, copied read-only, migrated with the compose migrate service's command,
and started with the Dockerfile's CMD and gunicorn.conf.py as an unprivileged user, against real
PostgreSQL and Redis when selected, behind the generated nginx template when selected.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from combinations import params
from projects import run_project_tests, skipped_lines

from . import celery_processes
from .auth import raw_header
from .deployment import TIER2_COMBINATIONS, fresh_secret
from .servers import bounded_iterations, wait_until, whole_lines

TIMEOUT = 10
# Its deployments run the migrations themselves: every line every process wrote is read below.
MIGRATES_EACH_TIME = True
# The default combination gets the long burst; the others a shorter one to keep tier 2 quick.
LONG_BURST_SECONDS = 15
SHORT_BURST_SECONDS = 5
BURST_CONNECTIONS = 32
OWN_QUERIES = 4  # the load test's own connections to the database, each a session
REDIS_RETRY_INTERVAL = (
    10.0  # the service's default: a worker skips Redis (cache, limits) this long after a failure
)


def wait_out_redis_pauses(back_since: float) -> None:
    """Wait until every worker of the shared instance calls Redis again, however few calls it got.

    Each worker skips the cache for REDIS_RETRY_INTERVAL after its last failure, and every
    failure came before Redis answered again at ``back_since`` (the second covers a call that
    timed out just then). One cache hit shows that some worker reads Redis again; the next test
    on this instance may land on another.
    """
    time.sleep(max(0.0, back_since + REDIS_RETRY_INTERVAL + 1 - time.monotonic()))


def combos(*options: str, without: tuple[str, ...] = ()) -> list:
    """Return module-scoped params of the combinations selecting ``options`` and not ``without``."""
    chosen = [
        combo
        for combo in TIER2_COMBINATIONS
        if all(combo.selected(option) for option in options)
        and not any(combo.selected(option) for option in without)
    ]
    return params(chosen)


def each(*options: str, without: tuple[str, ...] = ()):
    """Parametrize a test over the matching combinations, sharing one deployment per combination."""
    return pytest.mark.parametrize("combo", combos(*options, without=without), scope="module")


def assert_json_error(response: requests.Response, status: int) -> dict:
    """Assert a clean JSON error of ``status``: the documented shape, no stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["error"]["status"] == status
    assert body["error"]["title"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def request_id() -> str:
    """Return a fresh, well-formed request id."""
    return f"tier2-{uuid.uuid4().hex}"


def tagged_lines(deployment, since, rid: str) -> list[dict]:
    """Return the service's JSON lines since ``since`` that carry the request id ``rid``."""
    lines = [json.loads(line) for line in deployment.service.lines(since) if line.strip()]
    return [line for line in lines if line.get("request_id") == rid]


def access_lines(deployment, since, rid: str) -> list[dict]:
    """Return the app server's access lines since ``since`` for the request id ``rid``."""
    logger = deployment.access_logger
    return [line for line in tagged_lines(deployment, since, rid) if line["logger"] == logger]


def nginx_lines(deployment, rid: str) -> list[dict]:
    """Return nginx's access lines for the request id ``rid``."""
    text = whole_lines(deployment.nginx.stdout)
    return [line for line in map(json.loads, text) if line["request_id"] == rid]


# --------------------------------------------------------------------------- the example API


@each()
def test_api_creates_reads_and_lists_from_the_real_store(deployment):
    """It stores a created item in the selected database and serves it back, cached in Redis."""
    entry = deployment.entry
    created = requests.post(
        f"{entry}/api/items", json={"name": "tier2", "description": "end to end"}, timeout=TIMEOUT
    )
    assert created.status_code == 201, created.text
    item = created.json()
    location = created.headers["Location"]
    assert location == f"/api/items/{item['id']}"
    stored = deployment.query("SELECT name, description FROM items WHERE id = ?", item["id"])
    assert stored == [("tier2", "end to end")]
    celery_processes.await_processed(deployment, item["id"])  # a pending item is never cached

    reads = [requests.get(f"{entry}{location}", timeout=TIMEOUT) for _ in range(3)]
    assert [read.status_code for read in reads] == [200, 200, 200]
    if deployment.combo.selected("use_celery"):
        item = {**item, "status": "processed", "processed_at": reads[0].json()["processed_at"]}
        assert item["processed_at"] is not None
    assert all(read.json() == item for read in reads)
    caches = [read.headers["X-Cache"] for read in reads]
    if deployment.redis is not None:
        assert caches == ["miss", "hit", "hit"]
        client = deployment.redis.client(deployment.redis_db)
        key = f"{deployment.package}:item:{item['id']}:json"  # the item's JSON body
        assert client.exists(key)
        client.delete(key)  # a hit served from process memory would survive this
        assert requests.get(f"{entry}{location}", timeout=TIMEOUT).headers["X-Cache"] == "miss"
    else:
        # No cache every worker shares: none at all (a worker's memory would outlive a delete).
        assert caches == ["miss"] * 3

    listing = requests.get(f"{entry}/api/items?limit=100", timeout=TIMEOUT)
    assert listing.status_code == 200
    assert item in listing.json()["items"]
    assert listing.json()["total"] == deployment.rows()

    # A change, then a delete, is what every later read answers, whichever worker serves it.
    for _ in range(2):
        requests.get(f"{entry}{location}", timeout=TIMEOUT)  # cached where a cache is shared
    changed = requests.put(f"{entry}{location}", json={"name": "changed"}, timeout=TIMEOUT)
    assert changed.status_code == 200, changed.text
    reads = [requests.get(f"{entry}{location}", timeout=TIMEOUT) for _ in range(4)]
    assert [(read.json()["name"], read.json()["description"]) for read in reads] == [
        ("changed", "")
    ] * 4
    assert requests.delete(f"{entry}{location}", timeout=TIMEOUT).status_code == 204
    gone = [requests.get(f"{entry}{location}", timeout=TIMEOUT) for _ in range(4)]
    assert [read.status_code for read in gone] == [404] * 4
    assert deployment.query("SELECT name FROM items WHERE id = ?", item["id"]) == []


# --------------------------------------------------------------------------- logs


@each()
def test_request_id_reaches_the_response_and_the_app_and_the_servers_lines(deployment):
    """It returns the caller's X-Request-ID and writes it on the app's and the server's lines."""
    service = deployment.service
    since = service.mark()
    rid = request_id()
    response = requests.post(
        f"{deployment.entry}/api/items",
        json={"name": "logged"},
        headers={"X-Request-ID": rid},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == rid

    logger = deployment.access_logger
    wait_until(lambda: access_lines(deployment, since, rid), 5, "log")
    lines = tagged_lines(deployment, since, rid)
    access = [line for line in lines if line["logger"] == logger]
    app = [line for line in lines if line["logger"] != logger]
    assert len(access) == 1
    assert access[0]["method"] == "POST"
    assert access[0]["path"] == "/api/items"
    assert access[0]["status"] == 201
    assert app, f"no line of the app carries {rid}: {lines}"
    for line in lines:
        assert {"level", "message", "request_id", "time"} <= line.keys()
    if deployment.nginx is not None:
        wait_until(lambda: nginx_lines(deployment, rid), 5, "nginx's access line")
        assert nginx_lines(deployment, rid)[0]["status"] == 201


# --------------------------------------------------------------------------- bad input


@each()
def test_malformed_json_is_a_clean_400(deployment):
    """It answers 400 JSON to a body that is not JSON."""
    response = requests.post(
        f"{deployment.entry}/api/items",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert_json_error(response, 400)


@each()
def test_wrong_types_are_a_clean_422_naming_the_field(deployment):
    """It answers 422 JSON naming the field of the wrong type, and stores nothing."""
    before = deployment.rows()
    response = requests.post(
        f"{deployment.entry}/api/items", json={"name": 42, "description": []}, timeout=TIMEOUT
    )
    body = assert_json_error(response, 422)
    assert {"name", "description"} <= {error["field"] for error in body["error"]["detail"]}
    assert deployment.rows() == before


@each()
def test_oversize_body_is_a_clean_413_from_the_app(deployment):
    """It answers 413 JSON from gunicorn itself to a body over MAX_CONTENT_LENGTH, and writes
    the access line (before the next test reads the log: the server writes it after answering)."""
    service = deployment.service
    since = service.mark()
    rid = request_id()
    response = requests.post(
        f"{service.url}/api/items",
        data=b"x" * (1024 * 1024 + 1),
        headers={"Content-Type": "application/json", "X-Request-ID": rid},
        timeout=TIMEOUT,
    )
    assert_json_error(response, 413)

    wait_until(lambda: access_lines(deployment, since, rid), 5, "the access line of the 413")
    assert [line["status"] for line in access_lines(deployment, since, rid)] == [413]


@each("use_nginx")
def test_oversize_body_is_a_clean_413_from_nginx(deployment):
    """It answers 413 JSON from nginx, before the body reaches gunicorn."""
    since = deployment.service.mark()
    rid = request_id()
    response = requests.post(
        f"{deployment.entry}/api/items",
        data=b"x" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/json", "X-Request-ID": rid},
        timeout=TIMEOUT,
    )
    assert_json_error(response, 413)

    # written once nginx is done with the request
    wait_until(lambda: nginx_lines(deployment, rid), 5, "nginx's access line")
    assert nginx_lines(deployment, rid)[0]["status"] == 413
    lines = deployment.service.lines(since)
    assert not any(rid in line or '"POST /api/items 413"' in line for line in lines), lines


@each()
def test_unknown_route_is_a_clean_404(deployment):
    """It answers 404 JSON for a route that does not exist."""
    assert_json_error(requests.get(f"{deployment.entry}/no/such/route", timeout=TIMEOUT), 404)


@each()
def test_wrong_method_is_a_clean_405_with_allow(deployment):
    """It answers 405 JSON with an Allow header for a method the route does not take."""
    response = requests.delete(f"{deployment.entry}/api/items", timeout=TIMEOUT)
    assert_json_error(response, 405)
    assert "POST" in response.headers["Allow"]


# --------------------------------------------------------------------------- proxy headers


@each("use_nginx")
def test_nginx_adds_security_headers_and_hides_its_version(deployment):
    """It sends the security headers on success and on errors, and no nginx version."""
    for path, status in (("/healthz", 200), ("/no/such/route", 404)):
        response = requests.get(f"{deployment.entry}{path}", timeout=TIMEOUT)
        assert response.status_code == status
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] in ("DENY", "SAMEORIGIN")
        assert response.headers["Referrer-Policy"]
        assert response.headers.get("Server", "nginx") == "nginx"
    error = requests.get(f"{deployment.entry}/%", timeout=TIMEOUT)  # nginx's own 400 page
    assert "nginx/" not in error.text
    assert error.headers.get("Server", "nginx") == "nginx"


# HTTPS bakes: nginx believes X-Forwarded-For from Caddy alone (127.0.0.1 here), so a client on
# 127.0.0.2 is one that reached nginx without Caddy; tests/tier2/test_https.py goes through Caddy.
@each("use_nginx")
def test_app_sees_the_clients_address_through_nginx(deployment):
    """It logs the client's address from X-Forwarded-For set by nginx, ignoring a spoofed one."""
    since = deployment.service.mark()
    rid = request_id()
    connection = http.client.HTTPConnection(
        "127.0.0.1", deployment.nginx.port, timeout=TIMEOUT, source_address=("127.0.0.2", 0)
    )
    try:
        connection.request(
            "GET", "/healthz", headers={"X-Request-ID": rid, "X-Forwarded-For": "203.0.113.9"}
        )
        assert connection.getresponse().status == 200
    finally:
        connection.close()

    wait_until(lambda: access_lines(deployment, since, rid), 5, "the access line")
    assert access_lines(deployment, since, rid)[0]["remote_addr"] == "127.0.0.2"


# --------------------------------------------------------------------------- faults


@each("use_postgres")
def test_postgres_down_gives_clean_503s_and_recovers_without_restart(deployment):
    """It answers 503 "not reachable" while PostgreSQL is down, logs why, and recovers when back."""
    entry, postgres, service = deployment.entry, deployment.postgres, deployment.service
    pid = service.process.pid
    before = requests.post(f"{entry}/api/items", json={"name": "before"}, timeout=TIMEOUT)
    assert before.status_code == 201  # not read yet: no cache holds it
    since = service.mark()
    postgres.stop()
    try:
        ready = requests.get(f"{entry}/readyz", timeout=TIMEOUT)
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["checks"]["database"] == {
            "status": "error",
            "error": "The database is not reachable.",
        }
        assert requests.get(f"{entry}/healthz", timeout=TIMEOUT).status_code == 200
        write = requests.post(f"{entry}/api/items", json={"name": "lost?"}, timeout=TIMEOUT)
        body = assert_json_error(write, 503)
        assert body["error"]["detail"] == "The database is not reachable."
        assert write.headers["Retry-After"] == "5"  # the database's hint, not the limiter's
        assert_json_error(requests.get(f"{entry}/api/items", timeout=TIMEOUT), 503)
        read = requests.get(f"{entry}{before.headers['Location']}", timeout=TIMEOUT)
        assert assert_json_error(read, 503)["error"]["detail"] == "The database is not reachable."
        lines = [json.loads(line) for line in service.lines(since) if line.strip()]
        warnings = [ln for ln in lines if ln.get("database_error") == "unreachable"]
        assert warnings and warnings[0]["level"] == "WARNING", lines[-5:]
        assert "postgresql" not in warnings[0]["message"]  # the driver's words, not the URL
    finally:
        postgres.start()
    wait_until(
        lambda: requests.get(f"{entry}/readyz", timeout=TIMEOUT).status_code == 200, 15, "ready"
    )
    created = requests.post(f"{entry}/api/items", json={"name": "after"}, timeout=TIMEOUT)
    assert created.status_code == 201
    assert requests.get(f"{entry}/api/items", timeout=TIMEOUT).status_code == 200
    read = requests.get(f"{entry}{before.headers['Location']}", timeout=TIMEOUT)
    assert read.status_code == 200 and read.json()["name"] == "before"
    assert deployment.service.process.pid == pid and deployment.service.process.poll() is None


@each("use_redis")
def test_redis_down_degrades_reads_and_limits_then_recovers(deployment):
    """It serves reads uncached and limits from memory while Redis is down, and stays ready.

    A second instance with a low write limit shows the limits still hold from memory (each of the
    two workers counts on its own) and move back to Redis once it answers again.
    """
    entry, server = deployment.entry, deployment.redis
    limited_db = server.new_db()  # its own index: only its counters can appear there
    limited = deployment.extra_service(
        "limited", RATELIMIT_WRITE="10 per minute", REDIS_URL=server.url(limited_db)
    )
    created = requests.post(f"{entry}/api/items", json={"name": "cached"}, timeout=TIMEOUT)
    location = created.headers["Location"]
    celery_processes.await_processed(deployment, created.json()["id"])
    requests.get(f"{entry}{location}", timeout=TIMEOUT)
    assert requests.get(f"{entry}{location}", timeout=TIMEOUT).headers["X-Cache"] == "hit"

    server.stop()
    try:
        ready = requests.get(f"{entry}/readyz", timeout=TIMEOUT)
        assert ready.status_code == 200  # Redis is a soft dependency: reported, never unready
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["redis"]["status"] == "degraded"
        assert ready.json()["checks"]["database"]["status"] == "ok"
        assert requests.get(f"{entry}/healthz", timeout=TIMEOUT).status_code == 200
        for _ in range(3):
            read = requests.get(f"{entry}{location}", timeout=TIMEOUT)
            assert read.status_code == 200
            assert read.headers["X-Cache"] == "miss"
        write = requests.post(f"{entry}/api/items", json={"name": "no redis"}, timeout=TIMEOUT)
        assert write.status_code == 201

        statuses = []
        for _ in range(25):
            answer = requests.post(f"{limited.url}/api/items", json={"name": "n"}, timeout=TIMEOUT)
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert_json_error(answer, 429)
        assert set(statuses) == {201, 429}, statuses
        assert statuses.count(201) <= 20  # 10 per minute in each worker's memory
    finally:
        server.start()
    back = time.monotonic()

    wait_until(
        lambda: requests.get(f"{entry}/readyz", timeout=TIMEOUT).json()["status"] == "ok",
        30,
        "redis reported ok again",
    )
    wait_until(
        lambda: requests.get(f"{entry}{location}", timeout=TIMEOUT).headers["X-Cache"] == "hit",
        15,
        "a cache hit from Redis again",
        interval=0.2,
    )
    client = server.client(limited_db)

    def limits_in_redis() -> bool:
        requests.post(f"{limited.url}/api/items", json={"name": "n"}, timeout=TIMEOUT)
        return any(key.startswith(b"LIMITS:") for key in client.keys("*"))

    # Each worker counts in Redis again once its own REDIS_RETRY_INTERVAL is over.
    wait_until(limits_in_redis, REDIS_RETRY_INTERVAL + 10, "rate-limit counters back in Redis", 0.5)
    if deployment.combo.selected("use_celery"):
        # Celery's worker reconnects after a Redis restart (test_celery_faults.py), but kombu can
        # fail while it closes the lost connection ("Unrecoverable error: AttributeError"), and
        # the worker exits. compose and Kubernetes start it again; so does this, and new items
        # are processed again either way.
        restarted = celery_processes.restart_exited(deployment)
        print(f"Celery processes started again after the outage: {restarted or 'none'}")
        created = requests.post(f"{entry}/api/items", json={"name": "after"}, timeout=TIMEOUT)
        celery_processes.await_processed(deployment, created.json()["id"])
    wait_out_redis_pauses(back)


def workers_serving(service) -> bool:
    """Say whether both of granian's workers run their server (each logged "Started worker-N").

    granian 2.8 installs a forked worker's SIGTERM handler only once the worker has built the app
    and starts serving: a SIGTERM before that is lost, and the worker serves on until the kill
    timeout. gunicorn's workers install theirs before they build the app.
    """
    return sum("Started worker-" in line for line in service.lines()) == 2


@each()
def test_sigterm_lets_an_in_flight_request_finish_and_exits_zero(deployment):
    """It completes a request whose body is still arriving when SIGTERM comes, then exits 0.

    The request is slow honestly: the client sends the headers and the body's first bytes, then
    the rest over about two seconds, so the request is inside the app (reading its body) when the
    master is told to stop. nginx is bypassed here because it buffers whole bodies before
    passing them on; the signal goes to gunicorn.
    """
    graceful = 10
    service = deployment.new_service("sigterm", GRACEFUL_TIMEOUT=str(graceful), LOG_LEVEL="INFO")
    service.start()
    if deployment.combo.selected("app_server=granian"):
        wait_until(lambda: workers_serving(service), 30, "both workers serving")
    name = f"slow-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"name": name, "description": "x" * 200}).encode()
    head = (
        f"POST /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{raw_header(deployment)}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", service.port), timeout=TIMEOUT) as sock:
            sock.sendall(head + body[:10])
            time.sleep(0.5)
            service.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            rest = body[10:]
            pieces = [
                rest[i : i + len(rest) // 10 + 1] for i in range(0, len(rest), len(rest) // 10 + 1)
            ]
            for piece in pieces:
                time.sleep(0.2)
                sock.sendall(piece)
            answer = b""
            for _ in range(1000):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
        code = service.process.wait(timeout=graceful + 5)
        assert code == 0, service.output()
        assert time.monotonic() - signalled < graceful
    finally:
        service.stop()
    assert deployment.query("SELECT count(*) FROM items WHERE name = ?", name) == [(1,)]


@each()
def test_a_killed_worker_is_replaced_and_service_continues(deployment):
    """It keeps answering when a worker is SIGKILLed, and the master starts a replacement.

    gunicorn's master keeps the listening socket: no request fails. granian gives each worker
    its own listening socket (SO_REUSEPORT): while a worker dies and its replacement starts,
    connections can be reset or refused (the generated docs say so, and what narrows it), so
    with granian the service must answer every request again within a bounded time.
    """
    service = deployment.service
    wait_until(lambda: len(service.workers()) == 2, 30, "both workers running")
    victim = service.workers()[0]
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = service.workers()  # one look for both conditions (the master reaps, then forks)
        return len(now) == 2 and victim not in now

    def all_answered(count: int) -> bool:
        try:
            return all(
                requests.get(f"{deployment.entry}/api/items", timeout=TIMEOUT).status_code == 200
                for _ in range(count)
            )
        except requests.ConnectionError:
            return False

    if deployment.combo.selected("app_server=granian"):
        wait_until(replaced, 30, "a new worker")
        wait_until(lambda: all_answered(10), 30, "every request answered again")
    for _ in range(10):
        assert requests.get(f"{deployment.entry}/api/items", timeout=TIMEOUT).status_code == 200
    wait_until(replaced, 15, "a new worker")
    for _ in range(20):
        assert requests.get(f"{deployment.entry}/api/items", timeout=TIMEOUT).status_code == 200


# --------------------------------------------------------------------------- load


@each()
def test_load_burst_has_no_errors_and_loses_no_writes(deployment):
    """It answers every request of a bounded burst (32 connections) and stores every write."""
    seconds = LONG_BURST_SECONDS if deployment.combo.id == "pg-redis" else SHORT_BURST_SECONDS
    entry = deployment.entry
    ids_before = {row[0] for row in deployment.query("SELECT id FROM items")}
    sessions_before = database_sessions(deployment)

    def client(number: int) -> tuple[list[int], list[str]]:
        created, problems = [], []
        with requests.Session() as session:
            for step in bounded_iterations(seconds, 100_000):
                try:
                    write = session.post(
                        f"{entry}/api/items", json={"name": f"load-{number}-{step}"}, timeout=30
                    )
                    if write.status_code != 201:
                        problems.append(f"POST {write.status_code} {write.text[:200]}")
                        continue
                    created.append(write.json()["id"])
                    read = session.get(f"{entry}{write.headers['Location']}", timeout=30)
                    if read.status_code != 200:
                        problems.append(f"GET {read.status_code} {read.text[:200]}")
                except requests.RequestException as exc:
                    problems.append(repr(exc))
        return created, problems

    with ThreadPoolExecutor(BURST_CONNECTIONS) as pool:
        results = list(pool.map(client, range(BURST_CONNECTIONS)))
    created = [item for ids, _ in results for item in ids]
    problems = [problem for _, found in results for problem in found]
    assert problems == [], problems[:10]
    assert len(created) > BURST_CONNECTIONS
    new = {row[0] for row in deployment.query("SELECT id FROM items")} - ids_before
    assert new == set(created)
    print(f"{deployment.combo.id}: {len(created)} writes in {seconds}s", file=sys.stderr)
    if sessions_before is not None:
        # Each worker's pool keeps a connection per thread: a saturating burst adds at most
        # that many (and this test's own queries), where a pool smaller than the threads would
        # have connected anew for request after request.
        env = deployment.env(deployment.service.port)
        kept = int(env["WEB_CONCURRENCY"]) * int(env.get("WEB_THREADS", "8"))
        opened = database_sessions(deployment) - sessions_before
        assert opened <= kept + OWN_QUERIES, f"{opened} database sessions opened in the burst"


def database_sessions(deployment) -> int | None:
    """Return how many sessions PostgreSQL started on the deployment's database; None: SQLite.

    A session is counted once it ended or its backend reported its statistics (about every
    second): a connection opened and closed per request always is.
    """
    if deployment.postgres is None:
        return None
    sql = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    return deployment.query(sql)[0][0]


# --------------------------------------------------------------------------- settings


@each()
def test_production_refuses_the_placeholder_secret_and_starts_with_a_real_one(deployment):
    """It exits 1 with one line naming SECRET_KEY's placeholder; serves with a real secret."""
    code, output = deployment.failed_start("placeholder", SECRET_KEY="change-me")
    assert code == 1
    assert "Error: Invalid settings: SECRET_KEY is missing or a placeholder" in output
    assert "Traceback" not in output

    accepted = deployment.extra_service("real-secret", SECRET_KEY=fresh_secret())
    assert requests.get(f"{accepted.url}/readyz", timeout=TIMEOUT).status_code == 200


@each()
def test_a_database_url_whose_driver_is_missing_stops_the_start_in_one_line(deployment):
    """It exits 1 with one line naming DATABASE_URL for a mysql:// URL (no driver installed),
    before any worker could fail on it; a postgres:// URL, as hosts hand it out, is served."""
    refused = "mysql://app:pw-1@127.0.0.1:9/app"
    code, output = deployment.failed_start("mysql-url", DATABASE_URL=refused)
    assert code == 1
    (line,) = [line for line in output.splitlines() if "Error" in line]
    assert line.startswith(
        "Error: Invalid settings: DATABASE_URL='mysql://app:***@127.0.0.1:9/app': "
        "the driver of mysql:// is not installed"
    ), line
    assert "Traceback" not in output and "pw-1" not in output

    if deployment.postgres is not None:
        url = deployment.postgres.url(deployment.database)
        postgres = "postgres://" + url.split("://", 1)[1]
        accepted = deployment.extra_service("postgres-scheme", DATABASE_URL=postgres)
        assert requests.get(f"{accepted.url}/readyz", timeout=TIMEOUT).status_code == 200


# --------------------------------------------------------------------------- the project's tests


# Tier 1 runs each generated suite on SQLite without Redis: here, the bakes with a server to use.
WITH_A_SERVER = [
    combo
    for combo in TIER2_COMBINATIONS
    if combo.selected("use_postgres") or combo.selected("use_redis")
]


@pytest.mark.parametrize("combo", params(WITH_A_SERVER), scope="module")
def test_generated_suite_passes_against_the_real_servers_with_no_skips(
    deployment, clean_env, tmp_path
):
    """It runs the generated project's own tests on TEST_DATABASE_URL and TEST_REDIS_URL.

    DATABASE_URL and REDIS_URL name a developer's data, with a sentinel row and key in it (a
    SQLite file when PostgreSQL is not selected): the suite must leave both alone, and leave its
    own test database empty.
    """
    env = dict(clean_env)
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    if deployment.postgres is not None:
        postgres = deployment.postgres
        developers = postgres.create_database(f"{deployment.combo.id}_dev")
        with postgres.connect(developers) as connection:
            connection.execute("CREATE TABLE items (id serial PRIMARY KEY, name text)")
            connection.execute("INSERT INTO items (name) VALUES (%s)", (sentinel,))
        test_database = postgres.create_database(f"{deployment.combo.id}_test")
        env["DATABASE_URL"] = postgres.url(developers)
        env["TEST_DATABASE_URL"] = postgres.url(test_database)
    else:
        developers_file = tmp_path / "developer.db"
        with contextlib.closing(sqlite3.connect(developers_file)) as connection, connection:
            connection.execute("CREATE TABLE items (id integer PRIMARY KEY, name text)")
            connection.execute("INSERT INTO items (name) VALUES (?)", (sentinel,))
        env["DATABASE_URL"] = f"sqlite:///{developers_file}"
    if deployment.redis is not None:
        developers_db = deployment.redis.new_db()
        developers_redis = deployment.redis.client(developers_db)
        developers_redis.set(f"{deployment.package}:item:1", sentinel)
        env["REDIS_URL"] = deployment.redis.url(developers_db)
        env["TEST_REDIS_URL"] = deployment.redis.url(deployment.redis.new_db())

    result = run_project_tests(deployment.bake, env)
    assert not skipped_lines(result), result.stdout[-3000:]

    if deployment.postgres is not None:
        with postgres.connect(developers) as connection:
            assert connection.execute("SELECT name FROM items").fetchall() == [(sentinel,)]
        with postgres.connect(test_database) as connection:
            left = connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        assert left == [], "the test session left tables behind"
    else:
        with contextlib.closing(sqlite3.connect(developers_file)) as connection:
            assert connection.execute("SELECT name FROM items").fetchall() == [(sentinel,)]
    if deployment.redis is not None:
        assert developers_redis.get(f"{deployment.package}:item:1") == sentinel.encode()


# --------------------------------------------------------------------------- every line


@each()
def test_every_line_on_stdout_is_json_with_level_message_and_request_id(deployment):
    """It wrote only JSON lines with level, message and request_id to STDOUT, faults included.

    This covers every app server started for the combination (faults, refusals, SIGTERM); the
    main service wrote nothing at all to STDERR; an instance refused for a bad setting wrote
    one line there and may have written nothing to STDOUT (it stops before logging is set up);
    nginx's access log is JSON with level and request_id.
    """
    outputs = sorted(deployment.root.glob("*/logs/stdout.log"))
    assert len(outputs) >= 2
    for output in outputs:
        lines = output.read_text().splitlines()
        instance = output.parent.parent.name
        if instance in deployment.refused:
            (error,) = (output.parent / "stderr.log").read_text().splitlines()
            assert error.startswith("Error: Invalid settings: "), (instance, error)
        else:
            assert lines, f"{output} is empty"
        for line in lines:
            record = json.loads(line)
            assert {"level", "message", "request_id"} <= record.keys(), (output, line)
    assert deployment.service.stderr.read_text() == ""
    if deployment.nginx is not None:
        for line in deployment.nginx.stdout.read_text().splitlines():
            assert {"level", "request_id", "status"} <= json.loads(line).keys(), line
