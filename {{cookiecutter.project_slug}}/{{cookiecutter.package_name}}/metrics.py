"""Prometheus metrics at /metrics: requests by route template, database pool, cache lookups.

Several server processes each count their own requests. They write their counts into files of
one folder shared by them all (PROMETHEUS_MULTIPROC_DIR, prepared by the server:
metrics_folder.py), which every /metrics answer sums up. Without the folder (the tests,
``flask run``: one process) each app counts in its own registry.
"""

import os
import threading
import time
import weakref
from pathlib import Path

from flask import Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from .extensions import db
from .metrics_folder import FOLDER_VARIABLE

STARTED = "metrics.started"
# The label of every request no route matched: its raw path would make one series per path.
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CACHE_RESULTS = ("hit", "miss", "error")


class Metrics:
    """The app's metrics, in its own registry or, across processes, in the shared folder."""

    def __init__(self, folder: Path | None) -> None:
        """Create the metrics; with a folder, every process writes its values there."""
        self.folder = folder
        if folder is not None and values.ValueClass is values.MutexValue:
            # The library chose per-process values at import: the folder came from .env, or
            # after. Switch once per process (each switch would open its files again).
            os.environ[FOLDER_VARIABLE] = str(folder)
            values.ValueClass = values.MultiProcessValue()
        self.registry = None if folder else CollectorRegistry()
        labels = ("route", "method", "status")
        self.requests = Counter(
            "http_requests", "Requests answered.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to answer.", labels, registry=self.registry
        )
        self.pool = Gauge(
            "db_pool_connections",
            "Database connections of the pools, by state.",
            ("state",),
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.cache = Counter(
            "cache_lookups", "Cache reads, by result.", ("result",), registry=self.registry
        )
        self.cache_results = {result: self.cache.labels(result) for result in CACHE_RESULTS}
        # Each series' counter and histogram, by labels: looked up once, not on every request.
        self.series: dict[tuple[str, str, str], tuple] = {}

    def observe(self, labels: tuple[str, str, str], seconds: float) -> None:
        """Count one answered request and its duration in the series of these labels."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        series[0].inc()
        series[1].observe(seconds)

    def exposition(self) -> bytes:
        """Return every metric in Prometheus' text format, summed over the processes."""
        registry = self.registry
        if registry is None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(self.folder))
        return generate_latest(registry)


def count_cache_lookup(result: str, app: Flask | None = None) -> None:
    """Count one cache read as ``hit``, ``miss`` or ``error`` (a failed cache: also a miss).

    ``app``: the current app, when the caller holds it already (each lookup of it costs).
    """
    metrics = (app or current_app).extensions.get("metrics")
    if metrics is not None:
        metrics.cache_results[result].inc()


class _StartClock:
    """WSGI middleware noting when each request arrived, before any hook of the app runs."""

    def __init__(self, wsgi_app) -> None:
        """Wrap the app."""
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        """Note the time, then serve."""
        environ[STARTED] = time.perf_counter()
        return self.wsgi_app(environ, start_response)


def observing(metrics: Metrics):
    """Return the hook counting each answered request in these metrics."""

    def _observe(response: Response) -> Response:
        """Count the answered request by route template (never its raw path), method, status."""
        current = request._get_current_object()
        rule = current.url_rule
        route = rule.rule if rule else UNMATCHED
        method = current.method if current.method in METHODS else "<other>"
        labels = (route, method, str(response.status_code))
        started = current.environ.get(STARTED, time.perf_counter())
        metrics.observe(labels, time.perf_counter() - started)
        return response

    return _observe


def _expose() -> Response:
    """Answer the metrics for a scraper."""
    body = current_app.extensions["metrics"].exposition()
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class PoolWatcher:
    """Keep the gauges of an engine's pool current without writing them at every checkout.

    Each write of a gauge shared across processes takes a lock and writes its file: the four
    writes of a checkout and checkin were a tenth of the CPU of a database read. Instead a thread
    of each process samples its pools every SAMPLE_SECONDS, and the last connection in use coming
    back is written at once: at rest the gauges are exact, under load at most that old. The pool
    is the engine's current one (a forked worker disposes of the pool it inherited).
    """

    def __init__(self, engine, in_use, idle) -> None:
        """Watch the engine's pool, writing into these two gauges."""
        self.engine, self.in_use, self.idle = engine, in_use, idle
        self.lock = threading.Lock()
        self.written: tuple[int, int] | None = None

    def _set(self, in_use: int, idle: int) -> None:
        """Set the gauges, unless they show these numbers already; the lock is held."""
        if self.written != (in_use, idle):
            self.in_use.set(in_use)
            self.idle.set(idle)
            self.written = (in_use, idle)

    def sample(self) -> None:
        """Write the connections in use and idle now."""
        with self.lock:
            pool = self.engine.pool
            self._set(pool.checkedout(), pool.checkedin())

    def checked_in(self, *_) -> None:
        """Write the pool at rest when the last connection in use comes back."""
        if SAMPLER.pid != os.getpid():
            SAMPLER.start()
        pool = self.engine.pool
        if pool.checkedout() == 1:  # the pool tells before it takes this one back
            with self.lock:
                self._set(0, min(pool.checkedin() + 1, pool.size()))  # a full pool closes it


class _Sampler:
    """The thread of this process that samples every watched pool, started at its first use."""

    def __init__(self) -> None:
        """Watch nothing yet; no thread yet."""
        self.watchers: weakref.WeakSet[PoolWatcher] = weakref.WeakSet()
        self.pid: int | None = None
        self.lock = threading.Lock()
        os.register_at_fork(after_in_child=self.forked)

    def forked(self) -> None:
        """In a forked child, renew the locks: a thread of the parent may have held one."""
        self.lock = threading.Lock()
        for watcher in list(self.watchers):
            watcher.lock = threading.Lock()

    def start(self) -> None:
        """Start this process's sampling thread, once (a forked worker starts its own)."""
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            threading.Thread(target=self.run, name="pool-gauges", daemon=True).start()

    def run(self) -> None:
        """Sample each watched pool every SAMPLE_SECONDS, for as long as the process lives."""
        while True:
            time.sleep(SAMPLE_SECONDS)
            for watcher in list(self.watchers):
                watcher.sample()


SAMPLE_SECONDS = 1.0
SAMPLER = _Sampler()


def _watch_pool(metrics: Metrics, engine) -> None:
    """Keep the pool gauges current (PoolWatcher)."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):  # SQLite in memory: one connection, nothing to watch
        return
    watcher = PoolWatcher(engine, metrics.pool.labels("in_use"), metrics.pool.labels("idle"))
    SAMPLER.watchers.add(watcher)
    SAMPLER.start()
    event.listen(pool, "checkin", watcher.checked_in)
    watcher.sample()


def init_app(app: Flask) -> None:
    """Count requests, watch the pool and serve /metrics, unless METRICS_ENABLED is false."""
    settings = app.extensions["settings"]
    if not settings.metrics_enabled:
        return
    metrics = Metrics(settings.prometheus_multiproc_dir)
    app.extensions["metrics"] = metrics
    app.wsgi_app = _StartClock(app.wsgi_app)
    app.after_request(observing(metrics))  # bound here: no app lookup per request
    app.add_url_rule("/metrics", "metrics", _expose)
    with app.app_context():
        _watch_pool(metrics, db.engine)
