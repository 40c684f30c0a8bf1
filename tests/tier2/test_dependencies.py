"""Tier 2: failing dependencies, for real. Redis frozen (SIGSTOP) costs reads and writes one timeout
per worker and REDIS_RETRY_INTERVAL each, and never makes the service unready; a
PostgreSQL restart costs clients nothing; PostgreSQL frozen, read-only or unmigrated, and an SQLite
file read-only or locked, give bounded probes and 503s that say what failed, with a WARNING logged.

Each check runs directly against gunicorn and, where nginx is selected, through it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from . import celery_processes
from .auth import sign_up
from .servers import compose_command, compose_services, owned_dir, unprivileged_user, wait_until
from .test_served import (
    TIMEOUT,
    assert_json_error,
    each,
    wait_out_redis_pauses,
)

HEALTH_CHECK_TIMEOUT = 2.0  # the service's default
REDIS_TIMEOUT = 1.0  # the service's default
REDIS_RETRY_INTERVAL = 10.0  # the service's default: how long a worker skips a failed Redis
# An answer bounded by a timeout setting may come this long after it: the bound is the setting,
# the slack is for a loaded machine (2 cores shared with the other test worker and the servers).
LOAD_SLACK = 2.0
PATIENT_REDIS_TIMEOUT = 5  # the restart's own service: no stall of a loaded machine trips it


def entries(deployment) -> list[str]:
    """Return the URLs to check: gunicorn directly, and nginx when selected."""
    return [deployment.service.url] + ([deployment.nginx.url] if deployment.nginx else [])


def children(pid: int) -> list[int]:
    """Return the pids of a process's children."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


