"""Prometheus metrics at /metrics: requests by route template, their latency, cache lookups.

With PROMETHEUS_MULTIPROC_DIR named before prometheus_client's import (by the app server), each
worker writes its values into files there, summed by /metrics (prometheus-client's multiprocess
mode); without it (tests, ``flask run``) an app counts in a registry of its own.
"""

import time
from collections.abc import Iterable
from pathlib import Path

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric

from .openapi import undocumented
from .rate_limits import unlimited
from .routes import Access, access

# The label of every request no route matched: its raw path would make one series per path.
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CACHE_RESULTS = ("hit", "miss", "error")


class Metrics:
    """The app's metrics, in its own registry or, across processes, in the shared folder."""

    def __init__(self, folder: Path | None) -> None:
        """Create the metrics; with a folder, prometheus_client writes them there."""
        self.folder = folder
        self.registry = registry = None if folder else CollectorRegistry()
        labels = ("route", "method", "status")
        self.requests = Counter("http_requests", "Requests answered.", labels, registry=registry)
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to answer.", labels, registry=registry
        )
        self.cache = Counter(
            "cache_lookups", "Cache reads, by result.", ("result",), registry=registry
        )
        for result in CACHE_RESULTS:  # each exported from the start, at 0 until it happens
            self.cache.labels(result)


class WorkersFiles:
    """The workers' metrics in the shared folder, summed by prometheus-client's multiprocess merge.

    A starting worker creates its file empty and sizes it a moment later; prometheus-client's
    reader fails on the empty file (prometheus/client_python#1199), so a scrape meeting a worker
    start (after ``max_requests`` or a crash) would answer 500. An empty file holds no counts yet
    and is passed over. Go back to ``MultiProcessCollector`` once a release reads it as empty.
    """

    def __init__(self, folder: Path) -> None:
        """Read the metric files of ``folder``."""
        self.folder = folder

    def collect(self) -> Iterable[Metric]:
        """Return every metric, summed over the files that hold any."""
        files = [str(path) for path in self.folder.glob("*.db") if _holds_data(path)]
        metrics: Iterable[Metric] = multiprocess.MultiProcessCollector.merge(files)
        return metrics


def _holds_data(path: Path) -> bool:
    """Say whether a metric file has been sized (a dead worker's live gauge may be gone)."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def count_cache_lookup(result: str, app: Flask | None = None) -> None:
    """Count one cache read as ``hit``, ``miss`` or ``error`` (in ``app``, or the current app)."""
    metrics = (app or current_app).extensions.get("metrics")
    if metrics is not None:
        metrics.cache.labels(result).inc()


def _start_clock() -> None:
    """Note when the request arrived."""
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    """Count the answered request by route template (never its raw path), method, status."""
    route = request.url_rule.rule if request.url_rule else UNMATCHED
    method = request.method if request.method in METHODS else "<other>"
    labels = (route, method, str(response.status_code))
    metrics = current_app.extensions["metrics"]
    metrics.requests.labels(*labels).inc()
    started = g.get("metrics_started", time.perf_counter())  # unset if a hook answered first
    metrics.latency.labels(*labels).observe(time.perf_counter() - started)
    return response


@access(Access.ANYONE)
@undocumented  # the scrapers' route, on the app's own port
@unlimited
def _expose() -> Response:
    """Answer the metrics for a scraper, summed over the processes sharing the folder."""
    metrics = current_app.extensions["metrics"]
    registry = metrics.registry
    if registry is None:
        registry = CollectorRegistry()
        registry.register(WorkersFiles(metrics.folder))
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def init_app(app: Flask) -> None:
    """Count requests and serve /metrics, unless METRICS_ENABLED is false."""
    settings = app.extensions["settings"]
    if not settings.metrics_enabled:
        return
    app.extensions["metrics"] = Metrics(settings.prometheus_multiproc_dir)
    app.before_request(_start_clock)
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", _expose)
