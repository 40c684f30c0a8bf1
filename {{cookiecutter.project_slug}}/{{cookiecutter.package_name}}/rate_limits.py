"""Limit request rates per client and route: fixed windows, with headers.

`limits` parses the settings, names the counters and counts them in the shared store;
WorkerCounts below counts them in memory.

Where the counters live: in the shared store, when create_app set one up (one count for every
worker and replica); otherwise, and while that store fails, in each worker process's memory,
so a client can get up to the limit times the number of workers. A failed store is asked again
on the next request; its client's breaker decides how often that costs a real call.

A limited request costs one call to the shared store: it counts the hit in every window of the
route's limits, answers when each window ends (all the X-RateLimit-* headers need), and reads
the cache entry the route's view will read, if it names one (caching.read_through), so a cache
hit makes one round trip to the store, not two. The Flask side is two hooks written for the limits
this app has (a default per route, a tighter one for writes): a general extension's evaluation
of every possible kind of limit cost a third of a database read. What a route's limits are, and
their keys but for the client, are worked out on its first request (plan_route), not on each.
"""

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from flask import Flask, current_app, request
from flask.wrappers import Response
from limits import RateLimitItem, parse_many
from limits.storage import Storage
from werkzeug.exceptions import TooManyRequests

from . import caching

log = logging.getLogger(__name__)

# Adds a hit to each window, a (key, seconds) pair, and reads one more key (the cache's) in the
# same call when given one. Answers each window's new count and when it ends (seconds since the
# epoch), and what it read: the stored value, None when absent, NOT_READ when it read nothing.
Counter = Callable[[Storage, list[tuple[str, int]], str | None], tuple[list, object]]
NOT_READ = object()
WINDOW = "rate_limits.window"  # the request's tightest window, kept in its WSGI environ
WRITES = "rate_limits_writes"  # set on a view by limit_writes
UNLIMITED_BLUEPRINTS = frozenset({"health"})  # probes (openapi.py documents no limit on them)
SWEEP_AT_LEAST = 1024  # windows a worker keeps before it first drops the ended ones


def parse_limits(value: str) -> list[RateLimitItem]:
    """Return the limits of a setting like ``600 per minute`` or ``10/second;600/minute``.

    Raises ValueError, naming what is expected, for anything else (and for a limit of 0).
    """
    try:
        limits = parse_many(value)
    except ValueError:
        limits = []
    if not limits or any(limit.amount < 1 for limit in limits):
        raise ValueError(
            "expected one or more limits like '600 per minute' or '10/second;600/minute', "
            "each of at least 1 request"
        )
    return limits


def checked_limits(value: str) -> str:
    """Return a rate-limit setting unchanged when it parses; raise ValueError otherwise."""
    parse_limits(value)
    return value


def count_in(storage: Storage, windows: list[tuple[str, int]], read: str | None) -> tuple:
    """Count a hit with the storage's own calls, two per window (the counter, its expiry)."""
    return [(storage.incr(key, expiry), storage.get_expiry(key)) for key, expiry in windows], (
        NOT_READ
    )


class WorkerCounts:
    """Fixed windows in this worker's memory, behind one lock: each key's hits and window end.

    Not limits' MemoryStorage: its 5.8 release is not safe across threads. Two threads of one
    worker can start its expiry timer twice (a RuntimeError, so a 500), and the count it returns
    is read after its lock is let go, so it can be another thread's. Here a count and its window
    are read under the lock that changed them. Ended windows are dropped when the table has
    doubled since the last sweep, so memory stays within twice the live windows and no thread
    runs in the background.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, float]] = {}
        self._sweep_at = SWEEP_AT_LEAST

    def count(self, key: str, expiry: int) -> tuple[int, float]:
        """Add one hit to the key's window; return its count and when the window ends."""
        now = time.time()
        with self._lock:
            hits, ends = self._windows.get(key, (0, 0.0))
            if ends <= now:
                hits, ends = 0, now + expiry
            hits += 1
            self._windows[key] = (hits, ends)
            if len(self._windows) >= self._sweep_at:
                self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
                self._sweep_at = max(SWEEP_AT_LEAST, 2 * len(self._windows))
        return hits, ends

    def get(self, key: str) -> int:
        """Return the key's count in its current window (0 once the window has ended)."""
        with self._lock:
            hits, ends = self._windows.get(key, (0, 0.0))
        return hits if ends > time.time() else 0

    def __len__(self) -> int:
        """Return how many windows are kept (ended ones included until the next sweep)."""
        return len(self._windows)

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._windows.clear()
            self._sweep_at = SWEEP_AT_LEAST


