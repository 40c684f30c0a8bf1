"""Keep the cache and the rate limits in Redis when REDIS_URL is set; ping it for readiness.

A soft dependency: while it fails, reads miss the cache and rate_limits.py counts in each
worker's memory, each trying Redis again after REDIS_RETRY_INTERVAL (outage.py).
"""

from collections.abc import Callable
from typing import Any

import redis
from flask import Flask
from limits.storage import RedisStorage
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from ..settings import Settings


def options(settings: Settings) -> dict[str, Any]:
    """Return redis-py's options: REDIS_TIMEOUT on every socket, and one attempt per call
    (redis-py's default retries would multiply a timeout against a frozen Redis).

    No maintenance notifications: only Redis Cloud and Redis Software send them, and asking a
    Redis that has none (this project's) costs each new connection a round trip and a DEBUG
    line ("unknown subcommand 'MAINT_NOTIFICATIONS'"). On those, drop the option.
    """
    timeout = settings.redis_timeout
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
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


def limits_storage(settings: Settings) -> RedisStorage | None:
    """Return the `limits` storage that counts rate limits in Redis (its keys start with
    ``LIMITS:``); none without REDIS_URL. The class, not `limits`' storage_from_string: that one
    knows no unix:// scheme (redis-py's, which REDIS_URL may be)."""
    if not settings.redis_url:
        return None
    return RedisStorage(settings.redis_url, **options(settings))


def readiness_checks(app: Flask) -> dict[str, Callable[[], None]]:
    """Return a check pinging Redis on a connection of its own, when REDIS_URL is set."""
    settings = app.extensions["settings"]

    def ping() -> None:
        with redis.Redis.from_url(settings.redis_url, **options(settings)) as client:
            client.ping()

    return {"redis": ping} if settings.redis_url else {}
