"""Limit request rates per client address with `limits`' fixed windows: each view marked by a
decorator below gets its own limits (RATELIMIT_WRITE on writes, ``@limit("5/minute")`` a route's
own), every other route but those marked unlimited and static files RATELIMIT_DEFAULT (empty:
none).

A request that is not counted runs none of this: init_app wraps the marked views, and registers
a hook for the other routes only when RATELIMIT_DEFAULT is set. Counts live in the storage
init_app picks (each worker's memory unless a shared one is set), in memory while it fails.
"""

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import Flask, Response, after_this_request, current_app, g, request
from flask.typing import ResponseReturnValue, RouteCallable
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

{% if cookiecutter.use_redis == "yes" -%}
from . import redis_client
{% endif -%}
from .outage import Outage

log = logging.getLogger(__name__)
T = TypeVar("T")
WRITES = "rate_limits_writes"  # set on a view by limit_writes
OWN = "rate_limits_own"  # set on a view by limit
{%- if cookiecutter.use_auth == "yes" %}
SIGN_IN = "rate_limits_sign_in"  # set on a view by limit_sign_in
SIGN_IN_SCOPE = "sign-in"  # the one count per address of every sign-in view, whichever surface
{%- endif %}
UNCOUNTED = "rate_limits_uncounted"  # set on a view by unlimited


class RateLimits:
    """Count in fixed windows in a storage, and in the worker's memory while that one fails
    (each worker tries it again after ``retry_interval``); APP_ENV=test: ``enabled`` is off."""

    def __init__(self, enabled: bool, storage: Storage, retry_interval: float) -> None:
        self.enabled = enabled
        self.strategy = FixedWindowRateLimiter(storage)
        self.fallback = FixedWindowRateLimiter(MemoryStorage())
        self.outage = Outage("the rate limits' storage", retry_interval)
        self.in_memory = isinstance(storage, MemoryStorage)
        # limits' MemoryStorage is not safe for threads: two threads counting at once can start
        # its expiry timer twice, and the second start fails (limits issue #26). Counts in memory
        # are taken one at a time; a shared storage is counted in parallel.
        self.memory_lock = threading.Lock()

    def run(self, count: Callable[[FixedWindowRateLimiter], T]) -> T:
        """Return what ``count`` answers with the storage's strategy, or with the memory's while
        the storage fails; raise what the memory's raises."""
        return self.outage.call(
            lambda: self.in_turn(count) if self.in_memory else count(self.strategy),
            lambda: self.in_turn(count, fallback=True),
        )

    def in_turn(self, count: Callable[[FixedWindowRateLimiter], T], fallback: bool = False) -> T:
        """Return what ``count`` answers with a strategy in memory, one thread at a time."""
        with self.memory_lock:
            return count(self.fallback if fallback else self.strategy)

    def reset(self) -> None:
        """Forget every count (tests start afresh)."""
        self.strategy.storage.reset()
        self.fallback.storage.reset()


@dataclass(frozen=True)
class Counted:
    """A counted request's limit nearest to refusing it (or refusing it), as its headers say."""

    limit: RateLimitItem
    remaining: int
    reset_time: float  # when the window ends, in seconds since the epoch
    refused: bool


def limit_writes(view: RouteCallable) -> RouteCallable:
    """Mark a view that writes: init_app limits it to RATELIMIT_WRITE, not RATELIMIT_DEFAULT."""
    setattr(view, WRITES, True)
    return view


def limit(limits: str) -> Callable[[RouteCallable], RouteCallable]:
    """Mark a view with limits of its own, in the settings' notation ("5/minute;100/hour"):
    init_app counts its requests per client address against them in a count of their own, and
    not against RATELIMIT_DEFAULT (RATELIMIT_WRITE still counts a view marked limit_writes too).
    A limit that does not parse fails here, when the module is imported."""
    parse_many(limits)

    def mark(view: RouteCallable) -> RouteCallable:
        setattr(view, OWN, limits)
        return view

    return mark


{%- if cookiecutter.use_auth == "yes" %}


def limit_sign_in(view: RouteCallable) -> RouteCallable:
    """Mark a sign-in view: init_app limits the attempts per client address to RATELIMIT_SIGN_IN,
    in one count shared by every view so marked (the view counts its account's password checks
    itself: auth/sign_in_limits.py)."""
    setattr(view, SIGN_IN, True)
    return view
{%- endif %}


def unlimited(view: RouteCallable) -> RouteCallable:
    """Mark a view whose requests are never counted, whatever RATELIMIT_DEFAULT says: a probe,
    /metrics (openapi.py documents no 429 on it)."""
    setattr(view, UNCOUNTED, True)
    return view


def is_marked(view: object) -> bool:
    """Say whether a view has limits of its own (a decorator above marked it)."""
    marks = (WRITES, OWN{% if cookiecutter.use_auth == "yes" %}, SIGN_IN{% endif %})
    return any(getattr(view, mark, None) for mark in marks)


