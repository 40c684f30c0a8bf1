"""Tier 2: background tasks served for real: worker and scheduler, started with compose's commands.

The first served combination with Celery of each database (with PostgreSQL, and without), its
worker and scheduler started here by each test beside the web service.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from combinations import SERVED, params

from . import celery_processes as celery
from .deployment import Deployment
from .servers import Service, free_port, stop_pid, wait_until

CELERY_COMBINATIONS = [
    next(c for c in SERVED if c.selected("use_celery") and c.value("use_postgres") == database)
    for database in ("yes", "no")
]
TIMEOUT = 10
PROCESSED_WITHIN = 10  # seconds from POST to a processed item, polled
REQUEUED_WITHIN = 60  # seconds from the scheduler's start to a re-queued item processed
# The worker re-queues items pending longer than this when the scheduler asks (default: 300 s).
REQUEUE_AFTER = "1"

OWN_CELERY_PROCESSES = True  # each test starts (and kills) the worker it needs
pytestmark = pytest.mark.parametrize("combo", params(CELERY_COMBINATIONS), scope="module")


@pytest.fixture(scope="module")
def worker(deployment: Deployment) -> Iterator[Service]:
    """Start the worker with its compose command and env, as the web's user; healthy or fail."""
    service = celery.start(deployment, "worker", CELERY_REQUEUE_AFTER=REQUEUE_AFTER)
    try:
        yield service
    finally:
        celery.stop(service)


def post_traced(base_url: str, name: str) -> tuple[str, requests.Response]:
    """Create an item with a request id of the test's; return the id and the answer."""
    request_id = f"celery-{uuid.uuid4().hex}"
    created = requests.post(
        f"{base_url}/api/items",
        json={"name": name},
        headers={"X-Request-ID": request_id},
        timeout=TIMEOUT,
    )
    return request_id, created


def processed(location: str) -> bool:
    """Say whether the item at ``location`` is processed."""
    return requests.get(location, timeout=TIMEOUT).json()["status"] == "processed"


def test_a_posted_item_is_processed_by_the_worker(deployment, worker):
    """It answers pending, then the worker marks the item processed within seconds."""
    created = requests.post(f"{deployment.entry}/api/items", json={"name": "job"}, timeout=TIMEOUT)
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["processed_at"]) == ("pending", None)
    location = deployment.entry + created.headers["Location"]
    wait_until(
        lambda: processed(location),
        PROCESSED_WITHIN,
        f"the item processed\n{worker.output()}",
        interval=0.1,
    )
    item = requests.get(location, timeout=TIMEOUT).json()
    assert item["processed_at"] >= item["created_at"]
    assert requests.get(location, timeout=TIMEOUT).headers["X-Cache"] == "hit"


def test_the_request_id_reaches_the_workers_log_line(deployment, worker):
    """It logs only JSON lines in the worker, the task's with the request id of the POST."""
    request_id, created = post_traced(deployment.entry, "traced")
    item_id = created.json()["id"]
    wait_until(
        lambda: [
            r
            for r in celery.log_records(worker)
            if r.get("item_id") == item_id and r["message"] == "item processed"
        ],
        PROCESSED_WITHIN,
        "the worker's log line of the task",
    )
    (line,) = celery.task_lines(worker, item_id)
    assert line["request_id"] == request_id
    assert line["logger"].endswith(".tasks") and line["level"] == "INFO"


def test_the_scheduler_requeues_an_item_whose_send_failed(deployment, worker):
    """It processes an item created while the broker was unreachable, under a fresh request id.

    A second web instance points at a closed port for Redis: its POST answers 201 pending and
    enqueues nothing. The scheduler, started with compose's command, has the worker re-queue it.
    """
    offline = deployment.extra_service(
        "offline-web", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    request_id, created = post_traced(offline.url, "stranded")
    assert (created.status_code, created.json()["status"]) == (201, "pending"), created.text
    assert any("not enqueued" in line for line in offline.lines())
    item_id, location = created.json()["id"], deployment.entry + created.headers["Location"]
    time.sleep(2)  # the worker runs, yet nothing processes the item until the scheduler does
    assert not processed(location)
    scheduler = celery.start(deployment, "beat", CELERY_REQUEUE_INTERVAL="1")
    try:
        wait_until(
            lambda: processed(location),
            REQUEUED_WITHIN,
            f"the item re-queued and processed\n{scheduler.output()}\n{worker.output()}",
            interval=0.2,
        )
        assert celery.log_records(scheduler)  # every line JSON, the schedule's sends among them
        assert celery.healthcheck(deployment, scheduler, "beat").returncode == 0
    finally:
        celery.stop(scheduler)
    # Processed once. The next run may send the item again if it is still pending then (a slow
    # worker): that task finds it done and says "item not pending".
    lines = celery.task_lines(worker, item_id)
    (line,) = [ln for ln in lines if ln["message"] == "item processed"]
    assert {ln["message"] for ln in lines} <= {"item processed", "item not pending"}, lines
    runs = [r for r in celery.log_records(worker) if r["message"] == "pending items re-queued"]
    assert line["request_id"] != request_id
    assert line["request_id"] in {run["request_id"] for run in runs if run["count"]}
    assert celery.healthcheck(deployment, scheduler, "beat").returncode != 0


def test_the_health_check_fails_once_the_worker_is_gone(deployment, worker):
    """It passes while the worker answers and fails after it stopped; the web stays ready.

    /readyz shows the backlog: the task of an item posted then waits in the queue.
    """
    assert celery.healthcheck(deployment, worker, "worker").returncode == 0
    stop_pid(worker.process)
    assert celery.healthcheck(deployment, worker, "worker").returncode != 0
    ready = requests.get(f"{deployment.entry}/readyz", timeout=TIMEOUT)
    assert (ready.status_code, ready.json()["status"]) == (200, "ok"), ready.text
    assert ready.json()["checks"]["task_queue"]["length"] == 0
    created = requests.post(f"{deployment.entry}/api/items", json={"name": "x"}, timeout=TIMEOUT)
    assert (created.status_code, created.json()["status"]) == (201, "pending")
    # The backlog shows: the task waits in the queue, and the web stays ready.
    ready = requests.get(f"{deployment.entry}/readyz", timeout=TIMEOUT)
    assert (ready.status_code, ready.json()["status"]) == (200, "ok"), ready.text
    assert ready.json()["checks"]["task_queue"]["length"] == 1
