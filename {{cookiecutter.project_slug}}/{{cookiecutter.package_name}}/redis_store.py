"""Offer Redis, when REDIS_URL is set, as the shared store of the cache and the rate limiter.

Redis is a soft dependency: when it fails, the cache misses and the limiter counts in memory.
One shared breaker makes a dead or frozen Redis cost one REDIS_TIMEOUT per worker, after which
every call fails at once for REDIS_RETRY_INTERVAL seconds; then one call tries Redis again.
"""

import logging
import threading
import time
from typing import Annotated, NamedTuple
from urllib.parse import urlsplit

import redis
from flask import Flask
from pydantic import AfterValidator
from redis.backoff import NoBackoff
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection, parse_url
from redis.retry import Retry

log = logging.getLogger(__name__)
NETWORK_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class RedisSkipped(redis.ConnectionError):
    """Redis failed moments ago; it is not called again before its retry interval."""

    already_logged = True  # the breaker logged the failure once; callers need not repeat it


class Breaker:
    """Remember a Redis failure and refuse calls until the retry interval has passed."""

    def __init__(self, interval: float) -> None:
        """Start closed: Redis is called until it fails."""
        self.interval = interval
        self._retry_at = 0.0  # 0 while Redis answers; else when one call may try it again
        self._trial: int | None = None  # the thread whose call is trying Redis again
        self._lock = threading.Lock()

    def allow(self) -> None:
        """Raise RedisSkipped while Redis is skipped; once the interval is over, let one through."""
        with self._lock:
            if not self._retry_at or self._trial == threading.get_ident():
                return
            now = time.monotonic()
            if now < self._retry_at:
                raise RedisSkipped(f"skipped for {self._retry_at - now:.1f}s after a failure")
            self._retry_at = now + self.interval  # others keep skipping while this one tries
            self._trial = threading.get_ident()

    def failed(self, exc: Exception) -> None:
        """Skip Redis for the retry interval from now; log when it starts being skipped."""
        with self._lock:
            if not self._retry_at:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("Redis failed, skipping it for %ss: %s", self.interval, error)
            self._retry_at = time.monotonic() + self.interval
            self._trial = None

    def answered(self) -> None:
        """Call Redis again as usual: it answered."""
        if not self._retry_at:
            return
        with self._lock:
            if self._retry_at:
                log.info("Redis answers again")
            self._retry_at, self._trial = 0.0, None


class Guarded:
    """Mixed into a redis-py connection: ask the breaker before talking, tell it how it went."""

    def __init__(self, *args, breaker: Breaker, **kwargs) -> None:
        """Open nothing yet; remember the app's breaker."""
        super().__init__(*args, **kwargs)
        self.breaker = breaker

    def connect(self) -> None:
        """Connect unless Redis is being skipped."""
        self.breaker.allow()
        try:
            super().connect()
        except NETWORK_ERRORS as exc:
            self.breaker.failed(exc)
            raise

    def send_packed_command(self, command, check_health: bool = True) -> None:
        """Send unless Redis is being skipped; a network failure trips the breaker."""
        self.breaker.allow()
        try:
            super().send_packed_command(command, check_health)
        except NETWORK_ERRORS as exc:
            self.breaker.failed(exc)
            raise

    def read_response(self, *args, **kwargs):
        """Read an answer; a timeout trips the breaker, an answer (even an error) resets it."""
        try:
            response = super().read_response(*args, **kwargs)
        except NETWORK_ERRORS as exc:
            self.breaker.failed(exc)
            raise
        except redis.RedisError:
            self.breaker.answered()
            raise
        self.breaker.answered()
        return response


class GuardedConnection(Guarded, Connection):
    """A guarded TCP connection (redis://)."""


class GuardedSSLConnection(Guarded, SSLConnection):
    """A guarded TLS connection (rediss://)."""


class GuardedUnixConnection(Guarded, UnixDomainSocketConnection):
    """A guarded Unix socket connection (unix://)."""


GUARDED = {"rediss": GuardedSSLConnection, "unix": GuardedUnixConnection}


def checked_url(value: str | None) -> str | None:
    """Return a Redis URL redis-py can use, None when unset; raise ValueError otherwise."""
    if not value:
        return None
    try:
        parse_url(value)
    except ValueError:
        raise ValueError("not a Redis URL (e.g. redis://localhost:6379/0)") from None
    database = urlsplit(value).path.strip("/")
    if urlsplit(value).scheme != "unix" and database and not database.isdigit():
        raise ValueError("the database of a Redis URL is a number (e.g. redis://localhost/0)")
    return value


RedisUrl = Annotated[str | None, AfterValidator(checked_url)]


class RedisStore(NamedTuple):
    """The app's Redis: its URL and the client options every connection to it uses."""

    url: str
    options: dict

    def cache_backend(self) -> dict:
        """Return the flask-caching keys that put the cache in this Redis."""
        return {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": self.url,
            "CACHE_OPTIONS": self.options,
        }

    def limiter_storage(self) -> tuple[str, dict]:
        """Return the storage URI and options that keep the limiter's counts in this Redis."""
        return self.url, self.options


def client_options(url: str, timeout: float, breaker: Breaker) -> dict:
    """Return redis-py options: bounded sockets, one attempt, and the app's breaker."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),  # the breaker, not redis-py, decides when to try again
        "connection_class": GUARDED.get(urlsplit(url).scheme, GuardedConnection),
        "breaker": breaker,
    }


def ping(url: str, options: dict) -> None:
    """Ping Redis; raise when it does not answer in time or is being skipped."""
    client = redis.Redis.from_url(url, **options)
    try:
        client.ping()
    finally:
        client.close()


def init_app(app: Flask) -> None:
    """Offer Redis as the shared store when REDIS_URL is set; nothing otherwise."""
    settings = app.extensions["settings"]
    if not settings.redis_url:
        return
    breaker = Breaker(settings.redis_retry_interval)
    options = client_options(settings.redis_url, settings.redis_timeout, breaker)
    app.extensions["shared_store"] = RedisStore(settings.redis_url, options)


def readiness_checks(app: Flask) -> dict:
    """Return a Redis ping check when Redis is configured (a soft dependency)."""
    store = app.extensions.get("shared_store")
    if store is None:
        return {}
    return {"redis": lambda: ping(store.url, store.options)}
