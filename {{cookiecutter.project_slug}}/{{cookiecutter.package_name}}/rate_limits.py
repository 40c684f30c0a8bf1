"""Limit request rates per client; storage falls back to memory when its backend fails.

Where the counters live: in the shared storage another concern configured, if any (one count
for every worker and replica); otherwise, and while that storage fails, in each worker
process's memory, so a client can get up to the limit times the number of workers.
"""

from flask import Flask, request
from flask.wrappers import Response

from .extensions import limiter

# flask-limiter writes its Retry-After on every limited response, 2xx included, and overwrites
# one a handler set (a 503's); it writes this name instead, and only a 429 gets it as Retry-After.
LIMITER_RETRY_AFTER = "X-RateLimit-Retry-After"


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
    """Bind the limiter; its default limit comes from settings (see extensions.py)."""
    settings = app.extensions["settings"]
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config["RATELIMIT_HEADER_RETRY_AFTER"] = LIMITER_RETRY_AFTER
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    app.config["RATELIMIT_ENABLED"] = settings.app_env != "test"
    # Flask runs after_request functions last-registered first: registered before the limiter's
    # own, this one runs after it and sees the headers it wrote.
    app.after_request(_retry_after_only_when_refused)
    limiter.init_app(app)
