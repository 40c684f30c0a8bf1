"""Limit request rates per client; storage falls back to memory when its backend fails."""

from flask import Flask, request

from .extensions import limiter


@limiter.request_filter
def _is_health_check() -> bool:
    """Skip the limiter entirely for probes: cheaper than exempting the routes (benchmarked)."""
    return request.blueprint == "health"


def init_app(app: Flask) -> None:
    """Bind the limiter; its default limit comes from settings (see extensions.py)."""
    settings = app.extensions["settings"]
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    app.config["RATELIMIT_ENABLED"] = settings.app_env != "test"
    limiter.init_app(app)
