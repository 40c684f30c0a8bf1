"""/metrics counts requests by route template, watches the pool and the cache, and can be off."""

import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }} import metrics
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

ITEM_ROUTE = "/api/items/<id:item_id>"


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Return every sample /metrics answers, by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    families = text_string_to_metric_families(response.get_data(as_text=True))
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }


def requests_of(samples: dict, **labels: str) -> float:
    """Return the request count of the series with exactly these labels (0 when absent)."""
    return samples.get(("http_requests_total", frozenset(labels.items())), 0)


def label_values(samples: dict, label: str) -> set[str]:
    """Return every value a label takes in the request counts."""
    return {dict(labels)[label] for name, labels in samples if name == "http_requests_total"}


def test_requests_are_counted_by_route_template_method_and_status(client):
    """It labels requests with the route template, never the id in their path."""
    item = client.post("/api/items", json={"name": "counted"}).json
    client.get(f"/api/items/{item['id']}")
    client.get("/api/items/999999")
    samples = scrape(client)
    assert requests_of(samples, route="/api/items", method="POST", status="201") == 1
    assert requests_of(samples, route=ITEM_ROUTE, method="GET", status="200") == 1
    assert requests_of(samples, route=ITEM_ROUTE, method="GET", status="404") == 1
    assert label_values(samples, "route") == {"/api/items", ITEM_ROUTE}


def test_unknown_paths_and_methods_add_no_label_values(client):
    """It counts every unmatched path under one label, and unknown methods as <other>."""
    paths = [f"/{uuid.uuid4().hex}" for _ in range(3)]
    for path in paths:
        assert client.get(path).status_code == 404
    client.open("/api/items", method="BREW")
    samples = scrape(client)
    assert requests_of(samples, route=metrics.UNMATCHED, method="GET", status="404") == 3
    assert requests_of(samples, route=metrics.UNMATCHED, method="<other>", status="405") == 1
    assert label_values(samples, "route") == {metrics.UNMATCHED}
    assert label_values(samples, "method") == {"GET", "<other>"}


def test_latency_is_a_histogram_per_route(client):
    """It observes each request's duration in buckets, with its count and sum."""
    client.get("/healthz")
    samples = scrape(client)
    labels = {"route": "/healthz", "method": "GET", "status": "200"}
    count = ("http_request_duration_seconds_count", frozenset(labels.items()))
    assert samples[count] == 1
    every = ("http_request_duration_seconds_bucket", frozenset({**labels, "le": "+Inf"}.items()))
    assert samples[every] == 1
    assert samples[("http_request_duration_seconds_sum", frozenset(labels.items()))] > 0


def test_cache_lookups_count_misses_and_hits(client):
    """It counts the first read of an item as a miss and the next, served cached, as a hit.

    Every result is exported from the start, at 0 until it happens (an alert on errors has a
    series to watch before the first one)."""
    item = client.post("/api/items", json={"name": "cached"}).json
    assert client.get(f"/api/items/{item['id']}").headers["X-Cache"] == "miss"
    assert client.get(f"/api/items/{item['id']}").headers["X-Cache"] == "hit"
    samples = scrape(client)
    assert samples[("cache_lookups_total", frozenset({("result", "miss")}))] == 1
    assert samples[("cache_lookups_total", frozenset({("result", "hit")}))] == 1
    assert samples[("cache_lookups_total", frozenset({("result", "error")}))] == 0


IN_USE = ("db_pool_connections", frozenset({("state", "in_use")}))
IDLE = ("db_pool_connections", frozenset({("state", "idle")}))


def test_pool_gauges_show_connections_in_use_and_idle(client):
    """It reports no pooled connection in use between requests, and the idle ones kept."""
    client.get("/api/items")
    samples = scrape(client)
    assert samples[IN_USE] == 0
    assert samples[IDLE] >= 1


def in_use_once_sampled(client, expected: int) -> float:
    """Scrape until the in-use gauge shows ``expected``, for at most ten samples; return it."""
    deadline = time.monotonic() + 10 * metrics.SAMPLE_SECONDS
    while scrape(client)[IN_USE] != expected and time.monotonic() < deadline:
        time.sleep(metrics.SAMPLE_SECONDS / 10)
    return scrape(client)[IN_USE]


def test_pool_gauges_show_a_held_connection_within_a_sample(app, client):
    """It reports a connection held outside any request as in use, once sampled, then none."""
    with app.app_context():
        held = db.engine.raw_connection()
        try:
            assert in_use_once_sampled(client, 1) == 1
        finally:
            held.close()
    assert scrape(client)[IN_USE] == 0  # written as it came back, not at the next sample


def test_pool_gauges_follow_the_pool_that_replaced_a_disposed_one(app, client):
    """It watches the engine's new pool after the old one is disposed of (as a forked worker
    disposes of the pool it inherited)."""
    with app.app_context():
        db.engine.dispose()  # a new pool, the listeners carried over (the old one's closed)
        held = db.engine.raw_connection()
        try:
            assert in_use_once_sampled(client, 1) == 1
        finally:
            held.close()
    assert scrape(client)[IN_USE] == 0


def test_pool_gauges_are_not_written_at_every_checkout(app, client, monkeypatch):
    """It keeps requests from writing the shared gauges: the pool is sampled instead."""
    writes = []
    for state in ("in_use", "idle"):
        gauge = app.extensions["metrics"].pool.labels(state)
        monkeypatch.setattr(gauge, "set", lambda value, _set=gauge.set: writes.append(_set(value)))
    started = time.monotonic()
    for _ in range(20):
        assert client.get("/api/items").status_code == 200
    samples = 1 + (time.monotonic() - started) // metrics.SAMPLE_SECONDS  # that could fall in
    assert len(writes) <= 4 * samples  # each: both gauges, then both again as the pool rests


def test_metrics_can_be_turned_off(make_app):
    """It serves no /metrics with METRICS_ENABLED=false."""
    client = make_app(metrics_enabled=False).test_client()
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_an_unusable_metrics_folder_stops_start_up(tmp_path, kind):
    """It refuses a PROMETHEUS_MULTIPROC_DIR that is not an existing folder, naming it."""
    folder = tmp_path / "metrics"
    if kind == "a file":
        folder.write_text("")
    with pytest.raises(SettingsError, match="PROMETHEUS_MULTIPROC_DIR"):
        load_settings({"app_env": "test", "prometheus_multiproc_dir": folder})
