"""Cache reads; a failing cache is logged and bypassed, never an error for the client.

A backend that failed moments ago may be skipped without a call; it logged that failure once
and marks the skips ``already_logged``, so they are not logged again here.
"""

import logging

from flask import Flask

from .extensions import cache

log = logging.getLogger(__name__)


def get(key: str):
    """Return the cached value, or None when absent or when the cache is unavailable."""
    try:
        return cache.get(key)
    except Exception as exc:  # noqa: BLE001  (any backend failure degrades to a miss)
        _warn("cache get failed, serving without cache", exc)
        return None


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
    """Bind the cache: in-process memory unless another concern chose a backend."""
    app.config.setdefault("CACHE_TYPE", "SimpleCache")
    app.config.setdefault("CACHE_DEFAULT_TIMEOUT", app.extensions["settings"].cache_ttl_seconds)
    cache.init_app(app)
