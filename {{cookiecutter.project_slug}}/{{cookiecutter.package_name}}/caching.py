"""Cache reads; a failing cache is logged and bypassed, never an error for the client.

A backend that failed moments ago may be skipped without a call; it logged that failure once
and marks the skips ``already_logged``, so they are not logged again here.

A view marked with ``read_through`` names the entry it reads before it runs: when the cache and
the rate limits share a store, the call that counts the request's limits reads that entry too
(rate_limits.py), and ``get`` finds it there instead of asking the store a second time.
"""

import logging
from collections.abc import Callable

from flask import Flask, current_app, has_request_context, request
from flask_caching import Cache

from .metrics import count_cache_lookup

log = logging.getLogger(__name__)
cache = Cache()
KEY_OF = "caching_key_of"  # set on a view by read_through
READ = "caching.read"  # the WSGI environ's (key, stored value) read with the request's limits


def read_through(key_of: Callable[..., str]):
    """Mark a view that reads the cache entry ``key_of(**its URL arguments)`` names."""

    def mark(view):
        setattr(view, KEY_OF, key_of)
        return view

    return mark


def stored_key(view, arguments: dict) -> str | None:
    """Return the stored name of the entry the view reads, or None for a view not marked."""
    key_of = getattr(view, KEY_OF, None)
    if key_of is None:
        return None
    return current_app.config["CACHE_KEY_PREFIX"] + key_of(**arguments)


def read_with_limits(key: str, stored: bytes | None) -> None:
    """Keep an entry read (None: absent) with the request's limits, for ``get``."""
    request.environ[READ] = (key, stored)


def get(key: str):
    """Return the cached value, or None when absent or when the cache is unavailable."""
    app = current_app._get_current_object()  # looked up once, not at each use below
    read = request.environ.pop(READ, None) if has_request_context() else None
    try:
        if read is not None and read[0] == app.config["CACHE_KEY_PREFIX"] + key:
            backend = app.extensions["cache"][cache]  # what cache.cache looks up
            value = backend.serializer.loads(read[1])  # as the backend's own get decodes it
        else:
            value = cache.get(key)
    except Exception as exc:  # noqa: BLE001  (any backend failure degrades to a miss)
        _warn("cache get failed, serving without cache", exc)
        count_cache_lookup("error", app)
        return None
    count_cache_lookup("miss" if value is None else "hit", app)
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
