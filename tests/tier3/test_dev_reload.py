"""The development stack (`make up-dev`, compose.dev.yaml with `--watch`) reloads Celery."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path

import project_files
import pytest

from .images import build_image
from .matrix import TIER3, docker_params
from .project import stand_in_kind
from .stack import Stack, await_processed, create_item, open_stack, wait_ready
from .test_dev_assets import prepare_static

DEV_FILES = ("compose.yaml", "compose.dev.yaml")
UP_TIMEOUT = 300  # seconds for `up --watch` to start the stack and its watcher
RESTART_TIMEOUT = 90  # seconds for the watcher to restart the services after a change
# The example task's log message, which the test changes.
TASK_LINE = '"item processed" if changed'


def _celery_combination() -> list:
    """Return one served Celery combination whose development web honours PORT (gunicorn)."""
    combos = [c for c in TIER3 if c.selected("use_celery") and c.value("app_server") == "gunicorn"]
    return docker_params(combos[:1])


def _wait_for(what: str, check, timeout: float, watch: subprocess.Popen, log: Path) -> None:
    """Poll ``check()`` until true while `up --watch` runs; fail with its output otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and watch.poll() is None:
        if check():
            return
        time.sleep(0.5)
    output = log.read_text(errors="replace")[-6000:]
    status = f"exited {watch.returncode}" if watch.returncode is not None else "still runs"
    raise AssertionError(f"not {what} in {timeout} s; `up --watch` {status}, said:\n{output}")


def _healthy(stack: Stack, services: list[str]) -> bool:
    """Say whether each service's container runs and is healthy."""
    states = {entry["Service"]: entry for entry in stack.containers()}
    return all(
        states.get(name, {}).get("State") == "running" and states[name].get("Health") == "healthy"
        for name in services
    )


def _started_at(stack: Stack, service: str) -> str:
    """Return when a service's container last started (docker's timestamp)."""
    return stack.container_state(service)["StartedAt"]


@pytest.fixture
def dev_stack(combo, engine, standins, app_image, tmp_path):
    """Run a copy of a bake's development stack with `up --watch` on the host network."""
    build = app_image(combo)
    project = shutil.copytree(build.context, tmp_path / "project")  # the test edits its code
    if combo.selected("use_frontend"):  # the assets service's esbuild writes there
        prepare_static(project)
    stack = open_stack(engine, project, f"fst3-dev-{combo.id}", tmp_path, DEV_FILES)
    for name, service in stack.config["services"].items():
        # A service naming no image runs compose's default name, from the project name `-p` gives.
        image = stack.config["services"][name].get("image") or f"{stack.name}-{name}"
        if name in project_files.stage_services(stack.config):  # the Node stage, nginx's, Caddy's
            build_image(engine, project, image, target=service["build"]["target"])
        elif "build" in service:
            engine.docker("tag", build.tag, image)
        else:
            standins.service(stand_in_kind(image), image)
    log = tmp_path / "up-watch.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            # `make up-dev` adds --build; the image is built already (and this compose would need
            # the buildx plugin to build), so the stack starts from it.
            [engine.cli, *stack.compose_args("up", "--watch")],
            cwd=project,
            env=engine.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield stack, process, log
    finally:
        # Started without a terminal, `up --watch` ignores SIGTERM and SIGINT alike (its stack
        # still ran a minute after either): it is killed, and `down` stops and removes the stack.
        process.kill()
        process.wait(timeout=30)
        stack.down(volumes=True)


@pytest.mark.parametrize("combo", _celery_combination())
def test_watch_restarts_celery_on_a_code_change(combo, dev_stack, report):
    """It restarts worker and scheduler when a task module changes; the worker runs the new code."""
    stack, process, log = dev_stack
    watched = sorted(name for name, svc in stack.config["services"].items() if svc.get("develop"))
    celery = [
        *project_files.running(stack.config, "worker"),
        *project_files.running(stack.config, "beat"),
    ]
    assert sorted(celery) == watched, f"compose.dev.yaml watches {watched}, Celery runs {celery}"
    started = time.monotonic()
    _wait_for("healthy", lambda: _healthy(stack, watched), UP_TIMEOUT, process, log)
    _wait_for(
        "watching", lambda: "Watch enabled" in log.read_text(errors="replace"), 60, process, log
    )
    report(f"dev stack {combo.id}: up --watch healthy in {time.monotonic() - started:.1f} s")
    before = {name: _started_at(stack, name) for name in watched}

    package = Path(stack.project_dir) / project_files.package_name(stack.project_dir)
    tasks = package / "items" / "tasks.py"
    source = tasks.read_text()
    assert source.count(TASK_LINE) == 1, f"{tasks} no longer holds {TASK_LINE}"
    marker = f"item processed by the changed code {secrets.token_hex(4)}"
    changed = time.monotonic()
    tasks.write_text(source.replace(TASK_LINE, TASK_LINE.replace("item processed", marker)))

    def restarted() -> bool:
        """Say whether every watched service started again since the change."""
        return all(_started_at(stack, name) != before[name] for name in watched)

    _wait_for("restarted", restarted, RESTART_TIMEOUT, process, log)
    report(
        f"dev stack {combo.id}: Celery restarted {time.monotonic() - changed:.1f} s after a change"
    )

    web = stack.ports[project_files.web_service(project_files.compose_model(stack.project_dir))]
    wait_ready(stack, web)
    await_processed(stack, web, create_item(web, f"dev reload {combo.id}"))
    worker_log = stack.compose("logs", "--no-color", *project_files.running(stack.config, "worker"))
    assert marker in worker_log.stdout, f"the worker ran the old code:\n{worker_log.stdout[-4000:]}"
