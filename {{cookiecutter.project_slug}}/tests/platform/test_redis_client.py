"""Redis keeps the cache and the rate limits; when it fails, reads miss the cache, limits count
in memory, readiness stays 200 "degraded", and no request gets a 500."""

import logging
import os
import socket
import time
from collections.abc import Callable

import pytest
import redis
from limits.storage import RedisStorage
from werkzeug.test import TestResponse

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.settings import Settings, SettingsError, load_settings
from tests.conftest import connections_to, writer_of

UNREACHABLE = "redis://127.0.0.1:1/0"
needs_redis = pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="needs a Redis server: set TEST_REDIS_URL"
)


class FrozenRedis:
    """A "Redis" that accepts connections and never answers, like a frozen one.

    The kernel completes connections into the listen backlog; nothing reads or writes them. A call
    that tries Redis opens one connection (redis-py drops a connection that timed out), so their
    count says which calls tried Redis, however slow the machine is.
    """

    def __init__(self, server: socket.socket) -> None:
        self.server = server
        self.url = f"redis://127.0.0.1:{server.getsockname()[1]}/0"
        self.last_seen = 0.0  # when connections() last found one: after the call's timeout

    def connections(self) -> int:
        """Return how many connections were made since the last call."""
        count = connections_to(self.server)
        if count:
            self.last_seen = time.monotonic()
        return count

    def wait_for_retry(self, interval: float) -> None:
        """Sleep until a call may try Redis again: ``interval`` after the last timeout."""
        time.sleep(max(0.0, self.last_seen + interval + 0.1 - time.monotonic()))


@pytest.fixture
def frozen_redis():
    """Return a FrozenRedis listening on a free loopback port."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield FrozenRedis(server)


def timed(client, method: str, path: str, **kwargs):
    """Return the seconds a request took and its response."""
    started = time.monotonic()
    response = client.open(path, method=method, **kwargs)
    return time.monotonic() - started, response


def test_readiness_reports_redis_degraded_and_stays_ready(settings_overrides):
    """It answers 200 "degraded" with redis degraded and the database ok when Redis is down."""
    app = create_app({**settings_overrides, "redis_url": UNREACHABLE})
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["checks"]["redis"]["status"] == "degraded"
    assert response.get_json()["checks"]["database"]["status"] == "ok"


def test_reads_and_writes_go_on_while_redis_is_down(settings_overrides):
    """It serves reads from the database, uncached, and counts writes in memory."""
    overrides = {"redis_url": UNREACHABLE, "app_env": "development", "ratelimit_write": "2/minute"}
    client = writer_of(create_app({**settings_overrides, **overrides}))  # counts afresh
    created = [client.post("/api/items", json={"name": "still works"}) for _ in range(3)]
    assert [response.status_code for response in created] == [201, 201, 429]
    assert created[1].headers["X-RateLimit-Remaining"] == "0"
    for _ in range(2):
        response = client.get(created[0].headers["Location"])
        assert response.status_code == 200
        assert response.headers["X-Cache"] == "miss"


@pytest.mark.parametrize(
    "url",
    ["redis//127.0.0.1:6379/0", "http://127.0.0.1:6379", "redis://h:six/0", "redis://h/zero"],
)
def test_an_invalid_redis_url_is_named_and_shown(monkeypatch, url):
    """It refuses at start-up a REDIS_URL redis-py cannot use, naming it with its value."""
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(SettingsError, match="REDIS_URL=") as caught:
        load_settings(Settings, {"app_env": "test"})
    assert f"REDIS_URL={url!r}: " in str(caught.value)


def test_an_invalid_redis_url_is_shown_without_its_password(monkeypatch):
    """It masks the password of a refused REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", "redis://:pw-1@127.0.0.1:6379/zero")
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings, {"app_env": "test"})
    assert "REDIS_URL='redis://:***@127.0.0.1:6379/zero': " in str(caught.value)
    assert "pw-1" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@127.0.0.1:6380/1", "unix:///run/r.sock?db=0"]
)
def test_a_valid_redis_url_is_accepted(monkeypatch, url):
    """It accepts TCP, TLS and Unix-socket Redis URLs."""
    monkeypatch.setenv("REDIS_URL", url)
    assert load_settings(Settings, {"app_env": "test"}).redis_url == url


