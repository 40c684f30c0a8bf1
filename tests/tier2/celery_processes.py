"""Celery's processes of a deployment, started with their compose commands: worker and scheduler.

Each runs as the web does (same tree, user and env file, plus the test's overrides). A compose
command's paths under /tmp (the container's tmpfs) point into the process's own folder here.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import uuid
from pathlib import Path

import project_files

from .deployment import Deployment
from .servers import ServerError, Service, compose_command, owned_dir, stop_pid, wait_until

READY_WITHIN = 60  # seconds for a process to answer its health check
PROCESSED_WITHIN = 30  # seconds for the worker to process a new item
CONTAINER_TMP = "/tmp/"  # the container's tmpfs, mapped to a folder of the test's
# The line (logger, words in its message) each process logs once it listens for a ping through
# Redis: a health check run before it only waits out its --timeout (5 s) for no answer.
LISTENING = {
    "worker": ("celery.apps.worker", " ready."),
    "beat": ("celery.beat", "beat pidbox: Connected"),
}


def service_name(deployment: Deployment, subcommand: str) -> str:
    """Return the compose service that runs Celery's ``subcommand`` (worker, beat)."""
    (name,) = project_files.running(deployment.compose, subcommand)
    return name


def native(command: list[str], tmp: Path) -> list[str]:
    """Return a compose command with its /tmp paths moved into ``tmp``."""
    return [
        str(tmp / word.removeprefix(CONTAINER_TMP)) if word.startswith(CONTAINER_TMP) else word
        for word in command
    ]


def healthcheck(deployment: Deployment, process: Service, subcommand: str):
    """Run the compose health check of the service running ``subcommand``, as compose would."""
    service = deployment.compose["services"][service_name(deployment, subcommand)]
    return process.run_once(project_files.healthcheck_argv(service), timeout=30)


def launch(deployment: Deployment, subcommand: str, **env: str) -> Service:
    """Start the service running ``subcommand`` with its compose command; do not wait."""
    name = service_name(deployment, subcommand)
    process = deployment.new_service(f"{name}-{uuid.uuid4().hex[:8]}", **env)
    tmp = owned_dir(process.logs.parent / "tmp")
    command = native(compose_command(deployment.compose["services"][name]), tmp)
    process.recipe = dataclasses.replace(process.recipe, command=command)
    process.launch()
    return process


def listening(process: Service, subcommand: str) -> bool:
    """Say whether the process has logged that it listens for a ping (LISTENING), ever."""
    logger, words = LISTENING[subcommand]
    records = [json.loads(line) for line in process.lines() if line.startswith("{")]
    return any(r.get("logger") == logger and words in r.get("message", "") for r in records)


def await_healthy(deployment: Deployment, process: Service, subcommand: str) -> Service:
    """Wait until the process passes its compose health check; else stop it and fail.

    The check runs once the process has logged that it listens (it may fail then: a Redis
    restarted since, say), not before, when it could only wait out its timeout.
    """

    def healthy() -> bool:
        if process.process.poll() is not None:
            raise ServerError(f"{subcommand} exited with {process.process.returncode}")
        if not listening(process, subcommand):
            return False
        return healthcheck(deployment, process, subcommand).returncode == 0

    try:
        wait_until(healthy, READY_WITHIN, f"the {subcommand} answering its health check", 0.2)
    except ServerError as exc:
        check = healthcheck(deployment, process, subcommand)
        stop(process)
        raise ServerError(f"{exc}\n{check}\n{process.output()}") from None
    return process


def start(deployment: Deployment, subcommand: str, **env: str) -> Service:
    """Start the service running ``subcommand`` and wait until it is healthy."""
    return await_healthy(deployment, launch(deployment, subcommand, **env), subcommand)


def serve(deployment: Deployment) -> None:
    """Run the worker and the scheduler beside the web, as compose does; wait until healthy.

    Both join the deployment's extra processes at once: its ``stop`` ends them, however this ends.
    """
    launched = {subcommand: launch(deployment, subcommand) for subcommand in ("worker", "beat")}
    deployment.extra += launched.values()
    for subcommand, process in launched.items():
        await_healthy(deployment, process, subcommand)


def restart_exited(deployment: Deployment) -> list[str]:
    """Start again each of the deployment's Celery processes that exited; return their names.

    compose's ``restart: unless-stopped`` (and a pod's restart policy) does this for the real
    deployment. Each replacement takes its place among the deployment's extra processes.
    """
    restarted = []
    for subcommand in ("worker", "beat"):
        prefix = service_name(deployment, subcommand) + "-"
        for index, process in enumerate(deployment.extra):
            name = process.logs.parent.name
            if name.startswith(prefix) and process.process.poll() is not None:
                deployment.extra[index] = start(deployment, subcommand)
                restarted.append(f"{name} (exit {process.process.returncode})")
    return restarted


def await_processed(deployment: Deployment, item_id: int) -> None:
    """Wait until an item is processed: by its task with Celery, at once (created so) without."""
    query = "SELECT status FROM items WHERE id = ?"
    wait_until(
        lambda: deployment.query(query, item_id) == [("processed",)],
        PROCESSED_WITHIN,
        f"item {item_id} processed",
        interval=0.2,
    )


def stop(process: Service) -> int | None:
    """Stop a process gracefully (SIGTERM, Celery's warm shutdown); None if it was not running."""
    if process.process is None or process.process.poll() is not None:
        return None if process.process is None else process.process.returncode
    return stop_pid(process.process)


def log_records(process: Service) -> list[dict]:
    """Return the process's log lines, each parsed as JSON (a line that is not fails)."""
    return [json.loads(line) for line in process.lines()]


def task_lines(process: Service, item_id: int) -> list[dict]:
    """Return the process's log lines about one item."""
    return [record for record in log_records(process) if record.get("item_id") == item_id]


def call(process: Service, task: str, *args) -> subprocess.CompletedProcess:
    """Send a task by name with Celery's own command, as an operator would."""
    app = process.recipe.command[:3]  # celery --app <module>:celery_app
    return process.run_once([*app, "call", task, "--args", json.dumps(list(args))], timeout=60)
