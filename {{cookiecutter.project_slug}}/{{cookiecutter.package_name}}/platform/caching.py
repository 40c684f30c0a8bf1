"""Cache reads with Flask-Caching: a failing cache is a miss, never an error for the client.

While it fails, it costs one request per interval in each worker a timeout (Outage).
"""

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app

from ..extensions import cache
{% if cookiecutter.use_redis == "yes" -%}
from . import redis_client
{% endif -%}
from .metrics import count_cache_lookup

log = logging.getLogger(__name__)


class Outage:
    """After a cache failure (logged), skip the cache for the interval, then let one call try it."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.retry_at = 0.0  # after a failure: when one call may try the cache again
        self.lock = threading.Lock()

    def call(self, method: Callable[[], object]) -> tuple[bool, object]:
        """Return whether the cache answered, and its answer; a failure starts an outage."""
        with self.lock:
            now = time.monotonic()
            if now < self.retry_at:
                return False, None
            if self.retry_at:  # the cache failed: the other calls skip it while this one tries
                self.retry_at = now + self.interval
        try:
            answer = method()
        except Exception as exc:  # noqa: BLE001  (any backend failure degrades to a miss)
            log.warning("cache skipped for %ss: %r", self.interval, exc)
            self.retry_at = time.monotonic() + self.interval
            return False, None
        self.retry_at = 0.0
        return True, answer


def get(key: str) -> object:
    """Return the cached value, or None when absent or when the cache is unavailable."""
    answered, value = current_app.extensions["cache_outage"].call(lambda: cache.get(key))
    count_cache_lookup("error" if not answered else "miss" if value is None else "hit")
    return value


def set(key: str, value: object, timeout: int) -> None:  # noqa: A001
    """Store a value unless the cache is skipped; a failure starts an outage."""
    current_app.extensions["cache_outage"].call(lambda: cache.set(key, value, timeout=timeout))


def init_app(app: Flask) -> None:
    """Bind the cache, in the worker's memory by default."""
    settings = app.extensions["settings"]
    app.config.update(
        CACHE_TYPE="SimpleCache",
        CACHE_KEY_PREFIX="{{ cookiecutter.package_name }}:",
        CACHE_DEFAULT_TIMEOUT=settings.cache_ttl_seconds,
    )
{%- if cookiecutter.use_redis == "yes" %}
    app.config.update(redis_client.cache_config(settings))  # in Redis when REDIS_URL is set
{%- endif %}
    app.extensions["cache_outage"] = Outage({{ "settings.redis_retry_interval" if cookiecutter.use_redis == "yes" else "0" }})
    cache.init_app(app)
