"""Limit request rates per client; storage falls back to memory when its backend fails."""

from flask import Flask

from .extensions import limiter


def init_app(app: Flask) -> None:
    """Bind the limiter with the default limit from settings."""
    settings = app.extensions["settings"]
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    app.config["RATELIMIT_DEFAULT"] = settings.ratelimit_default
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    app.config["RATELIMIT_ENABLED"] = settings.app_env != "test"
    limiter.init_app(app)