class Counts:
    """One app's counters: in the shared store when there is one and it answers, else memory."""

    def __init__(self, shared: Storage | None = None, shared_counter: Counter = count_in):
        self.memory = WorkerCounts()
        self.shared = shared
        self.shared_counter = shared_counter
        self.shared_failed = False

    def count(self, windows: list[tuple[str, int]], read: str | None = None) -> tuple:
        """Add one hit to each (key, seconds) window; return their (count, end) and the read.

        The shared store also reads the key ``read`` in the same call (see Counter); counting in
        memory reads nothing (NOT_READ).
        """
        if self.shared is not None:
            try:
                answer = self.shared_counter(self.shared, windows, read)
            except self.shared.base_exceptions as exc:
                if not self.shared_failed:
                    self.shared_failed = True
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning("rate limits counted in this worker's memory: %s", error)
            else:
                if self.shared_failed:
                    self.shared_failed = False
                    log.info("rate limits counted in the shared store again")
                return answer
        return [self.memory.count(key, expiry) for key, expiry in windows], NOT_READ

    def reset(self) -> None:
        """Forget every count, in memory and in the shared store."""
        self.memory.reset()
        if self.shared is not None:
            self.shared.reset()


class Route(NamedTuple):
    """How requests to a route are limited, worked out on its first request."""

    limits: list[RateLimitItem]
    keys: list[tuple[str, str, int]]  # each limit's key before and after the client; its seconds
    view: Callable  # what caching.stored_key asks for the cache entry the view reads


class Limits(NamedTuple):
    """The app's limits, parsed once, where they are counted, and each route's (by endpoint)."""

    default: list[RateLimitItem]
    write: list[RateLimitItem]
    counts: Counts
    routes: dict[str | None, Route | None]


class Window(NamedTuple):
    """A limit's window as a hit left it."""

    limit: RateLimitItem
    remaining: int
    reset_at: float


def limit_writes(view):
    """Limit a view that writes to RATELIMIT_WRITE per client, instead of the default limit."""
    setattr(view, WRITES, True)
    return view


def reset() -> None:
    """Forget the running app's counts (tests start from full windows)."""
    current_app.extensions["rate_limits"].counts.reset()


def plan_route(app: Flask, endpoint: str | None) -> Route | None:
    """Return how requests to an endpoint are limited; None for one that is not.

    Probes, static files and requests that match no route (no endpoint) are not limited. A
    limit's key is limits' own, ``key_for(client, endpoint)``, put together around the client.
    """
    if endpoint is None:
        return None
    blueprint, _, name = endpoint.rpartition(".")
    if blueprint in UNLIMITED_BLUEPRINTS or name == "static":
        return None
    limits = app.extensions["rate_limits"]
    view = app.view_functions[endpoint]
    chosen = limits.write if getattr(view, WRITES, False) else limits.default
    keys = [
        (f"{limit.namespace}/", limit.key_for(endpoint)[len(limit.namespace) :], limit.get_expiry())
        for limit in chosen
    ]
    return Route(chosen, keys, view)


def rate_limit_request() -> None:
    """Count the request against its route's limits; refuse it with a 429 past one of them."""
    current = request._get_current_object()
    app = current_app._get_current_object()
    limits = app.extensions["rate_limits"]
    endpoint = current.endpoint
    try:
        route = limits.routes[endpoint]
    except KeyError:
        route = limits.routes[endpoint] = plan_route(app, endpoint)
    if route is None:
        return
    client = current.remote_addr or ""
    read = caching.stored_key(route.view, current.view_args or {})
    answers, stored = limits.counts.count(
        [(before + client + after, seconds) for before, after, seconds in route.keys], read
    )
    if stored is not NOT_READ:
        caching.read_with_limits(read, stored)
    tightest = None
    for limit, (count, reset_at) in zip(route.limits, answers, strict=True):
        window = Window(limit, max(0, limit.amount - count), reset_at)
        if count > limit.amount:
            current.environ[WINDOW] = window
            wait = max(1, math.ceil(reset_at - time.time()))
            raise TooManyRequests(
                f"Rate limit exceeded: {limit} per client; retry in {wait} s.", retry_after=wait
            )
        if tightest is None or window.remaining < tightest.remaining:
            tightest = window
    current.environ[WINDOW] = tightest


def rate_limit_headers(response: Response) -> Response:
    """Send the tightest limit's X-RateLimit-Limit, -Remaining and -Reset, from its hit."""
    window = request.environ.get(WINDOW)
    if window is not None:
        response.headers["X-RateLimit-Limit"] = str(window.limit.amount)
        response.headers["X-RateLimit-Remaining"] = str(window.remaining)
        response.headers["X-RateLimit-Reset"] = str(math.ceil(window.reset_at))
    return response


def init_app(app: Flask) -> None:
    """Parse the limits; count in the shared store when create_app set one up, else in memory.

    With APP_ENV=test nothing is limited (tests that check limits use another APP_ENV).
    """
    settings = app.extensions["settings"]
    store = app.extensions.get("shared_store")
    counts = Counts(*store.limit_storage()) if store else Counts()
    app.extensions["rate_limits"] = Limits(
        parse_limits(settings.ratelimit_default), parse_limits(settings.ratelimit_write), counts, {}
    )
    if settings.app_env != "test":
        app.before_request(rate_limit_request)
        app.after_request(rate_limit_headers)
