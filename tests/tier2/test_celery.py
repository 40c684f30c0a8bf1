"""Tier 2: background tasks served for real: the worker, started with compose's command, runs them.

Tiers 2 and 3 do not serve use_celery pairwise yet (tests/combinations.py NOT_SERVED): these
combinations, one per database, are served here with their worker beside the web service.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import uuid
from collections.abc import Iterator

import project_files
import pytest
import requests
from combinations import combination, params

from .deployment import Deployment
from .servers import ServerError, Service, compose_command, stop_pid, wait_until

CELERY_COMBINATIONS = [
    combination({"use_postgres": "yes", "use_redis": "yes", "use_celery": "yes"}),
    combination({"use_postgres": "no", "use_redis": "yes", "use_celery": "yes"}),
]
TIMEOUT = 10
PROCESSED_WITHIN = 10  # seconds from POST to a processed item, polled
WORKER_READY_WITHIN = 60

pytestmark = pytest.mark.parametrize("combo", params(CELERY_COMBINATIONS), scope="module")


def worker_service(model: dict) -> str:
    """Return the long-running app service that runs a command of its own (the worker)."""
    (name,) = [
        name
        for name, service in project_files.app_services(model).items()
        if not project_files.is_one_shot(service) and service.get("command")
    ]
    return name


def healthcheck(deployment: Deployment, worker: Service) -> subprocess.CompletedProcess:
    """Run the worker service's compose health check as compose would."""
    service = deployment.compose["services"][worker_service(deployment.compose)]
    # The model keeps compose's escape of a literal "$" ("$$"); compose hands the engine "$".
    kind, *test = [word.replace("$$", "$") for word in service["healthcheck"]["test"]]
    argv = ["/bin/sh", "-c", test[0]] if kind == "CMD-SHELL" else test
    return worker.run_once(argv, timeout=30)


@pytest.fixture(scope="module")
def worker(deployment: Deployment) -> Iterator[Service]:
    """Start the worker with its compose command and env, as the web's user; healthy or fail."""
    name = worker_service(deployment.compose)
    service = deployment.new_service(name)
    command = compose_command(deployment.compose["services"][name])
    service.recipe = dataclasses.replace(service.recipe, command=command)
    service.launch()
    try:
        try:
            wait_until(
                lambda: healthcheck(deployment, service).returncode == 0,
                WORKER_READY_WITHIN,
                "the worker answering its health check",
                interval=1,
            )
        except ServerError as exc:
            check = healthcheck(deployment, service)
            raise ServerError(f"{exc}\n{check}\n{service.output()}") from None
        yield service
    finally:
        stop_pid(service.process)


def log_records(service: Service) -> list[dict]:
    """Return the worker's log lines, each parsed as JSON (a line that is not fails)."""
    return [json.loads(line) for line in service.lines()]


def test_a_posted_item_is_processed_by_the_worker(deployment, worker):
    """It answers pending, then the worker marks the item processed within seconds."""
    created = requests.post(f"{deployment.entry}/api/items", json={"name": "job"}, timeout=TIMEOUT)
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["processed_at"]) == ("pending", None)
    location = deployment.entry + created.headers["Location"]
    wait_until(
        lambda: requests.get(location, timeout=TIMEOUT).json()["status"] == "processed",
        PROCESSED_WITHIN,
        f"the item processed\n{worker.output()}",
        interval=0.1,
    )
    item = requests.get(location, timeout=TIMEOUT).json()
    assert item["processed_at"] >= item["created_at"]
    assert requests.get(location, timeout=TIMEOUT).headers["X-Cache"] == "hit"


def test_the_request_id_reaches_the_workers_log_line(deployment, worker):
    """It logs only JSON lines in the worker, the task's with the request id of the POST."""
    request_id = f"celery-{uuid.uuid4().hex}"
    created = requests.post(
        f"{deployment.entry}/api/items",
        json={"name": "traced"},
        headers={"X-Request-ID": request_id},
        timeout=TIMEOUT,
    )
    item_id = created.json()["id"]
    wait_until(
        lambda: [
            r
            for r in log_records(worker)
            if r.get("item_id") == item_id and r["message"] == "item processed"
        ],
        PROCESSED_WITHIN,
        "the worker's log line of the task",
    )
    (line,) = [r for r in log_records(worker) if r.get("item_id") == item_id]
    assert line["request_id"] == request_id
    assert line["logger"].endswith(".tasks") and line["level"] == "INFO"


def test_the_health_check_fails_once_the_worker_is_gone(deployment, worker):
    """It passes while the worker answers and fails after it stopped; the web stays ready."""
    assert healthcheck(deployment, worker).returncode == 0
    stop_pid(worker.process)
    assert healthcheck(deployment, worker).returncode != 0
    ready = requests.get(f"{deployment.entry}/readyz", timeout=TIMEOUT)
    assert (ready.status_code, ready.json()["status"]) == (200, "ok"), ready.text
    created = requests.post(f"{deployment.entry}/api/items", json={"name": "x"}, timeout=TIMEOUT)
    assert (created.status_code, created.json()["status"]) == (201, "pending")
