"""Cache reads with Flask-Caching: a failing cache is a miss, never an error for the client.

While it fails, it costs one request per interval in each worker a timeout (outage.py).
"""

from flask import Flask, current_app

from ..extensions import cache
{% if cookiecutter.use_redis == "yes" -%}
from . import redis_client
{% endif -%}
from .metrics import count_cache_lookup
from .outage import Outage

UNANSWERED = object()  # what a get returns while the cache is skipped or failing


def get(key: str) -> object:
    """Return the cached value, or None when absent or when the cache is unavailable."""
    value = current_app.extensions["cache_outage"].call(lambda: cache.get(key), lambda: UNANSWERED)
    if value is UNANSWERED:
        count_cache_lookup("error")
        return None
    count_cache_lookup("miss" if value is None else "hit")
    return value


def set(key: str, value: object, timeout: int) -> None:  # noqa: A001
    """Store a value unless the cache is skipped; a failure starts an outage."""
    current_app.extensions["cache_outage"].call(
        lambda: cache.set(key, value, timeout=timeout), lambda: None
    )


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
    app.extensions["cache_outage"] = Outage("cache", {{ "settings.redis_retry_interval" if cookiecutter.use_redis == "yes" else "0" }})
    cache.init_app(app)
