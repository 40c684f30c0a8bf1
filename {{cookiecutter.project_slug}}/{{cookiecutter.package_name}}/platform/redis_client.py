"""Keep the cache and the rate limits in Redis when REDIS_URL is set; ping it for readiness.

A soft dependency: while it fails, reads miss the cache (caching.py skips it for
REDIS_RETRY_INTERVAL) and Flask-Limiter counts in each worker's memory.
"""

from collections.abc import Callable
from typing import Any

import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..settings import Settings


def options(settings: Settings) -> dict[str, Any]:
    """Return redis-py's options: REDIS_TIMEOUT on every socket, and one attempt per call
    (redis-py's default retries would multiply a timeout against a frozen Redis)."""
    timeout = settings.redis_timeout
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }


def cache_config(settings: Settings) -> dict[str, object]:
    """Return the Flask-Caching keys that put the cache in Redis; none without REDIS_URL."""
    if not settings.redis_url:
        return {}
    return {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": settings.redis_url,
        "CACHE_OPTIONS": options(settings),
    }


def limiter_config(settings: Settings) -> dict[str, object]:
    """Return the Flask-Limiter keys that count in Redis; none without REDIS_URL."""
    if not settings.redis_url:
        return {}
    return {
        "RATELIMIT_STORAGE_URI": settings.redis_url,
        "RATELIMIT_STORAGE_OPTIONS": options(settings),
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,  # count in memory while Redis fails
    }


def readiness_checks(app: Flask) -> dict[str, Callable[[], None]]:
    """Return a check pinging Redis on a connection of its own, when REDIS_URL is set."""
    settings = app.extensions["settings"]

    def ping() -> None:
        with redis.Redis.from_url(settings.redis_url, **options(settings)) as client:
            client.ping()

    return {"redis": ping} if settings.redis_url else {}
