"""Liveness (the process answers) and readiness (the hard dependencies answer, in time).

Readiness answers within HEALTH_CHECK_TIMEOUT whatever the checks do: each runs in a daemon
thread, and a check that hangs is reported, left to finish, and not started again by later
probes until it has. Hard dependencies (the database, and its schema) decide the status
code; soft ones (the app serves without them, degraded) show as "degraded" in the body, still 200.
A check may return facts for the body (the task queue's length, say).
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from flask import Blueprint, Flask, current_app, jsonify

from . import {% if cookiecutter.use_celery == "yes" %}celery_app, {% endif %}database{% if cookiecutter.use_redis == "yes" %}, redis_settings{% endif %}{% if cookiecutter.use_postgres == "yes" %}, schema_migrations{% endif %}
from .database_errors import DatabaseUnavailable

bp = Blueprint("health", __name__)
# A check raises when its dependency fails; it may return facts for the body.
Check = Callable[[], dict | None]
log = logging.getLogger(__name__)
_STARTING = threading.Lock()
THREAD_PREFIX = "readiness-"  # each check's thread is named after it: readiness-database, ...


class Dependency(NamedTuple):
    """A readiness check, and whether the service is unready when it fails (hard) or not."""

    check: Check
    hard: bool = True


def soft(checks: dict[str, Check]) -> dict[str, Dependency]:
    """Return checks of soft dependencies: reported, never making the service unready."""
    return {name: Dependency(check, hard=False) for name, check in checks.items()}


def dependencies(app: Flask) -> dict[str, Dependency]:
    """Return every dependency this service was configured with."""
    found = {"database": Dependency(database.ping)}
{%- if cookiecutter.use_postgres == "yes" %}
    found["schema"] = Dependency(schema_migrations.check_at_head)
{%- endif %}
{%- if cookiecutter.use_redis == "yes" %}
    found.update(soft(redis_settings.readiness_checks(app)))
{%- endif %}
{%- if cookiecutter.use_celery == "yes" %}
    found.update(soft(celery_app.readiness_checks(app)))
{%- endif %}
    return found


class Run:
    """One run of a check in a daemon thread: a hung check never holds up the answer."""

    def __init__(self, app: Flask, name: str, check: Check) -> None:
        """Start the check now."""
        self.started = time.monotonic()
        self.done = threading.Event()
        self.error: Exception | None = None
        self.facts: dict = {}
        self.duration_ms = 0.0
        thread = threading.Thread(
            target=self._run, args=(app, name, check), name=f"{THREAD_PREFIX}{name}", daemon=True
        )
        thread.start()

    def _run(self, app: Flask, name: str, check: Check) -> None:
        """Run the check in an app context; keep its error and duration."""
        try:
            with app.app_context():
                self.facts = check() or {}
        except Exception as exc:  # noqa: BLE001  (any failure makes the check fail)
            if not isinstance(exc, DatabaseUnavailable):  # those were logged with their cause
                log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            self.error = exc
        finally:
            self.duration_ms = round((time.monotonic() - self.started) * 1000, 2)
            self.done.set()

    def result(self, deadline: float) -> dict:
        """Wait for the check until ``deadline`` (monotonic) at most; report how it went."""
        if not self.done.wait(max(0.0, deadline - time.monotonic())):
            running = time.monotonic() - self.started
            return {"status": "error", "error": f"no answer after {running:.1f}s, still running"}
        if self.error is None:
            return {"status": "ok", "duration_ms": self.duration_ms, **self.facts}
        if isinstance(self.error, DatabaseUnavailable):
            return {"status": "error", "error": str(self.error)}
        return {"status": "error", "error": type(self.error).__name__}


def _start(app: Flask, checks: dict[str, Check]) -> dict[str, Run]:
    """Start each check, unless its run from an earlier probe is still going: reuse that one."""
    with _STARTING:
        runs = app.extensions.setdefault("readiness_runs", {})
        for name, check in checks.items():
            if name not in runs or runs[name].done.is_set():
                runs[name] = Run(app, name, check)
        return {name: runs[name] for name in checks}


def run_checks(app: Flask, checks: dict[str, Check], timeout: float) -> dict:
    """Run the checks in parallel and report each one within ``timeout`` seconds."""
    runs = _start(app, checks)
    deadline = time.monotonic() + timeout
    return {name: run.result(deadline) for name, run in runs.items()}


@bp.get("/healthz")
def healthz():
    """Answer 200 while the process can serve requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Answer 200 while every hard dependency answers (soft ones may be degraded), else 503."""
    app = current_app._get_current_object()
    found = dependencies(app)
    timeout = app.extensions["settings"].health_check_timeout
    results = run_checks(app, {name: dep.check for name, dep in found.items()}, timeout)
    for name, dependency in found.items():
        if not dependency.hard and results[name]["status"] == "error":
            results[name]["status"] = "degraded"
    statuses = {result["status"] for result in results.values()}
    status = "ok"
    if "error" in statuses:
        status = "unavailable"
    elif "degraded" in statuses:
        status = "degraded"
    response = jsonify(status=status, checks=results)
    response.status_code = 503 if status == "unavailable" else 200
    return response
