"""Liveness (the process answers) and readiness (every dependency answers in time)."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as CheckTimeout

from flask import Blueprint, Flask, current_app, jsonify

from . import database{% if cookiecutter.use_redis == "yes" %}, redis_store{% endif %}

bp = Blueprint("health", __name__)


def readiness_checks(app: Flask) -> dict[str, Callable[[], None]]:
    """Return the named checks of every dependency this service was configured with."""
    checks: dict[str, Callable[[], None]] = {"database": database.ping}
{%- if cookiecutter.use_redis == "yes" %}
    checks.update(redis_store.readiness_checks(app.extensions["settings"]))
{%- endif %}
    return checks


def run_checks(app: Flask, checks: dict[str, Callable[[], None]], timeout: float) -> dict:
    """Run the checks in parallel, each bounded by ``timeout`` seconds; report each one."""

    def timed(check: Callable[[], None]) -> float:
        started = time.perf_counter()
        with app.app_context():
            check()
        return round((time.perf_counter() - started) * 1000, 2)

    results = {}
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(timed, check) for name, check in checks.items()}
        deadline = time.monotonic() + timeout
        for name, future in futures.items():
            try:
                elapsed = future.result(timeout=max(0.0, deadline - time.monotonic()))
                results[name] = {"status": "ok", "duration_ms": elapsed}
            except CheckTimeout:
                results[name] = {"status": "error", "error": f"no answer within {timeout}s"}
            except Exception as exc:  # noqa: BLE001  (any failure makes the check fail)
                app.logger.warning("readiness check %s failed: %s", name, exc)
                results[name] = {"status": "error", "error": type(exc).__name__}
        pool.shutdown(wait=False, cancel_futures=True)
    return results


@bp.get("/healthz")
def healthz():
    """Answer 200 while the process can serve requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Answer 200 when every dependency answers, else 503 with each check's result."""
    app = current_app._get_current_object()
    timeout = app.extensions["settings"].health_check_timeout
    results = run_checks(app, readiness_checks(app), timeout)
    ready = all(result["status"] == "ok" for result in results.values())
    response = jsonify(status="ok" if ready else "unavailable", checks=results)
    response.status_code = 200 if ready else 503
    return response