def test_the_cache_and_the_limiter_keep_their_data_in_redis(settings_overrides):
    """It points the cache and the rate-limit storage at REDIS_URL, with REDIS_TIMEOUT sockets
    and one attempt per call (redis-py's default retries would multiply a timeout)."""
    app = create_app({**settings_overrides, "redis_url": UNREACHABLE, "redis_timeout": 0.3})
    assert app.config["CACHE_TYPE"] == "RedisCache"
    assert app.config["CACHE_REDIS_URL"] == UNREACHABLE
    storage = app.extensions["rate_limits"].strategy.storage
    assert isinstance(storage, RedisStorage)
    pool = storage.storage.connection_pool
    assert pool.connection_kwargs["port"] == 1
    options = pool.connection_kwargs
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.3
    assert storage.storage.get_retry().get_retries() == 0


def test_a_unix_socket_redis_url_counts_limits(settings_overrides, tmp_path):
    """It accepts a unix:// REDIS_URL for the rate limits too (`limits` names it redis+unix):
    the service starts, and counts in memory while the socket does not answer."""
    url = f"unix://{tmp_path / 'redis.sock'}?db=0"
    overrides = {"redis_url": url, "app_env": "development", "ratelimit_write": "1/minute"}
    client = writer_of(create_app({**settings_overrides, **overrides}))
    created = [client.post("/api/items", json={"name": "unix"}) for _ in range(2)]
    assert [response.status_code for response in created] == [201, 429]


def skipped(
    call: Callable[[int], TestResponse],
    frozen_redis: FrozenRedis,
    interval_ends: float,
    times: int = 3,
) -> list[TestResponse]:
    """Return the responses of ``call`` made ``times`` times, or until ``interval_ends``; each
    answered before then must have left Redis alone, and the first must be.

    The interval ends after the first call's timeout: a slow machine can outlast it.
    """
    responses: list[TestResponse] = []
    while len(responses) < times:
        responses.append(call(len(responses)))
        if time.monotonic() >= interval_ends:  # this call may have tried Redis again
            assert len(responses) > 1, "the first call after the timeout came after the interval"
            frozen_redis.connections()
            break
        assert frozen_redis.connections() == 0, f"call {len(responses)} tried Redis"
    return responses


def test_a_frozen_redis_costs_a_read_one_timeout_per_retry_interval(
    settings_overrides, frozen_redis
):
    """It waits one REDIS_TIMEOUT on a frozen Redis, skips the cache for the interval, then
    lets one read try it again."""
    timeout, interval = 1.0, 2.0
    overrides = {"redis_url": frozen_redis.url, "redis_timeout": timeout}
    app = create_app({**settings_overrides, **overrides, "redis_retry_interval": interval})
    client = writer_of(app)
    created = client.post("/api/items", json={"name": "frozen"})  # APP_ENV=test: not limited
    assert created.status_code == 201
    assert frozen_redis.connections() == 0  # a write leaves the cache alone
    location = created.headers["Location"]
    started = time.monotonic()
    took, read = timed(client, "GET", location)
    assert read.status_code == 200
    assert took >= timeout * 0.9  # it waited for Redis
    assert frozen_redis.connections() == 1  # once
    reads = skipped(lambda _: client.get(location), frozen_redis, started + timeout + interval, 5)
    assert [(r.status_code, r.headers["X-Cache"]) for r in reads] == [(200, "miss")] * len(reads)
    frozen_redis.wait_for_retry(interval)
    took, read = timed(client, "GET", location)
    assert read.status_code == 200
    assert took >= timeout * 0.9
    assert frozen_redis.connections() == 1  # one read tried Redis again, once


