"""Offer Redis, when REDIS_URL is set, as the shared store of the cache and the rate limiter.

Redis is a soft dependency: when it fails, the cache misses and the limiter counts in memory,
and the breaker (redis_breaker.py) skips it for REDIS_RETRY_INTERVAL.
"""

import functools
import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlsplit

import redis
from flask import Flask
from limits.storage import RedisStorage
from pydantic import AfterValidator
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from .rate_limits import NOT_READ
from .redis_breaker import GUARDED, NETWORK_ERRORS, Breaker, GuardedConnection


def checked_url(value: str | None) -> str | None:
    """Return a Redis URL redis-py can use, None when unset; raise ValueError otherwise."""
    if not value:
        return None
    try:
        parse_url(value)
    except ValueError:
        raise ValueError("not a Redis URL (e.g. redis://localhost:6379/0)") from None
    database = urlsplit(value).path.strip("/")
    if urlsplit(value).scheme != "unix" and database and not database.isdigit():
        raise ValueError("the database of a Redis URL is a number (e.g. redis://localhost/0)")
    return value


RedisUrl = Annotated[str | None, AfterValidator(checked_url)]

# limits' own fixed-window count, for each of a request's windows in one call, returning each
# window's remaining milliseconds as well (the rate limits' headers then need no GET and TTL),
# then the value of one more key when there is one (the cache entry the request will read).
# KEYS: the windows, then that key; ARGV: each window's seconds.
COUNT_SCRIPT = """
local answer = {}
for i, seconds in ipairs(ARGV) do
    local current = redis.call("incr", KEYS[i])
    if current == 1 then
        redis.call("expire", KEYS[i], seconds)
    end
    answer[#answer + 1] = current
    answer[#answer + 1] = redis.call("pttl", KEYS[i])
end
if #KEYS > #ARGV then
    answer[#answer + 1] = redis.call("get", KEYS[#KEYS])
end
return answer
"""
COUNT_SHA = hashlib.sha1(COUNT_SCRIPT.encode()).hexdigest()  # noqa: S324  (Redis names it so)


class ThreadClients:
    """A redis-py client per thread, each keeping one connection of a shared pool for good.

    A pooled client takes a connection from its pool and gives it back around every command,
    which in redis-py 8 costs as much CPU as the command's own send and receive. A thread here
    keeps its connection instead: as many connections as threads that use Redis, which is what
    a busy pool holds anyway. Before each use the connection is checked the way the pool checks
    the ones it hands out: one closed by Redis (a restart) is reconnected instead of failing.
    """

    def __init__(self, url: str, options: dict) -> None:
        """Make the pool; connect nothing yet."""
        self.pool = redis.ConnectionPool.from_url(url, **options)
        self._local = threading.local()

    def current(self) -> redis.Redis:
        """Return the calling thread's client, its connection checked (connecting may raise)."""
        local = self._local
        client = getattr(local, "client", None)
        if client is None or local.pid != os.getpid():  # a forked child connects anew
            client = redis.Redis(connection_pool=self.pool, single_connection_client=True)
            local.client, local.pid = client, os.getpid()
            return client
        connection = client.connection
        if connection._sock is not None:
            try:
                stale = connection.can_read()  # an idle connection has nothing to read
            except NETWORK_ERRORS:
                stale = True
            if stale:
                connection.disconnect()  # the next command connects again
        return client


class ThreadClient:
    """Stands for a redis-py client where a library keeps one: each call uses the thread's."""

    def __init__(self, clients: ThreadClients) -> None:
        self._clients = clients

    def __getattr__(self, name: str):
        return getattr(self._clients.current(), name)


def call(connection: redis.Connection, *command):
    """Send a command on a connection of this thread's own and return Redis's answer, unparsed.

    What a redis-py client adds around the same send and read is for what this app does without:
    retries (the breaker decides), a lock (the thread owns the connection), timings and
    maintenance events, each a cost on every call. The connection
    still closes itself on a network error, and an error answer is raised (NoScriptError...).
    """
    connection.send_command(*command)
    return connection.read_response()


def count_hits(
    clients: ThreadClients, storage: RedisStorage, windows: list[tuple[str, int]], read: str | None
) -> tuple[list[tuple[int, float]], object]:
    """Add a hit to each (key, seconds) window and read ``read``, in one call (rate_limits.Counter).

    Returns each window's count and when it ends, and the stored value of ``read`` (None when
    absent; NOT_READ when no key was given).
    """
    keys = [storage.prefixed_key(key) for key, _ in windows] + ([read] if read else [])
    args = (len(keys), *keys, *(seconds for _, seconds in windows))
    connection = clients.current().connection
    try:
        answer = call(connection, "EVALSHA", COUNT_SHA, *args)
    except redis.exceptions.NoScriptError:  # a new or restarted Redis: EVAL caches it again
        answer = call(connection, "EVAL", COUNT_SCRIPT, *args)
    now = time.time()
    pairs = answer[: 2 * len(windows)]  # each window's count and remaining milliseconds
    counts = [
        (int(count), now + max(int(remaining_ms), 0) / 1000)
        for count, remaining_ms in zip(pairs[0::2], pairs[1::2], strict=True)
    ]
    return counts, (answer[-1] if read else NOT_READ)


class RedisStore:
    """The app's Redis: its URL, the client options every connection to it uses, the clients."""

    def __init__(self, url: str, options: dict) -> None:
        self.url, self.options = url, options
        self.clients = ThreadClients(url, options)

    def cache_backend(self) -> dict:
        """Return the flask-caching keys that put the cache in this Redis."""
        return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": ThreadClient(self.clients)}

    def limit_storage(self) -> tuple[RedisStorage, Callable]:
        """Return the storage and the one-call counter that keep the rate limits' counts here."""
        return RedisStorage(self.url, **self.options), functools.partial(count_hits, self.clients)


def client_options(url: str, timeout: float, breaker: Breaker) -> dict:
    """Return redis-py options: bounded sockets, one attempt, and the app's breaker."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),  # the breaker, not redis-py, decides when to try again
        "connection_class": GUARDED.get(urlsplit(url).scheme, GuardedConnection),
        "breaker": breaker,
    }


def ping(url: str, options: dict) -> None:
    """Ping Redis; raise when it does not answer in time or is being skipped."""
    client = redis.Redis.from_url(url, **options)
    try:
        client.ping()
    finally:
        client.close()


def init_app(app: Flask) -> None:
    """Offer Redis as the shared store when REDIS_URL is set; nothing otherwise."""
    settings = app.extensions["settings"]
    if not settings.redis_url:
        return
    breaker = Breaker(settings.redis_retry_interval)
    options = client_options(settings.redis_url, settings.redis_timeout, breaker)
    app.extensions["shared_store"] = RedisStore(settings.redis_url, options)


def readiness_checks(app: Flask) -> dict:
    """Return a Redis ping check when Redis is configured (a soft dependency)."""
    store = app.extensions.get("shared_store")
    if store is None:
        return {}
    return {"redis": lambda: ping(store.url, store.options)}
