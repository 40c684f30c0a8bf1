"""Limit request rates per client with Flask-Limiter: writes always, every route when asked.

RATELIMIT_WRITE limits each view marked ``limit_writes``; RATELIMIT_DEFAULT (empty: none) limits
every other route as well. Health probes, /metrics and static files are never limited. Counts
live in Redis when REDIS_URL is set (one count for all workers and replicas), else in each
worker's memory (a client may then get the limit once per worker).

While Redis fails, Flask-Limiter counts in the worker's memory and, from limited requests, pings
Redis again: at once (unless it pinged in the last second), then 2, 4, 8, 16 and 32 s after its
previous ping, then 1, 2, 4... s again (its own schedule, not a setting). Against a frozen Redis
each ping costs its request up to REDIS_TIMEOUT: six in 63 s per worker, and the request that
finds Redis failing can wait two (its count, then the first ping).

Any other error of the storage is logged and the request let through (swallow_errors): limits
5.8's memory storage, for one, can raise a RuntimeError when two threads restart its expiry
timer at once; that is a logged pass, never a 500.
"""

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse_many

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
    """Say whether requests to an endpoint are counted (openapi.py documents their 429)."""
    if exempt(endpoint):
        return False
    writes = getattr(app.view_functions[endpoint], WRITES, False)
    return writes or bool(app.extensions["settings"].ratelimit_default.strip())


def reset() -> None:
    """Forget every count of the running app (tests start from full windows)."""
    current_app.extensions["rate_limits"].reset()


def init_app(app: Flask) -> None:
    """Limit the routes registered so far (it wraps the write views); APP_ENV=test: none."""
    settings = app.extensions["settings"]
    redis_url = getattr(settings, "redis_url", None)  # a setting of bakes with Redis
    timeout = getattr(settings, "redis_timeout", None)
    app.config.update(
        RATELIMIT_ENABLED=settings.app_env != "test",
        RATELIMIT_DEFAULT=settings.ratelimit_default,
        RATELIMIT_STRATEGY="fixed-window",
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_STORAGE_URI=redis_url or "memory://",
        RATELIMIT_STORAGE_OPTIONS=(
            {"socket_timeout": timeout, "socket_connect_timeout": timeout} if redis_url else {}
        ),
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
    # Per client: its address (the one ProxyFix took from the proxy's header, behind one).
    limiter = Limiter(get_remote_address, app=app)
    limiter.request_filter(lambda: exempt(request.endpoint or ""))
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, WRITES, False):
            app.view_functions[endpoint] = limiter.limit(settings.ratelimit_write)(view)
    app.extensions["rate_limits"] = limiter
