"""Cache reads in the worker's memory, or in a shared store when one is configured{% if cookiecutter.use_redis == "yes" %}
(redis_settings.py){% endif %}.

A failing cache is a miss, never an error for the client: the failure is logged once, and the
cache is skipped for CACHE_RETRY_INTERVAL seconds before one request tries it again, so a frozen
store costs a request one timeout at most once per interval in each worker.
"""

import logging
import threading
import time

from flask import Flask, current_app
from flask_caching import Cache

{% if cookiecutter.use_redis == "yes" %}from . import redis_settings
{% endif %}from .metrics import count_cache_lookup

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


def init_app(app: Flask) -> None:
    """Bind the cache: in memory unless a shared store is configured."""
    settings = app.extensions["settings"]
    app.config["CACHE_TYPE"] = "SimpleCache"
{%- if cookiecutter.use_redis == "yes" %}
    app.config.update(redis_settings.cache_config(settings))
{%- endif %}
    app.config["CACHE_KEY_PREFIX"] = "{{ cookiecutter.package_name }}:"
    app.config["CACHE_DEFAULT_TIMEOUT"] = settings.cache_ttl_seconds
    # Ours, not Flask-Caching's: seconds the cache is skipped after it failed.
    app.extensions["cache_outage"] = Outage(app.config.get("CACHE_RETRY_INTERVAL", 0.0))
    cache.init_app(app)
