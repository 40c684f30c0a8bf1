"""Offer Redis, when REDIS_URL is set, as the shared store of the cache and the rate limiter.

Redis is a soft dependency: when it fails, the cache misses and the limiter counts in memory,
and the breaker (redis_breaker.py) skips it for REDIS_RETRY_INTERVAL.
"""

import hashlib
import time
from collections.abc import Callable
from typing import Annotated, NamedTuple
from urllib.parse import urlsplit

import redis
from flask import Flask
from limits.storage import RedisStorage
from pydantic import AfterValidator
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from .redis_breaker import GUARDED, Breaker, GuardedConnection


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

# limits' own fixed-window script, returning the window's remaining milliseconds as well: the
# rate limits' headers then need no second and third call (GET, TTL).
COUNT_SCRIPT = """
local current = redis.call("incrby", KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("pttl", KEYS[1])}
"""
COUNT_SHA = hashlib.sha1(COUNT_SCRIPT.encode()).hexdigest()  # noqa: S324  (Redis names it so)


def count_hit(storage: RedisStorage, key: str, expiry: int, cost: int) -> tuple[int, float]:
    """Add a hit to a rate-limit window in one call; return its count and when it ends."""
    client, args = storage.get_connection(), (1, storage.prefixed_key(key), expiry, cost)
    try:
        count, remaining_ms = client.evalsha(COUNT_SHA, *args)
    except redis.exceptions.NoScriptError:  # a new or restarted Redis: EVAL caches it again
        count, remaining_ms = client.eval(COUNT_SCRIPT, *args)
    return int(count), time.time() + max(int(remaining_ms), 0) / 1000


class RedisStore(NamedTuple):
    """The app's Redis: its URL and the client options every connection to it uses."""

    url: str
    options: dict

    def cache_backend(self) -> dict:
        """Return the flask-caching keys that put the cache in this Redis."""
        return {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": self.url,
            "CACHE_OPTIONS": self.options,
        }

    def limit_storage(self) -> tuple[RedisStorage, Callable]:
        """Return the storage and the one-call counter that keep the rate limits' counts here."""
        return RedisStorage(self.url, **self.options), count_hit


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
