"""Redis backs the cache and rate limits; when it fails, reads degrade, readiness stays 200,
and the app stops calling it for REDIS_RETRY_INTERVAL so a frozen Redis costs one timeout."""

import os
import socket
import threading
import time

import pytest
import redis

from {{ cookiecutter.package_name }} import create_app, rate_limits
from {{ cookiecutter.package_name }}.rate_limits import parse_limits
from {{ cookiecutter.package_name }}.redis_breaker import Breaker, GuardedConnection, RedisSkipped
from {{ cookiecutter.package_name }}.redis_store import client_options
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture
def frozen_redis():
    """Return the URL of a "Redis" that accepts connections and never answers, like a frozen one.

    The kernel completes connections into the listen backlog; nothing ever reads or writes them.
    """
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


def test_readiness_reports_redis_degraded_and_stays_ready(settings_overrides):
    """It answers 200 "degraded" with redis degraded and the database ok when Redis is down."""
    app = create_app({**settings_overrides, "redis_url": UNREACHABLE})
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "degraded"
    assert response.json["checks"]["redis"]["status"] == "degraded"
    assert response.json["checks"]["database"]["status"] == "ok"


def test_reads_degrade_to_the_database_when_redis_is_down(settings_overrides):
    """It serves reads from the database, uncached, while Redis is down."""
    client = create_app({**settings_overrides, "redis_url": UNREACHABLE}).test_client()
    location = client.post("/api/items", json={"name": "still works"}).headers["Location"]
    for _ in range(2):
        response = client.get(location)
        assert response.status_code == 200
        assert response.headers["X-Cache"] == "miss"


@pytest.mark.parametrize(
    "url",
    ["redis//127.0.0.1:6379/0", "http://127.0.0.1:6379", "redis://h:six/0", "redis://h/zero"],
)
def test_an_invalid_redis_url_is_named_but_not_echoed(monkeypatch, url):
    """It refuses at start-up a REDIS_URL redis-py cannot use, naming it without its value."""
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(SettingsError, match="REDIS_URL='<hidden>'") as caught:
        load_settings({"app_env": "test"})
    assert url not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@127.0.0.1:6380/1", "unix:///run/r.sock?db=0"]
)
def test_a_valid_redis_url_is_accepted(monkeypatch, url):
    """It accepts TCP, TLS and Unix-socket Redis URLs."""
    monkeypatch.setenv("REDIS_URL", url)
    assert load_settings({"app_env": "test"}).redis_url == url


def test_the_cache_and_the_limiter_keep_their_data_in_redis(settings_overrides):
    """It points the cache and the rate-limit storage at REDIS_URL, with the same client options."""
    app = create_app({**settings_overrides, "redis_url": UNREACHABLE})
    assert app.config["CACHE_TYPE"] == "RedisCache"
    options = app.config["CACHE_OPTIONS"]
    pool = app.extensions["rate_limits"].counts.shared.storage.connection_pool
    assert pool.connection_class is options["connection_class"]
    assert pool.connection_kwargs["breaker"] is options["breaker"]
    assert pool.connection_kwargs["port"] == 1  # UNREACHABLE's


def timed(client, method: str, path: str, **kwargs):
    """Return the seconds a request took and its response."""
    started = time.monotonic()
    response = client.open(path, method=method, **kwargs)
    return time.monotonic() - started, response


def test_a_frozen_redis_costs_one_timeout_then_is_skipped_until_the_interval(
    settings_overrides, frozen_redis
):
    """It waits one REDIS_TIMEOUT on a frozen Redis, skips it for the interval, then tries again."""
    # Wide margins, for a loaded machine: a skipped call takes well under one timeout, and a
    # call that tried Redis takes one timeout (plus the request's own work), never two.
    timeout, interval = 1.0, 4.0
    redis_settings = {"redis_url": frozen_redis, "redis_timeout": timeout}
    overrides = {**redis_settings, "app_env": "development", "redis_retry_interval": interval}
    client = create_app({**settings_overrides, **overrides}).test_client()
    first, created = timed(client, "POST", "/api/items", json={"name": "frozen"})
    assert created.status_code == 201
    assert timeout * 0.9 <= first < 2 * timeout
    for _ in range(5):
        took, read = timed(client, "GET", created.headers["Location"])
        assert read.status_code == 200
        assert read.headers["X-Cache"] == "miss"
        assert took < timeout * 0.5
    ready = client.get("/readyz").json
    assert ready["checks"]["redis"] == {"status": "degraded", "error": "RedisSkipped"}
    time.sleep(interval + 0.1)
    again, read = timed(client, "GET", created.headers["Location"])
    assert read.status_code == 200
    assert timeout * 0.9 <= again < 2 * timeout  # one call tried Redis again, once


