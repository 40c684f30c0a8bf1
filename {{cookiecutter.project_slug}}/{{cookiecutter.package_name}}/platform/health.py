"""Liveness (the process answers) and readiness (the hard dependencies answer, in time).

Checks run in daemon threads: readiness answers within HEALTH_CHECK_TIMEOUT, and a hung check is
not started again until it ends. HARD dependencies decide the status code; soft ones (the app
serves without them) show as "degraded" in the body, still 200.
"""

import threading
import time
from collections.abc import Callable, Mapping

from flask import Blueprint, Flask, Response, current_app, jsonify
from sqlalchemy.exc import DBAPIError

from . import {% if cookiecutter.use_celery == "yes" %}celery_app, {% endif %}database{% if cookiecutter.use_redis == "yes" %}, redis_client{% endif %}{% if cookiecutter.use_postgres == "yes" %}, schema_migrations{% endif %}
from .database_errors import DETAILS, DatabaseUnavailable, describe
from .rate_limits import unlimited
from .routes import Access, access

bp = Blueprint("health", __name__)
# A check raises when its dependency fails; it may return facts for the body (a queue's length).
Check = Callable[[], Mapping[str, object] | None]
Result = dict[str, object]  # status, error or duration_ms, and the check's facts
HARD = {"database", "schema"}  # unready when one of these fails; any other is soft
THREAD_PREFIX = "readiness-"  # each check's thread is named after it: readiness-database, ...
_STARTING = threading.Lock()


def dependencies(app: Flask) -> dict[str, Check]:
    """Return the check of every dependency this service was configured with."""
    found: dict[str, Check] = {"database": database.ping}
{%- if cookiecutter.use_postgres == "yes" %}
    found["schema"] = schema_migrations.check_at_head
{%- endif %}
{%- if cookiecutter.use_redis == "yes" %}
    found.update(redis_client.readiness_checks(app))
{%- endif %}
{%- if cookiecutter.use_celery == "yes" %}
    found.update(celery_app.readiness_checks(app))
{%- endif %}
    return found


def run(app: Flask, name: str, check: Check, result: Result) -> None:
    """Run a check in an app context and write how it went into ``result``."""
    started = time.monotonic()
    try:
        with app.app_context():
            facts = check() or {}
    except DBAPIError as exc:  # describe() logs it
        result.update(status="error", error=describe(exc) or DETAILS["unavailable"])
    except DatabaseUnavailable as exc:
        result.update(status="error", error=str(exc))
    except Exception as exc:  # noqa: BLE001  (any failure makes the check fail)
        app.logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        result.update(status="error", error=type(exc).__name__)
    else:
        duration_ms = round((time.monotonic() - started) * 1000, 2)
        result.update(status="ok", duration_ms=duration_ms, **facts)


def run_checks(app: Flask, checks: dict[str, Check], timeout: float) -> dict[str, Result]:
    """Run the checks in parallel and report each one within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with _STARTING:
        runs = app.extensions.setdefault("readiness_runs", {})
        for name, check in checks.items():
            if name not in runs or not runs[name][0].is_alive():  # else: wait for the hung one
                result: Result = {}
                thread = threading.Thread(
                    target=run, args=(app, name, check, result), name=THREAD_PREFIX + name
                )
                thread.daemon = True
                thread.start()
                runs[name] = (thread, result)
    results: dict[str, Result] = {}
    for name in checks:
        thread, result = runs[name]
        thread.join(max(0.0, deadline - time.monotonic()))
        still_running: Result = {"status": "error", "error": "no answer in time, still running"}
        results[name] = still_running if thread.is_alive() else dict(result)
    return results


@bp.get("/healthz")
@access(Access.ANYONE)
@unlimited  # an orchestrator's probe is never refused
def healthz() -> Response:
    """Answer 200 while the process can serve requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
@access(Access.ANYONE)
@unlimited  # an orchestrator's probe is never refused
def readyz() -> Response | tuple[Response, int]:
    """Answer 200 while every hard dependency answers (soft ones may be degraded), else 503."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy
    timeout = app.extensions["settings"].health_check_timeout
    results = run_checks(app, dependencies(app), timeout)
    for name, result in results.items():
        if result["status"] == "error" and name not in HARD:
            result["status"] = "degraded"
    statuses = {result["status"] for result in results.values()}
    if "error" in statuses:
        return jsonify(status="unavailable", checks=results), 503
    return jsonify(status="degraded" if "degraded" in statuses else "ok", checks=results)
