"""Limit request rates per client with Flask-Limiter: writes always, every route when asked.

RATELIMIT_WRITE limits each view marked ``limit_writes``; RATELIMIT_DEFAULT (empty: none) limits
every other route as well. Health probes, /metrics and static files are never limited. Counts
live in each worker's memory (a client may then get the limit once per worker) unless a shared
storage is configured{% if cookiecutter.use_redis == "yes" %} (redis_settings.py){% endif %}.

Any other error of the storage is logged and the request let through (swallow_errors): limits
5.8's memory storage, for one, can raise a RuntimeError when two threads restart its expiry
timer at once; that is a logged pass, never a 500.
"""

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse_many
{%- if cookiecutter.use_redis == "yes" %}

from . import redis_settings
{%- endif %}

WRITES = "rate_limits_writes"  # set on a view by limit_writes
UNLIMITED_BLUEPRINTS = frozenset({"health"})  # probes (openapi.py documents no limit on them)
UNLIMITED_ENDPOINTS = frozenset({"metrics", "static"})


def checked_limits(value: str) -> str:
    """Return a setting like ``60 per minute`` or ``10/second;600/minute``; raise ValueError."""
    try:
        limits = parse_many(value)
    except ValueError:
        limits = []
    if not limits or any(limit.amount < 1 for limit in limits):
        raise ValueError(
            "expected one or more limits like '60 per minute' or '10/second;600/minute', "
            "each of at least 1 request"
        )
    return value


def checked_optional_limits(value: str) -> str:
    """Return a limits setting that may be empty (no limit); raise ValueError otherwise."""
    return value if not value.strip() else checked_limits(value)


def exempt(endpoint: str) -> bool:
    """Say whether an endpoint is a probe, /metrics or static files: never limited."""
    return endpoint.partition(".")[0] in UNLIMITED_BLUEPRINTS or endpoint in UNLIMITED_ENDPOINTS


def limit_writes(view):
    """Mark a view that writes: init_app limits it to RATELIMIT_WRITE, not RATELIMIT_DEFAULT."""
    setattr(view, WRITES, True)
    return view


def is_limited(app: Flask, endpoint: str) -> bool:
    """Say whether requests to an endpoint (empty: none matched) are counted.

    openapi.py documents their 429. Requests not counted never reach Flask-Limiter, so they
    never wait for its storage either (it pings a failed storage from any request it sees).
    """
    if exempt(endpoint):
        return False
    writes = getattr(app.view_functions.get(endpoint), WRITES, False)
    return writes or bool(app.extensions["settings"].ratelimit_default.strip())


def reset() -> None:
    """Forget every count of the running app (tests start from full windows)."""
    current_app.extensions["rate_limits"].reset()


def init_app(app: Flask) -> None:
    """Limit the routes registered so far (it wraps the write views); APP_ENV=test: none."""
    settings = app.extensions["settings"]
    app.config.update(
        RATELIMIT_ENABLED=settings.app_env != "test",
        RATELIMIT_DEFAULT=settings.ratelimit_default,
        RATELIMIT_STRATEGY="fixed-window",
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
{%- if cookiecutter.use_redis == "yes" %}
    app.config.update(redis_settings.limiter_config(settings))
{%- endif %}
    # Per client: its address (behind a trusted proxy, the one that proxy forwarded).
    limiter = Limiter(get_remote_address, app=app)
    limiter.request_filter(lambda: not is_limited(current_app, request.endpoint or ""))
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, WRITES, False):
            app.view_functions[endpoint] = limiter.limit(settings.ratelimit_write)(view)
    app.extensions["rate_limits"] = limiter