def test_a_frozen_redis_costs_writes_one_timeout_per_retry_interval(
    settings_overrides, frozen_redis
):
    """It counts writes in memory once Redis timed out: the first write waits one REDIS_TIMEOUT,
    the next ones none for REDIS_RETRY_INTERVAL, then one write tries Redis again, once."""
    timeout, interval = 1.0, 2.0
    overrides = {"redis_url": frozen_redis.url, "redis_timeout": timeout, "app_env": "development"}
    overrides["redis_retry_interval"] = interval
    client = writer_of(create_app({**settings_overrides, **overrides}))
    started = time.monotonic()
    took, created = timed(client, "POST", "/api/items", json={"name": "frozen"})
    assert created.status_code == 201
    assert created.headers["X-RateLimit-Remaining"] == "59"  # counted in memory
    assert took >= timeout * 0.9  # it waited for Redis
    assert frozen_redis.connections() == 1  # once

    def write(n: int):
        return client.post("/api/items", json={"name": f"frozen {n}"})

    writes = skipped(write, frozen_redis, started + timeout + interval)
    assert [r.status_code for r in writes] == [201] * len(writes)
    assert [r.headers["X-RateLimit-Remaining"] for r in writes] == ["58", "57", "56"][: len(writes)]
    frozen_redis.wait_for_retry(interval)
    took, created = timed(client, "POST", "/api/items", json={"name": "frozen again"})
    assert created.status_code == 201
    assert took >= timeout * 0.9
    assert frozen_redis.connections() == 1  # one write tried Redis again, once


def test_a_read_not_limited_never_waits_for_the_limiters_retry(settings_overrides, frozen_redis):
    """It answers a read at once while the limiter's Redis is failing, its retry due: requests
    that are not counted never touch the rate limits' storage; the next write retries it."""
    timeout, interval = 1.0, 0.2  # any interval: the read comes once the retry is due
    overrides = {"redis_url": frozen_redis.url, "redis_timeout": timeout, "app_env": "development"}
    overrides["redis_retry_interval"] = interval
    client = writer_of(create_app({**settings_overrides, **overrides}))
    assert client.post("/api/items", json={"name": "frozen"}).status_code == 201  # times out
    assert frozen_redis.connections() == 1
    time.sleep(interval + 0.1)  # the next counted request tries Redis again
    read = client.get("/api/items")  # a list: the cache is not involved
    assert read.status_code == 200
    assert frozen_redis.connections() == 0  # the read did not take the retry
    took, created = timed(client, "POST", "/api/items", json={"name": "frozen again"})
    assert created.status_code == 201
    assert took >= 0.9 * timeout
    assert frozen_redis.connections() == 1  # the write took it


@needs_redis
def test_a_new_connection_asks_for_no_maintenance_notifications(make_app, caplog):
    """It connects without asking for maintenance notifications, which a Redis without them
    (7.x) refuses: redis-py then logs a DEBUG line on every new connection."""
    app = make_app(app_env="development")
    redis_log = logging.getLogger("redis")
    redis_log.addHandler(caplog.handler)  # the app's logging setup replaced the root's handlers
    try:
        with caplog.at_level(logging.DEBUG, logger="redis"):
            assert app.test_client().get("/api/items/1").status_code == 404  # cache, then 404
            assert app.extensions["rate_limits"].strategy.storage.check()  # the limits' own
    finally:
        redis_log.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if "maintenance" in r.getMessage().lower()]


@needs_redis
def test_a_cached_read_lands_in_redis(writer):
    """It stores a read item in Redis under the app's key prefix."""
    location = writer.post("/api/items", json={"name": "in redis"}).headers["Location"]
    writer.get(location)
    server = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    assert server.keys("{{ cookiecutter.package_name }}:item:*")
    assert writer.get(location).headers["X-Cache"] == "hit"
    server.close()


@needs_redis
def test_limits_are_counted_in_redis_where_every_worker_sees_them(make_app):
    """It keeps the counts in Redis: an app started afresh (another worker) continues them."""
    first = make_app(app_env="development", ratelimit_default="3 per minute")
    first.extensions["rate_limits"].reset()
    assert [first.test_client().get("/api/items").status_code for _ in range(3)] == [200] * 3
    second = make_app(app_env="development", ratelimit_default="3 per minute")
    assert second.test_client().get("/api/items").status_code == 429