def is_exempt(app: Flask, endpoint: str) -> bool:
    """Say whether requests to an endpoint (empty: none matched) are never counted: a view marked
    unlimited, static files."""
    view = app.view_functions.get(endpoint)
    static = endpoint == "static" or endpoint.endswith(".static")
    return not endpoint or static or getattr(view, UNCOUNTED, False)


def is_limited(app: Flask, endpoint: str) -> bool:
    """Say whether requests to an endpoint (empty: none matched) are counted."""
    if is_exempt(app, endpoint):
        return False
    view = app.view_functions.get(endpoint)
    return is_marked(view) or bool(app.extensions["settings"].ratelimit_default.strip())


def init_app(app: Flask) -> None:
    """Limit the routes registered so far (it wraps the marked views); APP_ENV=test: none."""
    settings = app.extensions["settings"]
    storage: Storage = MemoryStorage()  # each worker's own counts, chosen knowingly
{%- if cookiecutter.use_redis == "yes" %}
    storage = redis_client.limits_storage(settings) or storage  # in Redis when REDIS_URL is set
{%- endif %}
    interval = {{ "settings.redis_retry_interval" if cookiecutter.use_redis == "yes" else "0" }}
    app.extensions["rate_limits"] = RateLimits(settings.app_env != "test", storage, interval)
    if settings.app_env == "test":
        return
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, WRITES, False):
            view = counted(view, parse_many(settings.ratelimit_write), endpoint)
        if own := getattr(view, OWN, None):
            view = counted(view, parse_many(own), f"{endpoint} (own)")
{%- if cookiecutter.use_auth == "yes" %}
        if getattr(view, SIGN_IN, False):
            view = counted(view, parse_many(settings.ratelimit_sign_in), SIGN_IN_SCOPE)
{%- endif %}
        app.view_functions[endpoint] = view
    if settings.ratelimit_default.strip():
        app.before_request(default_counter(parse_many(settings.ratelimit_default)))


def counted(view: RouteCallable, limits: list[RateLimitItem], scope: str) -> RouteCallable:
    """Return the view counting each request against ``limits`` in ``scope`` first."""

    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        count(limits, scope)
        return cast(Callable[..., ResponseReturnValue], view)(*args, **kwargs)

    return limited


def default_counter(limits: list[RateLimitItem]) -> Callable[[], None]:
    """Return the hook counting the requests to routes without limits of their own against
    ``limits`` (RATELIMIT_DEFAULT), each route its own count; it returns at once for others."""

    def count_default() -> None:
        endpoint = request.endpoint or ""
        view = current_app.view_functions.get(endpoint)
        if not is_exempt(current_app, endpoint) and not is_marked(view):
            count(limits, endpoint)

    return count_default


def count(limits: list[RateLimitItem], scope: str) -> None:
    """Count the request against each limit, the shortest window first, per client address (behind
    a trusted proxy, the one it forwarded); raise 429 once one is spent. A count that fails is
    logged and the request let through: a failing storage must not refuse every client."""
    key = request.remote_addr or "127.0.0.1"
    try:
        found = current_app.extensions["rate_limits"].run(lambda s: hit(s, limits, key, scope))
    except Exception:
        log.exception("counting a request failed: served uncounted")
        return
    g.rate_limit = found
    after_this_request(send_limit_headers)
    if found.refused:
        raise TooManyRequests(str(found.limit))


def hit(
    strategy: FixedWindowRateLimiter, limits: list[RateLimitItem], key: str, scope: str
) -> Counted:
    """Hit each limit until one refuses; return that one, or else the shortest window's."""
    ordered = sorted(limits)
    for limit in ordered:
        if not strategy.hit(limit, key, scope):
            return window(strategy, limit, key, scope, refused=True)
    return window(strategy, ordered[0], key, scope, refused=False)


def window(
    strategy: FixedWindowRateLimiter, limit: RateLimitItem, key: str, scope: str, refused: bool
) -> Counted:
    """Return a limit's count of ``key`` in ``scope``, as the headers tell it."""
    reset_time, remaining = strategy.get_window_stats(limit, key, scope)
    return Counted(limit, remaining, reset_time, refused)


def send_limit_headers(response: Response) -> Response:
    """Send X-RateLimit-Limit, -Remaining and -Reset on a counted answer (the limit nearest to
    refusing it), and Retry-After on a 429 alone, the limit's window unless whoever refused
    set one (a 503 keeps the database's own)."""
    found: Counted = g.rate_limit
    response.headers["X-RateLimit-Limit"] = str(found.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(found.remaining)
    response.headers["X-RateLimit-Reset"] = str(math.ceil(found.reset_time))
    if response.status_code == 429 and "Retry-After" not in response.headers:
        # Rounded up: the wait it names is never shorter than the window's rest, to the precision
        # the storage keeps (a shared storage may keep whole seconds).
        response.headers["Retry-After"] = str(max(1, math.ceil(found.reset_time - time.time())))
    return response
