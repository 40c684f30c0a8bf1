"""Keep the cache and the rate limits in Redis when REDIS_URL is set; ping it for readiness.

Redis is a soft dependency, with REDIS_TIMEOUT on every socket. While it fails, reads miss the
cache, which each worker then skips for REDIS_RETRY_INTERVAL (caching.py); Flask-Limiter counts
in the worker's memory and, from limited requests, pings Redis again: at once (unless it pinged
in the last second), then 2, 4, 8, 16 and 32 s after its previous ping, then 1, 2, 4... s again
(its own schedule, not a setting). Against a frozen Redis each ping costs its request up to
REDIS_TIMEOUT: six in 63 s per worker, and the write that finds Redis failing can wait two (its
count, then the first ping).
"""

import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry


def timeouts(settings) -> dict:
    """Return redis-py's options: socket timeouts from REDIS_TIMEOUT, and one attempt per call.

    redis-py retries a failed call ten times by default, with back-off: against a frozen Redis
    that is many timeouts for one request. The cache's pause and the limiter's fallback decide
    when to try Redis again instead.
    """
    timeout = settings.redis_timeout
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }


def cache_config(settings) -> dict:
    """Return the Flask-Caching keys that put the cache in Redis; none without REDIS_URL."""
    if not settings.redis_url:
        return {}
    return {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": settings.redis_url,
        "CACHE_OPTIONS": timeouts(settings),
        "CACHE_RETRY_INTERVAL": settings.redis_retry_interval,
    }


def limiter_config(settings) -> dict:
    """Return the Flask-Limiter keys that count in Redis; none without REDIS_URL."""
    if not settings.redis_url:
        return {}
    storage = {"RATELIMIT_STORAGE_URI": settings.redis_url}
    return {**storage, "RATELIMIT_STORAGE_OPTIONS": timeouts(settings)}


def ping(settings) -> None:
    """Ping Redis on a connection of its own; raise when it does not answer in time."""
    client = redis.Redis.from_url(settings.redis_url, **timeouts(settings))
    try:
        client.ping()
    finally:
        client.close()


def readiness_checks(app: Flask) -> dict:
    """Return a Redis ping check when REDIS_URL is set (a soft dependency)."""
    settings = app.extensions["settings"]
    return {"redis": lambda: ping(settings)} if settings.redis_url else {}
