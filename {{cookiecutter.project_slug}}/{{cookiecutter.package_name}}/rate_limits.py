"""Limit request rates per client: the limiter, its storage, its headers and the limits' values.

Where the counters live: in the shared store, when create_app set one up (one count for every
worker and replica); otherwise, and while that store fails, in each worker process's memory,
so a client can get up to the limit times the number of workers.
"""

from flask import Flask, current_app, request
from flask.wrappers import Response
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# flask-limiter writes its Retry-After on every limited response, 2xx included, and overwrites
# one a handler set (a 503's); it writes this name instead, and only a 429 gets it as Retry-After.
LIMITER_RETRY_AFTER = "X-RateLimit-Retry-After"


def _default_limit() -> str:
    """Return the running app's default per-client limit (read per app, not fixed at import)."""
    return current_app.extensions["settings"].ratelimit_default


def _write_limit() -> str:
    """Return the running app's per-client limit for writes."""
    return current_app.extensions["settings"].ratelimit_write


limiter = Limiter(key_func=get_remote_address, default_limits=[_default_limit])


def limit_writes(view):
    """Limit a view that writes to RATELIMIT_WRITE per client, on top of the default limit."""
    return limiter.limit(_write_limit)(view)


@limiter.request_filter
def _is_health_check() -> bool:
    """Skip the limiter entirely for probes: cheaper than exempting the routes (benchmarked)."""
    return request.blueprint == "health"


def _retry_after_only_when_refused(response: Response) -> Response:
    """Send the limiter's Retry-After on a 429 only; leave a handler's own (a 503's) alone."""
    retry_after = response.headers.pop(LIMITER_RETRY_AFTER, None)
    if response.status_code == 429 and retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def init_app(app: Flask) -> None:
    """Bind the limiter: counts in the shared store when create_app set one up, else in memory."""
    store = app.extensions.get("shared_store")
    uri, options = store.limiter_storage() if store else ("memory://", {})
    app.config["RATELIMIT_STORAGE_URI"] = uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = options
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config["RATELIMIT_HEADER_RETRY_AFTER"] = LIMITER_RETRY_AFTER
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    app.config["RATELIMIT_ENABLED"] = app.extensions["settings"].app_env != "test"
    # Flask runs after_request functions last-registered first: registered before the limiter's
    # own, this one runs after it and sees the headers it wrote.
    app.after_request(_retry_after_only_when_refused)
    limiter.init_app(app)
