"""Cache reads; a failing cache is logged and bypassed, never an error for the client.

A backend that failed moments ago may be skipped without a call; it logged that failure once
and marks the skips ``already_logged``, so they are not logged again here.
"""

import logging

from flask import Flask
from flask_caching import Cache

from .metrics import count_cache_lookup

log = logging.getLogger(__name__)
cache = Cache()


def get(key: str):
    """Return the cached value, or None when absent or when the cache is unavailable."""
    try:
        value = cache.get(key)
    except Exception as exc:  # noqa: BLE001  (any backend failure degrades to a miss)
        _warn("cache get failed, serving without cache", exc)
        count_cache_lookup("error")
        return None
    count_cache_lookup("miss" if value is None else "hit")
    return value


def set(key: str, value, timeout: int) -> None:  # noqa: A001
    """Store a value; a failing cache is logged and ignored."""
    try:
        cache.set(key, value, timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        _warn("cache set failed", exc)


def _warn(what: str, exc: Exception) -> None:
    """Log a cache failure unless its backend already logged it."""
    if not getattr(exc, "already_logged", False):
        log.warning("%s: %s: %s", what, type(exc).__name__, exc)


def init_app(app: Flask) -> None:
    """Bind the cache: in the shared store when create_app set one up, else in process memory."""
    store = app.extensions.get("shared_store")
    app.config.update(store.cache_backend() if store else {"CACHE_TYPE": "SimpleCache"})
    app.config["CACHE_KEY_PREFIX"] = "{{ cookiecutter.package_name }}:"
    app.config["CACHE_DEFAULT_TIMEOUT"] = app.extensions["settings"].cache_ttl_seconds
    cache.init_app(app)
