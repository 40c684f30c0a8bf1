"""/metrics counts requests by route template and cache lookups, and can be off."""

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.platform import metrics
from {{ cookiecutter.package_name }}.settings import Settings, SettingsError, load_settings

ITEM_ROUTE = "/api/items/<id:item_id>"


@pytest.fixture
def app(make_app):
    """Return an app of the test's own: the tests count what it served since it started."""
    return make_app()


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


def test_requests_are_counted_by_route_template_method_and_status(writer):
    """It labels requests with the route template, never the id in their path."""
    item = writer.post("/api/items", json={"name": "counted"}).json
    writer.get(f"/api/items/{item['id']}")
    writer.get("/api/items/999999")
    samples = scrape(writer)
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


def test_cache_lookups_count_misses_and_hits(writer, shared_cache):
    """It counts the first read of an item as a miss and the next, served cached, as a hit.

    Every result is exported from the start, at 0 until it happens (an alert on errors has a
    series to watch before the first one)."""
    item = writer.post("/api/items", json={"name": "cached"}).json
    assert writer.get(f"/api/items/{item['id']}").headers["X-Cache"] == "miss"
    assert writer.get(f"/api/items/{item['id']}").headers["X-Cache"] == "hit"
    samples = scrape(writer)
    assert samples[("cache_lookups_total", frozenset({("result", "miss")}))] == 1
    assert samples[("cache_lookups_total", frozenset({("result", "hit")}))] == 1
    assert samples[("cache_lookups_total", frozenset({("result", "error")}))] == 0


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
        load_settings(Settings, {"app_env": "test", "prometheus_multiproc_dir": folder})


def test_a_file_a_starting_worker_has_not_sized_yet_is_passed_over(tmp_path):
    """It sums nothing from a worker's file still empty, where prometheus-client's reader fails."""
    (tmp_path / "counter_1.db").touch()
    assert list(metrics.WorkersFiles(tmp_path).collect()) == []
