"""Skip a failing Redis: one shared breaker, mixed into every redis-py connection of the app.

A dead or frozen Redis costs one REDIS_TIMEOUT per worker; then every call fails at once for
REDIS_RETRY_INTERVAL seconds, after which one call tries Redis again.
"""

import logging
import threading
import time

import redis
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

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
