"""Limit request rates per client with Flask-Limiter: each view marked by a decorator below gets
its own limits (RATELIMIT_WRITE on writes), every other route but probes, /metrics and static
files RATELIMIT_DEFAULT (empty: none). Counts live in each worker's memory unless init_app names
a shared storage."""

import logging
import time

from flask import Flask, Response, current_app, request
from flask.typing import RouteCallable
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
{%- if cookiecutter.use_redis == "yes" %}

from . import redis_client
{%- endif %}

log = logging.getLogger(__name__)
WRITES = "rate_limits_writes"  # set on a view by limit_writes
{%- if cookiecutter.use_auth == "yes" %}
SIGN_IN = "rate_limits_sign_in"  # set on a view by limit_sign_in
SIGN_IN_SCOPE = "sign-in"  # the one count per address of every sign-in view, whichever surface
{%- endif %}
# Never limited: the probes' blueprint (openapi.py documents no 429 on them), /metrics, static.
UNLIMITED = frozenset({"health", "metrics", "static"})


def limit_writes(view: RouteCallable) -> RouteCallable:
    """Mark a view that writes: init_app limits it to RATELIMIT_WRITE, not RATELIMIT_DEFAULT."""
    setattr(view, WRITES, True)
    return view


{%- if cookiecutter.use_auth == "yes" %}


def limit_sign_in(view: RouteCallable) -> RouteCallable:
    """Mark a sign-in view: init_app limits the attempts per client address to RATELIMIT_SIGN_IN,
    in one count shared by every view so marked (the view counts its account's password checks
    itself: auth/sign_in_limits.py)."""
    setattr(view, SIGN_IN, True)
    return view
{%- endif %}


def is_limited(app: Flask, endpoint: str) -> bool:
    """Say whether requests to an endpoint (empty: none matched) are counted; the others never
    reach Flask-Limiter, which pings a failed storage from any request it sees."""
    if endpoint.partition(".")[0] in UNLIMITED:
        return False
    view = app.view_functions.get(endpoint)
    writes = getattr(view, WRITES, False){% if cookiecutter.use_auth == "yes" %} or getattr(view, SIGN_IN, False){% endif %}
    return writes or bool(app.extensions["settings"].ratelimit_default.strip())


def init_app(app: Flask) -> None:
    """Limit the routes registered so far (it wraps the write views); APP_ENV=test: none."""
    settings = app.extensions["settings"]
    app.config.update(
        RATELIMIT_ENABLED=settings.app_env != "test",
        RATELIMIT_DEFAULT=settings.ratelimit_default,
        # send_limit_headers writes them: Flask-Limiter's would put its window's Retry-After on
        # every counted answer, a 201 and the database's 503 (which has its own) included.
        RATELIMIT_HEADERS_ENABLED=False,
        RATELIMIT_STORAGE_URI="memory://",  # each worker's own counts, chosen knowingly
        RATELIMIT_SWALLOW_ERRORS=True,  # a count that fails is logged, the request let through
    )
{%- if cookiecutter.use_redis == "yes" %}
    app.config.update(redis_client.limiter_config(settings))
{%- endif %}
    # Per client: its address (behind a trusted proxy, the one that proxy forwarded).
    limiter = Limiter(get_remote_address, app=app)
    limiter.request_filter(lambda: not is_limited(current_app, request.endpoint or ""))
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, WRITES, False):
            limited = limiter.limit(settings.ratelimit_write)(view)
            # mypy types the wrapper as a sync and an async view at once; it is what it wraps.
            app.view_functions[endpoint] = limited  # type: ignore[assignment]
{%- if cookiecutter.use_auth == "yes" %}
        if getattr(view, SIGN_IN, False):
            per_address = limiter.shared_limit(settings.ratelimit_sign_in, scope=SIGN_IN_SCOPE)
            app.view_functions[endpoint] = per_address(view)  # type: ignore[assignment]  # as above
{%- endif %}
    app.extensions["rate_limits"] = limiter
    app.after_request(send_limit_headers)


def send_limit_headers(response: Response) -> Response:
    """Send X-RateLimit-Limit, -Remaining and -Reset on a counted answer (the limit nearest to
    refusing it), and Retry-After on a 429 alone, the limiter's window unless whoever refused
    set one (a 503 keeps the database's own)."""
    counted = current_app.extensions["rate_limits"].current_limit
    if counted is None:
        return response
    try:
        reset_at, remaining = counted.reset_at, counted.remaining
    except Exception:  # the storage failed: as for a count, logged and the answer sent as it is
        log.exception("reading a rate limit for its headers failed")
        return response
    response.headers["X-RateLimit-Limit"] = str(counted.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(remaining)
    response.headers["X-RateLimit-Reset"] = str(reset_at)
    if response.status_code == 429 and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(max(1, int(reset_at - time.time())))
    return response
