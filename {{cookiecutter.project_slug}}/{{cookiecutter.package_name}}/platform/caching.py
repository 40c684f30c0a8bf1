"""Cache reads with Flask-Caching: a failing cache is a miss, never an error for the client.

While it fails, it costs one request per interval in each worker a timeout (outage.py).

A cached read must die with what it was read from. After a change, ``forget`` its key; a read
stores its answer with ``keep``, which stores nothing when a change came after the read began.
Only a cache that every worker shares hears of a change, so without one nothing is cached: a
worker's own memory would go on answering a row another worker deleted.
"""

from flask import Flask, current_app

from ..extensions import cache
{% if cookiecutter.use_redis == "yes" -%}
from . import redis_client
{% endif -%}
from .metrics import count_cache_lookup
from .outage import Outage

UNANSWERED = object()  # what a get returns while the cache is skipped or failing
# What forget() leaves in a key: no read that began before the change may store its answer there.
CHANGED = "changed"


def get(key: str) -> object:
    """Return the cached value, or None when absent or when the cache is unavailable."""
    value = current_app.extensions["cache_outage"].call(lambda: cache.get(key), lambda: UNANSWERED)
    if value is UNANSWERED:
        count_cache_lookup("error")
        return None
    if value is None or value == CHANGED:
        count_cache_lookup("miss")
        return None
    count_cache_lookup("hit")
    return value


def set(key: str, value: object, timeout: int) -> None:  # noqa: A001
    """Store a value unless the cache is skipped; a failure starts an outage."""
    current_app.extensions["cache_outage"].call(
        lambda: cache.set(key, value, timeout=timeout), lambda: None
    )


def keep(key: str, value: object, timeout: int) -> None:
    """Store what a read answered unless the key holds a value, or was forgotten since the read
    began (a timeout of 0 stores nothing)."""
    if timeout > 0:
        current_app.extensions["cache_outage"].call(
            lambda: cache.add(key, value, timeout=timeout), lambda: None
        )


def forget(key: str, timeout: int) -> None:
    """After a change committed: drop the key's value, and for ``timeout`` seconds (the longest a
    value is kept) store no read's answer there. A cache that fails to hear it keeps the value
    until it expires."""
    if timeout > 0:
        set(key, CHANGED, timeout)


def init_app(app: Flask) -> None:
    """Bind the cache: none (every read a miss) unless one that every worker shares is set."""
    settings = app.extensions["settings"]
    app.config.update(
        CACHE_TYPE="NullCache",
        CACHE_NO_NULL_WARNING=True,  # no cache is the intended default, not a mistake
        CACHE_KEY_PREFIX="{{ cookiecutter.package_name }}:",
        CACHE_DEFAULT_TIMEOUT=settings.cache_ttl_seconds,
    )
{%- if cookiecutter.use_redis == "yes" %}
    app.config.update(redis_client.cache_config(settings))  # in Redis when REDIS_URL is set
{%- endif %}
    app.extensions["cache_outage"] = Outage("cache", {{ "settings.redis_retry_interval" if cookiecutter.use_redis == "yes" else "0" }})
    cache.init_app(app)
