"""Measure the example background task: worker throughput and enqueue-to-done latency.

The worker runs with the command compose gives it (compose.yaml's worker service); items are
created through the generated web's API, which enqueues their task, as in production. Times come
from the items themselves: ``created_at`` is set by the web just before it commits and enqueues,
``processed_at`` by the task, both from this machine's clock.
"""

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import project_files
import psycopg
from tier2.servers import compose_command, stop_pid

POST_THREADS = 8  # concurrent clients creating items
POLL_S = 0.2  # how often the database is asked whether the items are done
SHARES = {0.25: "a quarter of the drain rate", 0.5: "half the drain rate"}  # the paced loads


def worker_command(project: Path) -> list[str]:
    """Return compose.yaml's worker command, run by this Python (``python -m celery ...``)."""
    model = project_files.compose_model(project)
    (service,) = project_files.running(model, "worker").values()
    argv = compose_command(service)
    if argv[0] != "celery":
        raise RuntimeError(f"the worker's command does not start with celery: {argv}")
    return [sys.executable, "-m", "celery", *argv[1:]]


class Worker:
    """The Celery worker process, started and stopped around each measurement."""

    def __init__(self, command: list[str], cwd: Path, env: dict, log: Path):
        """Describe the worker; ``start`` runs it."""
        self.command, self.cwd, self.env, self.log = command, cwd, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the worker, its output appended to its log."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        """Stop the worker with SIGTERM (a warm shutdown), SIGKILL past the harness's timeout."""
        if self.proc is not None and self.proc.poll() is None:
            stop_pid(self.proc)


def post_item(base: str) -> int:
    """Create one item through the API; return its id."""
    body = json.dumps({"name": "bench-task", "description": "x" * 50}).encode()
    request = urllib.request.Request(
        base + "/api/items", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["id"]


def post_burst(base: str, count: int) -> list[int]:
    """Create ``count`` items as fast as a few concurrent clients can; return their ids."""
    with ThreadPoolExecutor(POST_THREADS) as pool:
        return list(pool.map(lambda _: post_item(base), range(count)))


def post_paced(base: str, count: int, rate: float) -> list[int]:
    """Create ``count`` items at ``rate`` per second (open loop: each at its own time)."""
    start = time.monotonic() + 0.1

    def at_slot(index: int) -> int:
        time.sleep(max(0.0, start + index / rate - time.monotonic()))
        return post_item(base)

    with ThreadPoolExecutor(POST_THREADS) as pool:
        return list(pool.map(at_slot, range(count)))


def wait_processed(dsn: str, ids: list[int], deadline_s: float) -> list[tuple]:
    """Wait until every item is processed; return their (created_at, processed_at)."""
    end = time.monotonic() + deadline_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT created_at, processed_at FROM items WHERE id = ANY(%s) "
                "AND status = 'processed'",
                (ids,),
            ).fetchall()
            if len(rows) == len(ids):
                return rows
            if time.monotonic() > end:
                raise TimeoutError(f"{len(ids) - len(rows)} of {len(ids)} items still pending")
            time.sleep(POLL_S)


def per_second(times: list) -> float:
    """Return events per second between the first and the last of ``times``."""
    ordered = sorted(times)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0]).total_seconds()


def latencies_ms(rows: list[tuple]) -> list[float]:
    """Return each item's enqueue-to-done time in milliseconds."""
    return [(processed - created).total_seconds() * 1000 for created, processed in rows]


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def latency_summary(values: list[float]) -> dict:
    """Return the count, p50 and p99 of latencies."""
    return {
        "count": len(values),
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
    }


def measure(worker: Worker, base: str, dsn: str, burst: int, paced: int, rounds: int) -> dict:
    """Drain a backlog, then pace items at a quarter and at half the drain rate, per round."""
    rates, targets, loads = [], [], [os.getloadavg()[0]]
    phases = {share: {"latencies": [], "created": [], "done": []} for share in SHARES}
    for _ in range(rounds):
        ids = post_burst(base, burst)  # the worker is stopped: every task waits in the queue
        worker.start()
        rows = wait_processed(dsn, ids, 60 + burst / 5)
        rates.append(per_second([processed for _, processed in rows]))
        targets.append(statistics.median(rates))
        for share, phase in phases.items():
            ids = post_paced(base, paced, targets[-1] * share)
            rows = wait_processed(dsn, ids, 60 + paced / 5)
            phase["latencies"] += latencies_ms(rows)
            phase["created"].append(per_second([created for created, _ in rows]))
            phase["done"].append(per_second([processed for _, processed in rows]))
        worker.stop()
        loads.append(os.getloadavg()[0])
    return {
        "rates": rates,
        "rate": statistics.median(rates),
        "burst": burst,
        "loads": loads,  # the machine's 1-minute load average, at the start and after each round
        "latency": {
            f"{statistics.median(targets) * share:.0f}/s ({SHARES[share]})": {
                **latency_summary(phase["latencies"]),
                "created": statistics.median(phase["created"]),
                "done": statistics.median(phase["done"]),
            }
            for share, phase in phases.items()
        },
    }
