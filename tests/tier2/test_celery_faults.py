"""Tier 2: no task is lost when the worker is killed, stopped, or loses Redis for a while.

A task is held in the middle of its work by a row lock the test takes in PostgreSQL (the task's
UPDATE waits for it): the worker can then be signalled while the task provably runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
import requests
from combinations import SERVED, params

from . import celery_processes as celery
from .deployment import Deployment
from .servers import Service, wait_until

# The first served combination with Celery and PostgreSQL (the test holds a row lock in it).
FAULT_COMBINATIONS = [
    next(c for c in SERVED if c.selected("use_celery") and c.selected("use_postgres"))
]
TIMEOUT = 10
# Short enough to wait for in a test: a task of a killed worker is given out again after
# CELERY_VISIBILITY_TIMEOUT, which must exceed CELERY_TASK_TIME_LIMIT (its soft limit is 5 s less).
WORKER_ENV = {
    "CELERY_TASK_TIME_LIMIT": "20",
    "CELERY_VISIBILITY_TIMEOUT": "21",
    "CELERY_WORKER_CONCURRENCY": "1",
}
BLOCKED_WITHIN = 60  # seconds from the worker's start to its task waiting for the lock
REDELIVERED_WITHIN = 90  # the visibility timeout, the sweep that finds the task, and a margin
PROCESSED_WITHIN = 30
STOPPED_WITHIN = 30
STILL_RUNNING_FOR = 2  # seconds a warm shutdown must wait for the task held by the lock

OWN_CELERY_PROCESSES = True  # each test starts (and kills) the worker it needs
pytestmark = pytest.mark.parametrize("combo", params(FAULT_COMBINATIONS), scope="module")


@pytest.fixture
def workers(deployment: Deployment) -> Iterator[list[Service]]:
    """Collect the workers a test starts; kill what is left of them afterwards."""
    started: list[Service] = []
    yield started
    for worker in started:
        if worker.process is not None and worker.process.poll() is None:
            celery.stop(worker)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)  # its pool's children, if any remain


def post_item(deployment: Deployment, name: str) -> tuple[int, str]:
    """Create an item through the web; return its id and URL."""
    created = requests.post(f"{deployment.entry}/api/items", json={"name": name}, timeout=TIMEOUT)
    assert (created.status_code, created.json()["status"]) == (201, "pending"), created.text
    return created.json()["id"], deployment.entry + created.headers["Location"]


def item(location: str) -> dict:
    """Return the item as the API serves it."""
    return requests.get(location, timeout=TIMEOUT).json()


@contextlib.contextmanager
def row_locked(deployment: Deployment, item_id: int) -> Iterator[None]:
    """Hold a lock on the item's row: the task's UPDATE waits until the block ends."""
    with deployment.postgres.connect(deployment.database) as connection:
        with connection.transaction():
            connection.execute("SELECT id FROM items WHERE id = %s FOR UPDATE", (item_id,))
            yield


def task_blocked(deployment: Deployment) -> bool:
    """Say whether a task's UPDATE of an item waits for a lock right now."""
    return bool(
        deployment.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND starts_with(query, 'UPDATE items')"
        )
    )


def unacknowledged(deployment: Deployment) -> int:
    """Count the tasks Redis holds as delivered but not acknowledged."""
    return deployment.redis.client(deployment.redis_db).hlen("unacked")


def blocked_worker(deployment: Deployment, workers: list[Service]) -> Service:
    """Start a worker and wait until its task waits for the row lock (it is mid-task)."""
    worker = celery.launch(deployment, "worker", **WORKER_ENV)
    workers.append(worker)
    wait_until(lambda: task_blocked(deployment), BLOCKED_WITHIN, f"the task\n{worker.output()}")
    return worker


def processed_within(location: str, seconds: float, worker: Service) -> dict:
    """Wait until the item is processed; return it."""
    wait_until(
        lambda: item(location)["status"] == "processed",
        seconds,
        f"the item processed\n{worker.output()}",
        interval=0.2,
    )
    return item(location)


def messages(worker: Service, item_id: int) -> list[str]:
    """Return the messages the worker logged about one item."""
    return [record["message"] for record in celery.task_lines(worker, item_id)]


def test_a_killed_workers_task_is_delivered_again_and_applied_once(deployment, workers):
    """It gives a SIGKILLed worker's task to the next worker, which applies it exactly once."""
    item_id, location = post_item(deployment, "killed")
    with row_locked(deployment, item_id):
        killed = blocked_worker(deployment, workers)
        os.killpg(killed.process.pid, signal.SIGKILL)  # the container dies: all its processes
        killed.process.wait(timeout=STOPPED_WITHIN)
        assert unacknowledged(deployment) == 1  # Redis still holds the task
    assert item(location)["status"] == "pending"  # the killed run committed nothing
    worker = celery.launch(deployment, "worker", **WORKER_ENV)
    workers.append(worker)
    done = processed_within(location, REDELIVERED_WITHIN, worker)
    wait_until(lambda: unacknowledged(deployment) == 0, TIMEOUT, "the task acknowledged")
    # A copy of the task, delivered once more, changes nothing.
    sent = celery.call(worker, f"{deployment.package}.items.tasks.process_item", item_id)
    assert sent.returncode == 0, sent.stderr
    wait_until(
        lambda: "item not pending" in messages(worker, item_id),
        PROCESSED_WITHIN,
        f"the copy run\n{worker.output()}",
    )
    assert messages(worker, item_id) == ["item processed", "item not pending"]
    assert item(location)["processed_at"] == done["processed_at"]


def test_sigterm_lets_the_running_task_finish_before_the_worker_exits(deployment, workers):
    """It keeps a SIGTERMed worker running until its task is done, then exits cleanly."""
    item_id, location = post_item(deployment, "stopping")
    with row_locked(deployment, item_id):
        worker = blocked_worker(deployment, workers)
        worker.process.send_signal(signal.SIGTERM)
        time.sleep(STILL_RUNNING_FOR)  # the task cannot end while the lock is held
        assert worker.process.poll() is None, worker.output()
    assert worker.process.wait(timeout=STOPPED_WITHIN) == 0, worker.output()
    assert item(location)["status"] == "processed"
    # Celery's SIGTERM handler prints its one plain line to STDOUT (not through logging).
    plain = [line for line in worker.lines() if not line.startswith("{")]
    assert plain == ["", "worker: Warm shutdown (MainProcess)"], plain
    done = [json.loads(line) for line in worker.lines() if line.startswith("{")]
    assert [r["message"] for r in done if r.get("item_id") == item_id] == ["item processed"]
    assert unacknowledged(deployment) == 0


def test_the_worker_reconnects_after_redis_restarts(deployment, workers):
    """It answers its health check again and processes new items once Redis is back."""
    worker = celery.start(deployment, "worker", **WORKER_ENV)
    workers.append(worker)
    deployment.redis.stop()
    deployment.redis.start()
    celery.await_healthy(deployment, worker, "worker")
    item_id, location = post_item(deployment, "after restart")
    processed_within(location, PROCESSED_WITHIN, worker)
    assert messages(worker, item_id) == ["item processed"]
