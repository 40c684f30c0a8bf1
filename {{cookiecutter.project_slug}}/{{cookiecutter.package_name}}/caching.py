"""Cache reads; a failing cache is logged and bypassed, never an error for the client."""

import logging

from flask import Flask

from .extensions import cache

log = logging.getLogger(__name__)


def get(key: str):
    """Return the cached value, or None when absent or when the cache is unavailable."""
    try:
        return cache.get(key)
    except Exception as exc:  # noqa: BLE001  (any backend failure degrades to a miss)
        log.warning("cache get failed, serving without cache: %s", exc)
        return None


def set(key: str, value, timeout: int) -> None:  # noqa: A001
    """Store a value; a failing cache is logged and ignored."""
    try:
        cache.set(key, value, timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        log.warning("cache set failed: %s", exc)


def init_app(app: Flask) -> None:
    """Bind the cache: in-process memory unless another concern chose a backend."""
    app.config.setdefault("CACHE_TYPE", "SimpleCache")
    app.config.setdefault("CACHE_DEFAULT_TIMEOUT", app.extensions["settings"].cache_ttl_seconds)
    cache.init_app(app)
