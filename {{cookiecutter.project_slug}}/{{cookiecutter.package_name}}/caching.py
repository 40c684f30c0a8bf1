"""Cache reads in Redis when REDIS_URL is set, else in the worker's memory.

A failing cache is a miss, never an error for the client: the failure is logged once, and the
cache is skipped for REDIS_RETRY_INTERVAL before one request tries it again, so a frozen Redis
costs a request one REDIS_TIMEOUT at most once per interval in each worker.
"""

import logging
import threading
import time

from flask import Flask, current_app
from flask_caching import Cache

from .metrics import count_cache_lookup

log = logging.getLogger(__name__)
cache = Cache()


class Outage:
    """After a cache failure, skip the cache for the retry interval, then let one call try it."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.retry_at: float | None = None  # None while the cache answers
        self.lock = threading.Lock()

    def allow(self) -> bool:
        """Say whether to call the cache now (once the interval is over: one caller only)."""
        with self.lock:
            if self.retry_at is not None:
                if time.monotonic() < self.retry_at:
                    return False
                self.retry_at = time.monotonic() + self.interval  # others skip while it tries
            return True

    def ended(self, exc: Exception | None) -> None:
        """Note how a call went: a failure starts (logged) or extends the outage."""
        with self.lock:
            if exc is not None and self.retry_at is None:
                log.warning("cache skipped for %ss: %s: %s", self.interval, type(exc).__name__, exc)
            elif exc is None and self.retry_at is not None:
                log.info("cache answers again")
            self.retry_at = None if exc is None else time.monotonic() + self.interval


def get(key: str):
    """Return the cached value, or None when absent or when the cache is unavailable."""
    app = current_app._get_current_object()
    outage = app.extensions["cache_outage"]
    if not outage.allow():
        count_cache_lookup("error", app)
        return None
    try:
        value = cache.get(key)
    except Exception as exc:  # noqa: BLE001  (any backend failure degrades to a miss)
        outage.ended(exc)
        count_cache_lookup("error", app)
        return None
    outage.ended(None)
    count_cache_lookup("miss" if value is None else "hit", app)
    return value


def set(key: str, value, timeout: int) -> None:  # noqa: A001
    """Store a value unless the cache is skipped; a failure starts an outage."""
    outage = current_app.extensions["cache_outage"]
    if outage.allow():
        try:
            cache.set(key, value, timeout=timeout)
        except Exception as exc:  # noqa: BLE001
            outage.ended(exc)


def readiness_checks(app: Flask) -> dict:
    """Return a check of the cache's Redis, when it is kept there (a soft dependency)."""
    if app.config["CACHE_TYPE"] != "RedisCache":
        return {}
    return {"redis": lambda: cache.has("readiness")}  # one bounded round trip, never skipped


def init_app(app: Flask) -> None:
    """Bind the cache: in Redis when REDIS_URL is set (bakes with Redis), else in memory."""
    settings = app.extensions["settings"]
    url = getattr(settings, "redis_url", None)
    if url:
        timeout = settings.redis_timeout
        app.config["CACHE_TYPE"] = "RedisCache"
        app.config["CACHE_REDIS_URL"] = url
        app.config["CACHE_OPTIONS"] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    else:
        app.config["CACHE_TYPE"] = "SimpleCache"
    app.config["CACHE_KEY_PREFIX"] = "{{ cookiecutter.package_name }}:"
    app.config["CACHE_DEFAULT_TIMEOUT"] = settings.cache_ttl_seconds
    app.extensions["cache_outage"] = Outage(getattr(settings, "redis_retry_interval", 0.0))
    cache.init_app(app)
