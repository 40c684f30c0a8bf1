"""Point the cache and the rate limiter at Redis when REDIS_URL is set."""

import redis
from flask import Flask


def client_options(timeout: float) -> dict:
    """Return redis-py options that make a dead server fail fast."""
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout}


def ping(url: str, timeout: float) -> None:
    """Ping Redis; raise when it does not answer within the timeout."""
    client = redis.Redis.from_url(url, **client_options(timeout))
    try:
        client.ping()
    finally:
        client.close()


def init_app(app: Flask) -> None:
    """Choose Redis as cache and rate-limit storage when configured; memory otherwise."""
    settings = app.extensions["settings"]
    if not settings.redis_url:
        return
    options = client_options(settings.health_check_timeout)
    app.config["CACHE_TYPE"] = "RedisCache"
    app.config["CACHE_REDIS_URL"] = settings.redis_url
    app.config["CACHE_KEY_PREFIX"] = "{{ cookiecutter.package_name }}:"
    app.config["CACHE_OPTIONS"] = options
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url
    app.config["RATELIMIT_STORAGE_OPTIONS"] = options


def readiness_checks(settings) -> dict:
    """Return a Redis ping check when Redis is configured."""
    if not settings.redis_url:
        return {}
    return {"redis": lambda: ping(settings.redis_url, settings.health_check_timeout)}
