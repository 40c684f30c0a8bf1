"""Limit request rates per client with Flask-Limiter: each view marked by a decorator below gets
its own limits (RATELIMIT_WRITE on writes), every other route but probes, /metrics and static
files RATELIMIT_DEFAULT (empty: none). Counts live in each worker's memory unless init_app names
a shared storage."""

{% if cookiecutter.use_auth == "yes" -%}
from collections.abc import Callable

{% endif -%}
from flask import Flask, current_app, request
from flask.typing import RouteCallable
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
{%- if cookiecutter.use_redis == "yes" %}

from . import redis_client
{%- endif %}

WRITES = "rate_limits_writes"  # set on a view by limit_writes
{%- if cookiecutter.use_auth == "yes" %}
SIGN_IN = "rate_limits_sign_in"  # set on a view by limit_sign_in: its account key function
FAILED_SIGN_IN = (401, 422)  # the API's answer to a failed sign-in, and the pages' form's
{%- endif %}
# Never limited: the probes' blueprint (openapi.py documents no 429 on them), /metrics, static.
UNLIMITED = frozenset({"health", "metrics", "static"})


def limit_writes(view: RouteCallable) -> RouteCallable:
    """Mark a view that writes: init_app limits it to RATELIMIT_WRITE, not RATELIMIT_DEFAULT."""
    setattr(view, WRITES, True)
    return view


{%- if cookiecutter.use_auth == "yes" %}


def limit_sign_in(account: Callable[[], str]) -> Callable[[RouteCallable], RouteCallable]:
    """Mark a sign-in view (a failure answered 401 or 422): init_app limits its attempts per
    client, and its failures per account, the key ``account()`` returns for the request."""

    def mark(view: RouteCallable) -> RouteCallable:
        setattr(view, SIGN_IN, account)
        return view

    return mark
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
        RATELIMIT_HEADERS_ENABLED=True,
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
        if getattr(view, SIGN_IN, False):  # per account, failures only: its own sign-ins are free
            per_account = limiter.limit(
                settings.ratelimit_sign_in_account,
                key_func=getattr(view, SIGN_IN),
                deduct_when=lambda response: response.status_code in FAILED_SIGN_IN,
            )
            limited = limiter.limit(settings.ratelimit_sign_in)(per_account(view))
            app.view_functions[endpoint] = limited  # type: ignore[assignment]  # as above
{%- endif %}
    app.extensions["rate_limits"] = limiter