def test_the_breaker_lets_one_caller_try_again_after_the_interval():
    """It refuses calls for the interval after a failure, then lets exactly one thread try."""
    breaker = Breaker(interval=0.2)
    breaker.allow()
    breaker.failed(redis.TimeoutError("frozen"))
    with pytest.raises(RedisSkipped):
        breaker.allow()
    time.sleep(0.25)
    breaker.allow()  # this thread now tries Redis; others keep skipping meanwhile
    refused = []

    def other() -> None:
        try:
            breaker.allow()
        except RedisSkipped:
            refused.append(True)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    assert refused == [True]
    breaker.answered()
    breaker.allow()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:1/0", redis.connection.Connection),
        ("rediss://127.0.0.1:1/0", redis.connection.SSLConnection),
        ("unix:///run/redis.sock?db=0", redis.connection.UnixDomainSocketConnection),
    ],
)
def test_the_guarded_connection_keeps_the_urls_transport(url, kind):
    """It guards TLS and Unix-socket URLs with connections of their own kind, not plain TCP."""
    client = redis.Redis.from_url(url, **client_options(url, 0.1, Breaker(interval=1)))
    assert issubclass(client.connection_pool.connection_class, kind)
    client.close()


def test_redis_replies_are_parsed_by_hiredis():
    """It parses Redis replies in C (hiredis, pinned in requirements.txt), not in Python."""
    url = "redis://127.0.0.1:1/0"
    client = redis.Redis.from_url(url, **client_options(url, 0.1, Breaker(interval=1)))
    connection = client.connection_pool.make_connection()
    assert isinstance(connection._parser, redis.connection._HiredisParser)
    client.close()


@pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="needs a Redis server: set TEST_REDIS_URL"
)
def test_cached_read_lands_in_redis(client):
    """It stores a read item in Redis under the app's key prefix."""
    location = client.post("/api/items", json={"name": "in redis"}).headers["Location"]
    client.get(location)
    server = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    assert server.keys("{{ cookiecutter.package_name }}:item:*")
    assert client.get(location).headers["X-Cache"] == "hit"


@pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="needs a Redis server: set TEST_REDIS_URL"
)
def test_a_cache_hit_costs_two_redis_calls_one_for_its_limit(make_app, monkeypatch):
    """It sends one command for the rate limit (headers included) and one for the cache."""
    client = make_app(app_env="development", ratelimit_default="50 per minute").test_client()
    with client.application.app_context():
        rate_limits.reset()
    location = client.post("/api/items", json={"name": "hit"}).headers["Location"]
    client.get(location)  # a miss: read and cached
    sent = []
    original = GuardedConnection.send_packed_command

    def counted(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(GuardedConnection, "send_packed_command", counted)
    response = client.get(location)
    assert response.headers["X-Cache"] == "hit"
    assert response.headers["X-RateLimit-Remaining"] == "48"  # the miss, then this hit
    assert len(sent) == 2, sent


@pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="needs a Redis server: set TEST_REDIS_URL"
)
def test_limits_are_counted_in_redis_where_every_worker_sees_them(make_app):
    """It keeps the counts in Redis: an app started afresh (another worker) continues them."""
    first = make_app(app_env="development", ratelimit_default="3 per minute")
    with first.app_context():
        rate_limits.reset()
    assert [first.test_client().get("/api/items").status_code for _ in range(3)] == [200] * 3
    second = make_app(app_env="development", ratelimit_default="3 per minute")
    assert second.test_client().get("/api/items").status_code == 429


@pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="needs a Redis server: set TEST_REDIS_URL"
)
def test_limits_go_back_to_redis_as_soon_as_the_breaker_lets_a_call_through(make_app):
    """It counts in memory while Redis is skipped and in Redis again on the first call allowed."""
    interval = 0.5
    app = make_app(
        app_env="development", ratelimit_default="50 per minute", redis_retry_interval=interval
    )
    client = app.test_client()
    with app.app_context():
        rate_limits.reset()
    key = "LIMITS:" + parse_limits("50 per minute")[0].key_for("127.0.0.1", "api.list_items")
    server = redis.Redis.from_url(app.extensions["shared_store"].url)  # not through the breaker
    assert client.get("/api/items").headers["X-RateLimit-Remaining"] == "49"  # in Redis
    app.extensions["shared_store"].options["breaker"].failed(redis.ConnectionError("test"))
    assert client.get("/api/items").headers["X-RateLimit-Remaining"] == "49"  # in memory
    assert server.get(key) == b"1"
    time.sleep(interval + 0.1)
    assert client.get("/api/items").headers["X-RateLimit-Remaining"] == "48"  # in Redis again
    assert server.get(key) == b"2"
    server.close()
