"""Prometheus metrics at /metrics: requests by route template, their latency, cache lookups.

Several server processes each count their own requests. With PROMETHEUS_MULTIPROC_DIR set before
prometheus_client is first imported (by the server: metrics_folder.py), they write their values
into files of that folder, which every /metrics answer sums up. Without it (the tests,
``flask run``: one process) each app counts in its own registry.
"""

import os
import time

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from .metrics_folder import FOLDER_VARIABLE

# The label of every request no route matched: its raw path would make one series per path.
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CACHE_RESULTS = ("hit", "miss", "error")


class Metrics:
    """The app's metrics, in its own registry or, across processes, in the shared folder."""

    def __init__(self, folder: str | None) -> None:
        """Create the metrics; with a folder, prometheus_client writes them there."""
        self.folder = folder
        self.registry = None if folder else CollectorRegistry()
        labels = ("route", "method", "status")
        self.requests = Counter(
            "http_requests", "Requests answered.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to answer.", labels, registry=self.registry
        )
        self.cache = Counter(
            "cache_lookups", "Cache reads, by result.", ("result",), registry=self.registry
        )
        for result in CACHE_RESULTS:  # each exported from the start, at 0 until it happens
            self.cache.labels(result)

    def exposition(self) -> bytes:
        """Return every metric in Prometheus' text format, summed over the processes."""
        registry = self.registry
        if registry is None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.folder)
        return generate_latest(registry)


def count_cache_lookup(result: str, app: Flask | None = None) -> None:
    """Count one cache read as ``hit``, ``miss`` or ``error`` (a failed cache: also a miss).

    ``app``: the current app, when the caller holds it already.
    """
    metrics = (app or current_app).extensions.get("metrics")
    if metrics is not None:
        metrics.cache.labels(result).inc()


def _start_clock() -> None:
    """Note when the request arrived."""
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    """Count the answered request by route template (never its raw path), method, status."""
    rule = request.url_rule
    route = rule.rule if rule else UNMATCHED
    method = request.method if request.method in METHODS else "<other>"
    labels = (route, method, str(response.status_code))
    started = g.get("metrics_started", time.perf_counter())
    metrics = current_app.extensions["metrics"]
    metrics.requests.labels(*labels).inc()
    metrics.latency.labels(*labels).observe(time.perf_counter() - started)
    return response


def _expose() -> Response:
    """Answer the metrics for a scraper."""
    body = current_app.extensions["metrics"].exposition()
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def init_app(app: Flask) -> None:
    """Count requests and serve /metrics, unless METRICS_ENABLED is false."""
    if not app.extensions["settings"].metrics_enabled:
        return
    app.extensions["metrics"] = Metrics(os.environ.get(FOLDER_VARIABLE))
    app.before_request(_start_clock)
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", _expose)
