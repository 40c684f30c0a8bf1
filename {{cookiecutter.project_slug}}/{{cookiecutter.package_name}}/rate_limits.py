"""Limit request rates per client: the limiter, its storage, its headers and the limits' values.

Where the counters live: in the shared store, when create_app set one up (one count for every
worker and replica); otherwise, and while that store fails, in each worker process's memory,
so a client can get up to the limit times the number of workers.
"""

from collections.abc import Callable

from flask import Flask, current_app, has_request_context, request
from flask.wrappers import Response
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem
from limits.strategies import STRATEGIES, FixedWindowRateLimiter
from limits.util import WindowStats

# flask-limiter writes its Retry-After on every limited response, 2xx included, and overwrites
# one a handler set (a 503's); it writes this name instead, and only a 429 gets it as Retry-After.
LIMITER_RETRY_AFTER = "X-RateLimit-Retry-After"
# Counters that add a hit and read its window's end in one call, by the storage class they serve
# (the shared store offers its own); other storages are asked twice: fine in process memory.
Counter = Callable[[object, str, int, int], tuple[int, float]]
ONE_CALL_COUNTERS: dict[type, Counter] = {}


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


def _skipping_probes(hook: Callable[..., object]) -> Callable[..., object]:
    """Wrap a limiter hook so that probes never reach it (a fifth of a probe's time in the app).

    A request filter or an exemption is only consulted after the limiter has looked the request
    up; this check costs one attribute read. A skipped hook hands back what it was given: the
    response, for a hook that runs after the view.
    """

    def hook_unless_probe(*args: object) -> object:
        """Run the limiter's hook, except for the health blueprint's routes."""
        if request.blueprint == "health":
            return args[0] if args else None
        return hook(*args)

    return hook_unless_probe


def _windows() -> dict[str, WindowStats]:
    """Return this request's windows by limit key (an empty, unkept dict outside requests)."""
    if not has_request_context():
        return {}
    return request.environ.setdefault("rate_limits.windows", {})


class OneCallFixedWindow(FixedWindowRateLimiter):
    """Fixed windows whose X-RateLimit-* headers come from the hit's own answer.

    The stock strategy reads the counter and its expiry again for the headers: two more calls
    to the store per request. Here a hit keeps its count and reset time for the request.
    """

    NAME = "fixed-window-one-call"

    def count(self, key: str, expiry: int, cost: int) -> tuple[int, float]:
        """Add ``cost`` to the key's window; return its new count and when the window ends."""
        counter = ONE_CALL_COUNTERS.get(type(self.storage))
        if counter is not None:
            return counter(self.storage, key, expiry, cost)
        return self.storage.incr(key, expiry, amount=cost), self.storage.get_expiry(key)

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        """Count a hit; remember the window's state for this request's headers."""
        key = item.key_for(*identifiers)
        count, reset_at = self.count(key, item.get_expiry(), cost)
        _windows()[key] = WindowStats(reset_at, max(0, item.amount - count))
        return count <= item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """Return the window this request's hit saw; ask the store only without one."""
        seen = _windows().get(item.key_for(*identifiers))
        return seen or super().get_window_stats(item, *identifiers)


def _retry_after_only_when_refused(response: Response) -> Response:
    """Send the limiter's Retry-After on a 429 only; leave a handler's own (a 503's) alone."""
    retry_after = response.headers.pop(LIMITER_RETRY_AFTER, None)
    if response.status_code == 429 and retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def init_app(app: Flask) -> None:
    """Bind the limiter: counts in the shared store when create_app set one up, else in memory.

    One call to the store per limit and request: the headers reuse the hit's answer.
    """
    store = app.extensions.get("shared_store")
    uri, options, counters = store.limiter_storage() if store else ("memory://", {}, {})
    ONE_CALL_COUNTERS.update(counters)
    STRATEGIES[OneCallFixedWindow.NAME] = OneCallFixedWindow  # flask-limiter takes it by name
    app.config["RATELIMIT_STORAGE_URI"] = uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = options
    app.config["RATELIMIT_STRATEGY"] = OneCallFixedWindow.NAME
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config["RATELIMIT_HEADER_RETRY_AFTER"] = LIMITER_RETRY_AFTER
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    app.config["RATELIMIT_ENABLED"] = app.extensions["settings"].app_env != "test"
    # Flask runs after_request functions last-registered first: registered before the limiter's
    # own, this one runs after it and sees the headers it wrote.
    app.after_request(_retry_after_only_when_refused)
    tables = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    hooks = [table.setdefault(None, []) for table in tables]
    before = [list(table) for table in hooks]
    limiter.init_app(app)
    for table, had in zip(hooks, before, strict=True):
        table[:] = [hook if hook in had else _skipping_probes(hook) for hook in table]
    limiter._storage_dead = False  # a new app's store is live, whatever an earlier app's did