@contextlib.contextmanager
def frozen(*pids: int) -> Iterator[None]:
    """Stop processes with SIGSTOP, as a hung server is; SIGCONT them however the block ends."""
    stopped = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # a child that ended since it was listed
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield
    finally:
        for pid in reversed(stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def timed_get(url: str) -> tuple[float, requests.Response]:
    """GET ``url`` on a new connection; return the seconds it took and the response."""
    started = time.monotonic()
    response = requests.get(url, timeout=TIMEOUT, headers={"Connection": "close"})
    return time.monotonic() - started, response


def timed_post(url: str, body: dict) -> tuple[float, requests.Response]:
    """POST ``body`` as JSON to ``url``; return the seconds it took and the response."""
    started = time.monotonic()
    response = requests.post(url, json=body, timeout=TIMEOUT)
    return time.monotonic() - started, response


def warnings_about(service, since: int, kind: str) -> list[dict]:
    """Return the service's WARNING lines since ``since`` about a database failure of ``kind``."""
    lines = [json.loads(line) for line in service.lines(since) if line.strip()]
    return [ln for ln in lines if ln.get("database_error") == kind and ln["level"] == "WARNING"]


def assert_ready(url: str) -> dict:
    """Assert /readyz answers 200 in time, and return its body."""
    took, response = timed_get(f"{url}/readyz")
    assert response.status_code == 200, response.text
    assert took < HEALTH_CHECK_TIMEOUT + LOAD_SLACK, took
    return response.json()


def assert_unready(url: str, check: str, *errors: str) -> None:
    """Assert /readyz answers 503 in time, ``check`` failing with one of ``errors``."""
    took, response = timed_get(f"{url}/readyz")
    assert response.status_code == 503, response.text
    assert took < HEALTH_CHECK_TIMEOUT + LOAD_SLACK, took
    assert response.json()["status"] == "unavailable"
    reported = response.json()["checks"][check]["error"]
    assert any(error in reported for error in errors), response.text


# --------------------------------------------------------------------------- Redis


@each("use_redis")
def test_a_frozen_redis_costs_one_timeout_per_worker_and_the_service_stays_ready(deployment):
    """It answers reads fast after one REDIS_TIMEOUT per worker, writes within two, stays ready,
    and recovers."""
    server, service = deployment.redis, deployment.service
    created = requests.post(f"{deployment.entry}/api/items", json={"name": "ice"}, timeout=TIMEOUT)
    location = created.headers["Location"]
    celery_processes.await_processed(deployment, created.json()["id"])
    item = f"{deployment.entry}{location}"
    requests.get(item, timeout=TIMEOUT)
    assert requests.get(item, timeout=TIMEOUT).headers["X-Cache"] == "hit"

    with frozen(server.process.pid):
        frozen_at = time.monotonic()
        durations = {}
        for url in entries(deployment):
            durations[url] = []
            for _ in range(8):
                took, read = timed_get(f"{url}{location}")
                assert read.status_code == 200
                assert read.headers["X-Cache"] == "miss"
                durations[url].append(round(took, 3))
            # The limits count in memory once a write timed out, and try Redis again after
            # REDIS_RETRY_INTERVAL: no write waits more than one timeout. (A Celery bake's write
            # also sends its task to the frozen broker: test_celery_faults.)
            for _ in range(0 if deployment.combo.selected("use_celery") else 3):
                took, write = timed_post(f"{url}/api/items", {"name": "thawing"})
                assert write.status_code == 201, write.text
                assert took < REDIS_TIMEOUT + LOAD_SLACK, took
            body = assert_ready(url)
            assert body["status"] == "degraded"
            assert body["checks"]["redis"]["status"] == "degraded"
            assert body["checks"]["database"]["status"] == "ok"
        every = [took for series in durations.values() for took in series]
        # A read that waited out a timeout took at least REDIS_TIMEOUT; one slowed by the load alone
        # (the other test worker, the servers) rarely takes most of it.
        slow = [took for took in every if took > REDIS_TIMEOUT * 0.9]
        print(f"{deployment.combo.id}: GET seconds with Redis frozen: {durations}")
        assert all(took < REDIS_TIMEOUT + LOAD_SLACK for took in every), durations
        # One timeout per worker at most in each REDIS_RETRY_INTERVAL (the writes and probes
        # between the reads of two entries can outlast one interval).
        intervals = 1 + int((time.monotonic() - frozen_at) // REDIS_RETRY_INTERVAL)
        assert len(slow) <= len(service.workers()) * intervals, durations
    back = time.monotonic()
    client = server.client(deployment.redis_db)
    client.flushdb()  # what comes back into Redis now was written after the thaw

    def cached_in_redis() -> bool:
        requests.get(item, timeout=TIMEOUT)
        return requests.get(item, timeout=TIMEOUT).headers["X-Cache"] == "hit"

    def limits_in_redis() -> bool:
        requests.post(f"{deployment.entry}/api/items", json={"name": "n"}, timeout=TIMEOUT)
        return any(key.startswith(b"LIMITS:") for key in client.keys("*"))

    wait_until(cached_in_redis, 30, "a cache hit from Redis again", interval=0.5)
    # Each worker calls Redis again once its own REDIS_RETRY_INTERVAL is over.
    wait_until(
        lambda: assert_ready(deployment.entry)["status"] == "ok", 30, "redis ok", interval=0.5
    )
    # The limits too, each worker once its own REDIS_RETRY_INTERVAL is over.
    wait_until(limits_in_redis, REDIS_RETRY_INTERVAL + 10, "rate-limit counters back in Redis", 0.5)
    wait_out_redis_pauses(back)


# --------------------------------------------------------------------------- PostgreSQL


def threads(pids: list[int]) -> dict[int, int]:
    """Return the number of threads of each process."""
    return {pid: len(list(Path(f"/proc/{pid}/task").iterdir())) for pid in pids}


@each("use_postgres")
def test_a_frozen_postgres_gives_bounded_probes_that_do_not_pile_up(deployment):
    """It answers /readyz 503 within HEALTH_CHECK_TIMEOUT while PostgreSQL hangs, and recovers.

    Checks still running from an earlier probe are reused, not started again: the workers'
    thread counts grow by at most the hung checks (database, schema) and what serves requests.
    """
    postmaster, workers = deployment.postgres.process.pid, deployment.service.workers()
    for _ in range(4):
        assert_ready(deployment.entry)
    before = threads(workers)
    with frozen(*children(postmaster), postmaster):
        for url in entries(deployment):
            for _ in range(6):  # a hung query never answers; a new connection times out after 3 s
                assert_unready(url, "database", "no answer", "The database is not reachable.")
        assert requests.get(f"{deployment.entry}/healthz", timeout=TIMEOUT).status_code == 200
        during = threads(workers)
    print(f"{deployment.combo.id}: threads per worker before {before}, frozen {during}")
    assert all(during[pid] - before[pid] <= 4 for pid in workers), (before, during)
    wait_until(lambda: assert_ready(deployment.entry), 15, "ready again")


def read_in_parallel(url: str, count: int) -> list[int]:
    """GET ``url`` ``count`` times from several clients, each on a new connection; the statuses."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: timed_get(url)[1].status_code, range(count)))


@each("use_postgres")
def test_a_restarted_postgres_is_used_again_without_an_error_to_clients(deployment):
    """It replaces the pooled connections a PostgreSQL restart closed before any request uses one.

    The pools fill first (every worker keeps idle connections); no request arrives while the
    server is down, so each request after the restart meets connections the server closed.
    """
    url = f"{deployment.service.url}/api/items"
    assert read_in_parallel(url, 32) == [200] * 32
    deployment.postgres.stop()
    deployment.postgres.start()
    assert read_in_parallel(url, 32) == [200] * 32


@contextlib.contextmanager
def tls_postgres(postgres) -> Iterator[None]:
    """Restart ``postgres`` with TLS on (a self-signed certificate made here) for the block,
    then restart it as it was."""
    folder = owned_dir(postgres.root / "tls")  # its user reaches nothing under tmp_path
    key, certificate = folder / "server.key", folder / "server.crt"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(certificate)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    account = unprivileged_user()
    for path in (key, certificate):
        os.chown(path, account.pw_uid, account.pw_gid)
    key.chmod(0o600)  # PostgreSQL refuses a key others may read
    postgres.settings = ("ssl=on", f"ssl_cert_file={certificate}", f"ssl_key_file={key}")
    postgres.stop()
    postgres.start()
    try:
        yield
    finally:
        postgres.settings = ()
        postgres.stop()
        postgres.start()


TLS_CLIENT = "tier2-tls"  # the application_name of the TLS service's connections


def service_backends(deployment) -> set[int]:
    """Return the pids of the server processes serving the TLS service's connections, failing
    if one of them is not encrypted."""
    query = (
        "SELECT a.pid, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        "WHERE a.application_name = %s"
    )
    with deployment.postgres.connect("postgres") as connection:
        rows = connection.execute(query, (TLS_CLIENT,)).fetchall()
    assert all(encrypted for _, encrypted in rows), rows
    return {pid for pid, _ in rows}


@each("use_postgres")
def test_over_tls_idle_connections_are_kept_and_those_a_restart_closed_are_replaced(deployment):
    """With `sslmode=require`, the checkout's look at the socket keeps a healthy connection (no
    TLS record waits on an idle one: sequential reads open no new connection) and replaces the
    ones a restart closed before any request uses one."""
    with tls_postgres(deployment.postgres):
        database = deployment.postgres.url(deployment.database)
        database_url = f"{database}?sslmode=require&application_name={TLS_CLIENT}"
        # One worker: the sequential reads below share the pool the parallel ones filled (with
        # two, one worker may win every parallel read and the other open its first connection).
        service = deployment.extra_service("tls", DATABASE_URL=database_url, WEB_CONCURRENCY="1")
        url = f"{service.url}/api/items"
        assert read_in_parallel(url, 32) == [200] * 32
        pooled = service_backends(deployment)
        assert pooled, "no connection of the service is open"
        with requests.Session() as session:
            statuses = [session.get(url, timeout=TIMEOUT).status_code for _ in range(50)]
        assert statuses == [200] * 50
        assert service_backends(deployment) <= pooled  # every read used a pooled connection
        deployment.postgres.stop()
        deployment.postgres.start()
        assert read_in_parallel(url, 32) == [200] * 32


@each("use_postgres")
def test_a_read_only_postgres_is_unready_and_writes_get_503_saying_so(deployment):
    """It fails readiness and answers 503 "read-only" to writes on a read-only database."""
    database, service = deployment.database, deployment.service

    def set_read_only(on: bool) -> None:
        with deployment.postgres.connect("postgres") as connection:
            setting = "SET default_transaction_read_only = on" if on else "RESET ALL"
            connection.execute(f'ALTER DATABASE "{database}" {setting}')
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )

    since = service.mark()
    set_read_only(True)
    try:
        for url in entries(deployment):
            wait_until(lambda u=url: timed_get(f"{u}/readyz")[1].status_code == 503, 10, "unready")
            assert_unready(url, "database", "The database is read-only.")
            write = requests.post(f"{url}/api/items", json={"name": "ro"}, timeout=TIMEOUT)
            body = assert_json_error(write, 503)
            assert body["error"]["detail"] == "The database is read-only."
            assert write.headers["Retry-After"] == "5"  # the database's hint, not the limiter's
            assert requests.get(f"{url}/api/items", timeout=TIMEOUT).status_code == 200
        warnings = warnings_about(service, since, "read-only")
        assert warnings and "read-only transaction" in warnings[0]["message"], warnings
    finally:
        set_read_only(False)
    wait_until(lambda: assert_ready(deployment.entry)["status"] != "unavailable", 15, "ready")
    created = requests.post(f"{deployment.entry}/api/items", json={"name": "rw"}, timeout=TIMEOUT)
    assert created.status_code == 201


@each("use_postgres")
def test_an_unmigrated_database_is_unready_and_answers_503_until_migrated(deployment):
    """It reports the schema behind and answers 503 naming it, not 500, until migrations run;
    a schema ahead of the code (a newer release's migration) keeps it ready."""
    database = deployment.postgres.create_database(f"{deployment.combo.id}_unmigrated")
    url = deployment.postgres.url(database)
    fresh = deployment.extra_service("unmigrated", DATABASE_URL=url)
    since = fresh.mark()
    assert_unready(fresh.url, "schema", "run the migrations")
    for request in (
        lambda: requests.get(f"{fresh.url}/api/items", timeout=TIMEOUT),
        lambda: requests.post(f"{fresh.url}/api/items", json={"name": "x"}, timeout=TIMEOUT),
    ):
        body = assert_json_error(request(), 503)
        assert "schema" in body["error"]["detail"]
    assert warnings_about(fresh, since, "schema")

    command = compose_command(compose_services(deployment.bake)["migrate"])
    migrated = deployment.new_service("migrate-unmigrated", DATABASE_URL=url).run_once(command)
    assert migrated.returncode == 0, migrated.stderr
    assert assert_ready(fresh.url)["checks"]["schema"]["status"] == "ok"
    # With use_auth, the deployment's user is in its own database: this one gets a user too.
    own = sign_up(deployment, service=fresh).header if deployment.account else {}
    assert requests.post(
        f"{fresh.url}/api/items", json={"name": "x"}, headers=own, timeout=TIMEOUT
    ).ok

    # A newer release migrated the database during a rolling deployment: this one keeps serving.
    with deployment.postgres.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'from_a_newer_release'")
    assert assert_ready(fresh.url)["checks"]["schema"]["status"] == "ok"


# --------------------------------------------------------------------------- SQLite


@each(without=("use_postgres",))
def test_an_unwritable_sqlite_folder_is_unready_and_writes_get_503_saying_so(deployment):
    """It fails readiness and answers 503 "read-only" while the data folder is read-only."""
    folder, service = deployment.sqlite_file.parent, deployment.service
    mode = folder.stat().st_mode
    since = service.mark()
    folder.chmod(0o555)
    try:
        for url in entries(deployment):
            assert_unready(url, "database", "The database is read-only.")
            write = requests.post(f"{url}/api/items", json={"name": "ro"}, timeout=TIMEOUT)
            body = assert_json_error(write, 503)
            assert body["error"]["detail"] == "The database is read-only."
            assert requests.get(f"{url}/api/items", timeout=TIMEOUT).status_code == 200
        warnings = warnings_about(service, since, "read-only")
        assert warnings and "readonly database" in warnings[0]["message"], warnings
    finally:
        folder.chmod(mode)
    assert assert_ready(deployment.entry)["checks"]["database"]["status"] == "ok"
    created = requests.post(f"{deployment.entry}/api/items", json={"name": "rw"}, timeout=TIMEOUT)
    assert created.status_code == 201


@each(without=("use_postgres",))
def test_a_write_waits_for_another_sqlite_writer_up_to_the_statement_timeout(deployment):
    """It keeps a write waiting while another writer holds the SQLite file's lock, and stores it
    once the lock is released; a write still waiting at DATABASE_STATEMENT_TIMEOUT (1 s on a
    second instance) is answered 503 "locked". Reads go on meanwhile."""
    hasty = deployment.extra_service("lock-wait", DATABASE_STATEMENT_TIMEOUT="1")
    since = hasty.mark()
    items = f"{deployment.entry}/api/items"
    with (
        ThreadPoolExecutor(1) as pool,
        contextlib.closing(sqlite3.connect(deployment.sqlite_file, timeout=1)) as other,
    ):
        other.execute("BEGIN IMMEDIATE")  # another writer, holding the write lock
        try:
            waiting = pool.submit(requests.post, items, json={"name": "waited"}, timeout=TIMEOUT)
            started = time.monotonic()
            write = requests.post(f"{hasty.url}/api/items", json={"name": "no"}, timeout=TIMEOUT)
            answered_after = time.monotonic() - started
            assert requests.get(items, timeout=TIMEOUT).status_code == 200
            assert not waiting.done()  # still waiting for the lock, past the other's timeout
        finally:
            other.rollback()
        waited = waiting.result()
    assert waited.status_code == 201, waited.text
    body = assert_json_error(write, 503)
    assert "locked" in body["error"]["detail"]
    assert 0.9 <= answered_after < 4, answered_after  # not the driver's own 5 s
    assert write.headers["Retry-After"] == "5"  # the database's hint, not the limiter's
    warnings = warnings_about(hasty, since, "locked")
    assert warnings and "database is locked" in warnings[0]["message"], warnings
    created = requests.post(f"{deployment.entry}/api/items", json={"name": "free"}, timeout=TIMEOUT)
    assert created.status_code == 201


# --------------------------------------------------------------------------- rate limits


@each()
def test_a_refusal_says_when_to_retry(deployment):
    """It answers 429 JSON with a Retry-After of at most the window, and sends none on an answer
    that is no refusal (a limited route's 200s, or a route not limited: reads, by default)."""
    plain = deployment.service  # reads not limited, as the service ships
    assert plain.env["RATELIMIT_DEFAULT"] == "", plain.env.get("RATELIMIT_DEFAULT")
    assert "Retry-After" not in requests.get(f"{plain.url}/api/items", timeout=TIMEOUT).headers
    limited = deployment.extra_service("retry-after", RATELIMIT_DEFAULT="2 per minute")
    statuses = []
    for _ in range(12):  # each worker counts on its own without Redis: 2 x 2 at most
        answer = requests.get(f"{limited.url}/api/items", timeout=TIMEOUT)
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert_json_error(answer, 429)
            assert 0 < int(answer.headers["Retry-After"]) <= 60
        else:
            assert "Retry-After" not in answer.headers, answer.headers
    assert 429 in statuses, statuses


@each(without=("use_redis",))
def test_without_redis_limits_are_counted_per_worker_as_the_docs_say(deployment):
    """It allows between the limit and the limit times the workers, which the docs state."""
    limited = deployment.extra_service("per-worker", RATELIMIT_WRITE="5 per minute")
    workers = int(limited.env["WEB_CONCURRENCY"])
    accepted = 0
    for _ in range(5 * workers + 10):
        answer = requests.post(
            f"{limited.url}/api/items",
            json={"name": "n"},
            headers={"Connection": "close"},
            timeout=TIMEOUT,
        )
        accepted += answer.status_code == 201
    assert 5 <= accepted <= 5 * workers, accepted
    configuration = (deployment.bake / "docs" / "configuration.md").read_text()
    words = " ".join(configuration.split())  # as rendered: Markdown joins wrapped lines
    assert "in each worker's memory, so a client gets up to the limit times" in words


# --------------------------------------------------------------------------- Redis restarted
# Last in the module: the restart empties every database index of this worker's Redis.


@each("use_redis")
def test_a_restarted_redis_is_used_again_at_once_without_a_warning(deployment):
    """redis-py's pool checks a connection before handing it out: after a restart the closed
    ones are replaced unseen, so the next reads are cached and writes counted in Redis at once,
    with no failure logged and no REDIS_RETRY_INTERVAL spent without Redis.

    A service of its own, whose Redis timeout is far above what a loaded machine can stall a
    call for: a timeout would pause the cache for reasons other than the restart.
    """
    server = deployment.redis
    service = deployment.extra_service("redis-restart", REDIS_TIMEOUT=str(PATIENT_REDIS_TIMEOUT))
    created = requests.post(f"{service.url}/api/items", json={"name": "phoenix"}, timeout=TIMEOUT)
    location = created.headers["Location"]
    celery_processes.await_processed(deployment, created.json()["id"])
    # Many reads at once, each on a connection of its own: most threads of every worker now
    # hold a Redis connection.
    with ThreadPoolExecutor(max_workers=16) as pool:
        warm = list(pool.map(lambda _: timed_get(f"{service.url}{location}")[1], range(48)))
    assert {read.status_code for read in warm} == {200}
    assert warm[-1].headers["X-Cache"] == "hit"
    assert assert_ready(service.url)["checks"]["redis"]["status"] == "ok"

    # Every worker has built its app before the log is marked: a worker still starting would
    # log its start's warning after the mark. Mail is unset here, so in auth bakes (mail comes
    # with accounts) each worker says so once; the other bakes' workers warn of nothing.
    if deployment.combo.selected("use_auth"):
        workers = int(service.env["WEB_CONCURRENCY"])
        wait_until(
            lambda: sum('"mail is off:' in line for line in service.lines()) >= workers,
            TIMEOUT,
            "every worker's start",
        )
    server.stop()
    server.start()  # the same port, nothing stored: every kept connection was closed by it
    since = service.mark()
    client = server.client(deployment.redis_db)
    caches = []
    for _ in range(32):
        took, read = timed_get(f"{service.url}{location}")
        assert read.status_code == 200, read.text
        assert took < PATIENT_REDIS_TIMEOUT, took
        caches.append(read.headers["X-Cache"])
    assert assert_ready(service.url)["checks"]["redis"]["status"] == "ok"
    # The first read found the restarted Redis empty and filled it; every later one hit it.
    assert caches == ["miss"] + ["hit"] * (len(caches) - 1), caches
    write = requests.post(f"{service.url}/api/items", json={"name": "counted"}, timeout=TIMEOUT)
    assert write.status_code == 201, write.text
    assert any(key.startswith(b"LIMITS:") for key in client.keys("*"))
    lines = [json.loads(line) for line in service.lines(since) if line.strip()]
    trouble = [line for line in lines if line.get("level") in ("WARNING", "ERROR", "CRITICAL")]
    assert trouble == [], trouble
