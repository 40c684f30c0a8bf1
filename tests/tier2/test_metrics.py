"""Tier 2: /metrics sums every worker's counts exactly, and nginx does not publish it."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from combinations import params
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from .deployment import TIER2_COMBINATIONS
from .servers import wait_until

TIMEOUT = 10
# Everything selected (granian, which serves the same folder through its own launcher), the
# defaults (gunicorn), and nothing: the counts must hold with and without PostgreSQL and Redis.
METRICS_COMBINATIONS = (
    "pg-redis-nginx-celery-frontend-https-opentelemetry-auth-granian",
    "pg-redis",
    "bare",
)
ITEM_ROUTE = "/api/items/<id:item_id>"
BATCH = 40
MAX_BATCHES = 10
CLIENTS = 8
PROCESSED_WITHIN = 10  # seconds from POST to an item the worker processed (Celery bakes)
UNUSED_PID = 4194304  # above Linux's highest pid: the file of no running worker


def each_combination(*options: str, without: tuple[str, ...] = ()):
    """Parametrize a test over the chosen combinations that select ``options``, not ``without``."""
    chosen = [combo for combo in TIER2_COMBINATIONS if combo.id in METRICS_COMBINATIONS]
    assert len(chosen) == len(METRICS_COMBINATIONS), "a chosen combination is no longer served"
    chosen = [
        combo
        for combo in chosen
        if all(combo.selected(option) for option in options)
        and not any(combo.selected(option) for option in without)
    ]
    return pytest.mark.parametrize("combo", params(chosen), scope="module")


def scrape(base: str) -> dict[tuple[str, frozenset], float]:
    """Return every sample of base's /metrics, by name and labels."""
    response = requests.get(f"{base}/metrics", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def item_reads(samples: dict) -> float:
    """Return the count of successful GETs of one item."""
    labels = frozenset({"route": ITEM_ROUTE, "method": "GET", "status": "200"}.items())
    return samples.get(("http_requests_total", labels), 0)


def cache_lookups(samples: dict, result: str) -> float:
    """Return the count of cache reads with this result."""
    return samples.get(("cache_lookups_total", frozenset({("result", result)})), 0)


def reads_by_worker(folder: Path) -> dict[int, float]:
    """Return each worker's own count of item reads, from its file in the metrics folder."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in MultiProcessCollector.merge([str(path)])
            for sample in family.samples
        }
        counts[int(path.stem.rsplit("_", 1)[1])] = item_reads(samples)
    return counts


def read_in_parallel(url: str, count: int) -> None:
    """GET url ``count`` times from several clients, each on a new connection; all must be 200."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(
            pool.map(lambda _: requests.get(url, timeout=TIMEOUT).status_code, range(count))
        )
    assert statuses == [200] * count


def processed(url: str) -> bool:
    """Read the item at ``url`` once; say whether it is processed (only then is it cached)."""
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["status"] == "processed"


def new_item(base: str) -> str:
    """Create an item and read it until processed (now cached); return its URL.

    With Celery a new item stays pending until the worker processes it, and a pending item is
    never cached: the reads counted after this one must all find it in the cache.
    """
    created = requests.post(f"{base}/api/items", json={"name": "counted"}, timeout=TIMEOUT)
    url = f"{base}{created.headers['Location']}"
    wait_until(lambda: processed(url), PROCESSED_WITHIN, "the new item processed", interval=0.2)
    return url


def read_until_every_worker_served(service, url: str) -> int:
    """Read url in batches until each worker served some; return how many reads were sent."""
    folder = Path(service.env["PROMETHEUS_MULTIPROC_DIR"])
    before = reads_by_worker(folder)
    sent = 0
    for _ in range(MAX_BATCHES):
        read_in_parallel(url, BATCH)
        sent += BATCH
        served = reads_by_worker(folder)
        if all(served.get(pid, 0) > before.get(pid, 0) for pid in service.workers()):
            return sent
    raise AssertionError(f"after {sent} reads, not every worker served one: {served}")


@each_combination()
def test_requests_spread_over_the_workers_are_each_counted_once(deployment):
    """It reports exactly the N reads sent, summed over both workers that served them."""
    service = deployment.service
    url = new_item(service.url)
    before = scrape(service.url)
    sent = read_until_every_worker_served(service, url)
    # Two workers serve; one recycled meanwhile is replaced, and its counts stay in the sums.
    wait_until(lambda: len(service.workers()) == 2, 15, "both workers running")
    after = scrape(service.url)
    assert item_reads(after) - item_reads(before) == sent
    hits = cache_lookups(after, "hit") - cache_lookups(before, "hit")
    misses = cache_lookups(after, "miss") - cache_lookups(before, "miss")
    assert hits + misses == sent
    if deployment.combo.selected("use_redis"):
        assert misses == 0  # one shared cache: the first read above stored the item for all


@each_combination()
def test_counts_an_earlier_run_left_in_the_folder_are_wiped_at_start(deployment):
    """It empties the metrics folder when gunicorn starts: old counts do not add to new ones."""
    service = deployment.new_service("restarted")
    folder = Path(service.env["PROMETHEUS_MULTIPROC_DIR"])
    labels = ["route", "method", "status"]
    key = mmap_key("http_requests", "http_requests_total", labels, [ITEM_ROUTE, "GET", "200"], "")
    stale = MmapedDict(str(folder / "counter_1.db"))
    stale.write_value(key, 1000.0, 0.0)
    stale.close()
    deployment.extra.append(service)
    service.start()
    assert item_reads(scrape(service.url)) == 0
    assert not (folder / "counter_1.db").exists()


@each_combination()
def test_a_file_a_starting_worker_has_not_sized_yet_adds_nothing(deployment):
    """It answers the same sums, not a 500, while a worker's new file is still empty.

    prometheus-client creates a worker's file before it sizes it, and a worker killed between the
    two leaves it empty for good: a scrape may meet such a file at any worker start.
    """
    service = deployment.service
    new_item(service.url)  # read until processed: at least one read counted
    before = scrape(service.url)
    empty = Path(service.env["PROMETHEUS_MULTIPROC_DIR"]) / f"counter_{UNUSED_PID}.db"
    empty.touch()
    try:
        after = scrape(service.url)
    finally:
        empty.unlink()
    assert item_reads(after) == item_reads(before) > 0


@each_combination()
def test_a_dead_workers_counts_stay_in_the_sums(deployment):
    """It keeps counting the reads a killed worker served, once a new worker replaced it."""
    service = deployment.service
    folder = Path(service.env["PROMETHEUS_MULTIPROC_DIR"])
    read_until_every_worker_served(service, new_item(service.url))
    victim = service.workers()[0]
    assert reads_by_worker(folder)[victim] > 0
    before = item_reads(scrape(service.url))
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: victim not in service.workers() and len(service.workers()) == 2, 15, "a new worker"
    )
    assert item_reads(scrape(service.url)) == before


@each_combination("use_nginx")
def test_nginx_answers_404_for_metrics(deployment):
    """It keeps /metrics off nginx's public server, however the path is spelled."""
    for path in ("/metrics", "/metrics?format=text", "/%6Detrics", "//metrics"):
        response = requests.get(f"{deployment.nginx.url}{path}", timeout=TIMEOUT)
        assert response.status_code == 404, path
        assert response.json()["error"]["status"] == 404
        assert "http_requests_total" not in response.text
    assert requests.get(f"{deployment.service.url}/metrics", timeout=TIMEOUT).status_code == 200
