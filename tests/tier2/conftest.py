"""Tier-2 fixtures: real servers per xdist worker, one deployment of the service per combination."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from combinations import Combination

from . import auth, celery_processes
from .deployment import Deployment
from .servers import Interpreter, Postgres, Redis, private_dir


def _has_combo(item: pytest.Item) -> bool:
    """Say whether a test is parametrized by combination (the journeys bake their own)."""
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "combo" in callspec.params


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run each combination's tier-2 tests back to back on one worker, so it deploys once.

    pytest orders module-scoped params by their index in each test's own list; tests here take
    different subsets of the combinations, so one combination has several indices: sort by id.
    """
    here = Path(__file__).parent
    slots = [
        index for index, item in enumerate(items) if here in item.path.parents and _has_combo(item)
    ]
    ordered = sorted(
        (items[index] for index in slots), key=lambda item: item.callspec.params["combo"].id
    )
    for index, item in zip(slots, ordered, strict=True):
        items[index] = item


# Lines of a service's logs worth showing beside a failed test: JSON lines at WARNING or above,
# and any line not JSON (a traceback printed before logging was set up).
TROUBLE = re.compile(r'^(?!\{)|"level": "(WARNING|ERROR|CRITICAL)"')
TROUBLE_LINES = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item):
    """Attach the service's warnings and errors to a failed test's report (its logs go later)."""
    outcome = yield
    report = outcome.get_result()
    deployment = getattr(item, "funcargs", {}).get("deployment")
    if report.when != "call" or not report.failed or not isinstance(deployment, Deployment):
        return
    for service in [deployment.service, *deployment.extra]:
        if service is None:
            continue
        for log in (service.stdout, service.stderr):
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            trouble = [line[:2000] for line in lines if TROUBLE.search(line)][-TROUBLE_LINES:]
            if trouble:
                title = f"{service.logs.parent.name} {log.name}"
                report.sections.append((title, "\n".join(trouble)))


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    """Return a temporary folder the unprivileged user can traverse; removed at the end."""
    path = private_dir("tier2-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def interpreter(workdir) -> Interpreter:
    """Return this Python in a form the unprivileged user can run."""
    return Interpreter.for_user(workdir / "python")


@pytest.fixture(scope="session")
def postgres(workdir) -> Iterator[Postgres]:
    """Run one PostgreSQL cluster per xdist worker; each deployment gets its own database."""
    server = Postgres(workdir / "servers" / "postgres").init().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(workdir) -> Iterator[Redis]:
    """Run one Redis per xdist worker; each deployment gets its own database index."""
    server = Redis(workdir / "servers" / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    """Return the environment every process of a module's deployment gets: none beyond its own.

    A module overrides this fixture to give more (its own receivers' addresses, say).
    """
    return {}


@pytest.fixture(scope="module")
def deployment(
    request, combo: Combination, bake, workdir, interpreter, service_env: dict[str, str]
) -> Iterator[Deployment]:
    """Serve one combination: migrate, start gunicorn (nginx, Celery's), stop it all afterwards.

    A module that starts Celery's worker and scheduler itself says so: OWN_CELERY_PROCESSES = True.
    With use_auth, a user is signed up and `requests` sends its token on writes (auth.py).
    """
    stack = contextlib.ExitStack()
    root = Path(tempfile.mkdtemp(prefix=f"{combo.id}-", dir=workdir))
    root.chmod(0o755)
    deployment = Deployment(
        combo=combo,
        bake=bake(combo),
        root=root,
        interpreter=interpreter,
        postgres=request.getfixturevalue("postgres") if combo.selected("use_postgres") else None,
        redis=request.getfixturevalue("redis_server") if combo.selected("use_redis") else None,
        environment=service_env,
    )
    try:
        if combo.selected("use_postgres"):
            deployment.migrate()
        deployment.service = deployment.new_service("service").start()
        if combo.selected("use_auth"):
            deployment.account = auth.sign_up(deployment)
            stack.enter_context(auth.bearer_on_writes(deployment.account.token))
        if combo.selected("use_nginx"):
            deployment.nginx = deployment.start_nginx()
        if combo.selected("use_celery") and not getattr(request.module, "OWN_CELERY_PROCESSES", 0):
            celery_processes.serve(deployment)
        yield deployment
    finally:
        stack.close()
        deployment.stop()
