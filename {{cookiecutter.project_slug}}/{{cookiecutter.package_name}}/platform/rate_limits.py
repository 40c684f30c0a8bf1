"""Limit request rates per client with Flask-Limiter: RATELIMIT_WRITE on each view marked
``limit_writes``, RATELIMIT_DEFAULT (empty: none) on every other route but probes, /metrics and
static files. Counts live in each worker's memory{% if cookiecutter.use_redis == "yes" %}, or in Redis (redis_client.py){% endif %}.{% if cookiecutter.use_auth == "yes" %}
Each view marked ``limit_sign_in`` gets RATELIMIT_SIGN_IN per client, and
RATELIMIT_SIGN_IN_ACCOUNT per account on its failed attempts (401 or 422) only.{% endif %}"""
{% if cookiecutter.use_auth == "yes" %}
import hashlib
{% endif %}
from flask import Flask, current_app, request
from flask.typing import RouteCallable
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
{%- if cookiecutter.use_redis == "yes" or cookiecutter.use_auth == "yes" %}
{% endif %}
{%- if cookiecutter.use_auth == "yes" %}
from ..auth.accounts import normalised
{%- endif %}
{%- if cookiecutter.use_redis == "yes" %}
from . import redis_client
{%- endif %}

WRITES = "rate_limits_writes"  # set on a view by limit_writes
{%- if cookiecutter.use_auth == "yes" %}
SIGN_IN = "rate_limits_sign_in"  # set on a view by limit_sign_in
FAILED_SIGN_IN = (401, 422)  # the API's answer to a failed sign-in, and the pages' form's
{%- endif %}
# Never limited: the probes' blueprint (openapi.py documents no 429 on them), /metrics, static.
UNLIMITED = frozenset({"health", "metrics", "static"})


def limit_writes(view: RouteCallable) -> RouteCallable:
    """Mark a view that writes: init_app limits it to RATELIMIT_WRITE, not RATELIMIT_DEFAULT."""
    setattr(view, WRITES, True)
    return view


{%- if cookiecutter.use_auth == "yes" %}


def limit_sign_in(view: RouteCallable) -> RouteCallable:
    """Mark a sign-in view (JSON or form ``email``; a failure answered 401 or 422): init_app
    limits its attempts per client and its failures per account."""
    setattr(view, SIGN_IN, True)
    return view


def account_key() -> str:
    """Return the limiter's key of the account a sign-in names: a digest of its email, so no
    address is stored; every malformed email shares one key, unknown ones count as known ones."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else request.form.get("email")
    try:
        email = normalised(email) if isinstance(email, str) else ""
    except ValueError:
        email = ""
    return "sign-in:" + hashlib.sha256(email.encode()).hexdigest()
{%- endif %}


def is_limited(app: Flask, endpoint: str) -> bool:
    """Say whether requests to an endpoint (empty: none matched) are counted; the others never
    reach Flask-Limiter, which pings a failed storage from any request it sees."""
    if endpoint.partition(".")[0] in UNLIMITED:
        return False
{%- if cookiecutter.use_auth == "yes" %}
    view = app.view_functions.get(endpoint)
    writes = getattr(view, WRITES, False) or getattr(view, SIGN_IN, False)
{%- else %}
    writes = getattr(app.view_functions.get(endpoint), WRITES, False)
{%- endif %}
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
                key_func=account_key,
                deduct_when=lambda response: response.status_code in FAILED_SIGN_IN,
            )
            limited = limiter.limit(settings.ratelimit_sign_in)(per_account(view))
            app.view_functions[endpoint] = limited  # type: ignore[assignment]  # as above
{%- endif %}
    app.extensions["rate_limits"] = limiter
