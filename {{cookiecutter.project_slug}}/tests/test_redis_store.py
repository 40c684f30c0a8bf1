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
    store = app.extensions["shared_store"]
    options = store.options
    for pool in (
        app.extensions["rate_limits"].counts.shared.storage.connection_pool,
        store.clients.pool,  # the cache's and the limiter's counter calls
    ):
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


needs_redis = pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="needs a Redis server: set TEST_REDIS_URL"
)


@pytest.fixture
def limited(make_app):
    """Return a client of an app limiting requests (50 per minute) and caching in Redis."""
    client = make_app(app_env="development", ratelimit_default="50 per minute").test_client()
    with client.application.app_context():
        rate_limits.reset()
    return client


@pytest.fixture
def sent(monkeypatch):
    """Return the list of commands sent to Redis from now on, through the app's connections."""
    commands = []
    original = GuardedConnection.send_packed_command

    def counted(self, command, check_health=True):
        commands.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(GuardedConnection, "send_packed_command", counted)
    return commands


@needs_redis
def test_a_cache_hit_costs_one_redis_call_its_limit_and_its_entry_together(limited, sent):
    """It counts the limit (headers included) and reads the cached item in one command."""
    location = limited.post("/api/items", json={"name": "hit"}).headers["Location"]
    limited.get(location)  # a miss: read and cached
    sent.clear()
    response = limited.get(location)
    assert response.headers["X-Cache"] == "hit"
    assert response.json["name"] == "hit"
    assert response.headers["X-RateLimit-Remaining"] == "48"  # the miss, then this hit
    assert len(sent) == 1, sent


@needs_redis
def test_a_miss_read_with_the_limit_is_not_read_again_and_is_cached(limited, sent):
    """It learns of a miss from the limit's call, reads the database, and stores the item."""
    location = limited.post("/api/items", json={"name": "miss"}).headers["Location"]
    sent.clear()
    response = limited.get(location)
    assert response.headers["X-Cache"] == "miss"
    assert len(sent) == 2, sent  # the limit with the read, then storing the item
    assert b"SET" in sent[1][0] or b"SETEX" in sent[1][0], sent
    assert limited.get(location).headers["X-Cache"] == "hit"


@needs_redis
def test_every_limit_of_a_route_is_counted_in_the_one_call(make_app, sent):
    """It counts two limits in one command and sends the tighter one's headers."""
    app = make_app(app_env="development", ratelimit_default="3 per second;50 per minute")
    client = app.test_client()
    with app.app_context():
        rate_limits.reset()
    sent.clear()
    response = client.get("/api/items")
    assert len(sent) == 1, sent
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "2"
    server = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    for limit in parse_limits("3 per second;50 per minute"):
        assert server.get("LIMITS:" + limit.key_for("127.0.0.1", "api.list_items")) == b"1"
    server.close()


@needs_redis
def test_the_limit_script_is_loaded_again_when_redis_forgot_it(limited):
    """It counts and reads correctly after Redis lost its scripts (a restart, SCRIPT FLUSH)."""
    location = limited.post("/api/items", json={"name": "flushed"}).headers["Location"]
    limited.get(location)
    server = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    server.script_flush()
    server.close()
    response = limited.get(location)
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "hit"
    assert response.headers["X-RateLimit-Remaining"] == "48"  # counted once more


@needs_redis
def test_a_thread_uses_one_redis_connection_for_the_cache_and_the_limits(limited):
    """It serves a thread's cache reads and limit counts over one connection, kept between
    requests: no connection is taken from a pool and given back around each command."""
    location = limited.post("/api/items", json={"name": "one"}).headers["Location"]
    pool = limited.application.extensions["shared_store"].clients.pool
    for _ in range(5):
        assert limited.get(location).status_code == 200
    assert pool._created_connections == 1


@needs_redis
def test_a_connection_redis_closed_is_replaced_without_a_failure(limited, caplog):
    """It reconnects a kept connection Redis closed while it was idle, as a pool would, instead
    of failing one call and skipping Redis for REDIS_RETRY_INTERVAL."""
    location = limited.post("/api/items", json={"name": "closed"}).headers["Location"]
    limited.get(location)
    store = limited.application.extensions["shared_store"]
    own = store.clients.current().client_id()
    server = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    assert server.client_kill_filter(_id=own) == 1
    server.close()
    response = limited.get(location)
    assert response.headers["X-Cache"] == "hit"
    assert response.headers["X-RateLimit-Remaining"] == "48"  # counted once more
    assert store.clients.current().client_id() != own
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text


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
