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


def deploy(
    stack: contextlib.ExitStack, request, combo: Combination, service_env: dict[str, str]
) -> Deployment:
    """Serve one combination: migrate, start the service (nginx, Celery's); ``stack`` stops it.

    With use_auth, a user is signed up (auth.py), or signed in where migrate made one (a copy of a
    migrated PostgreSQL database holds its user); Celery's processes start unless the module
    starts its own (OWN_CELERY_PROCESSES = True). The migrations run for the first deployment of
    a bake on this worker's PostgreSQL, and for each of a module that reads their output
    (MIGRATES_EACH_TIME = True); the others start on a copy of the database they migrated.
    """
    workdir = request.getfixturevalue("workdir")
    root = Path(tempfile.mkdtemp(prefix=f"{combo.id}-", dir=workdir))
    root.chmod(0o755)
    deployment = Deployment(
        combo=combo,
        bake=request.getfixturevalue("bake")(combo),
        root=root,
        interpreter=request.getfixturevalue("interpreter"),
        postgres=request.getfixturevalue("postgres") if combo.selected("use_postgres") else None,
        redis=request.getfixturevalue("redis_server") if combo.selected("use_redis") else None,
        environment=service_env,
    )
    stack.callback(deployment.stop)
    if combo.selected("use_postgres"):
        deployment.migrate(again=getattr(request.module, "MIGRATES_EACH_TIME", False))
    deployment.service = deployment.new_service("service").start()
    if combo.selected("use_auth") and deployment.made_user is not None:
        deployment.account = auth.signed_in(deployment, *deployment.made_user)
    elif combo.selected("use_auth"):
        deployment.account = auth.sign_up(deployment)
    if combo.selected("use_nginx"):
        deployment.nginx = deployment.start_nginx()
    if combo.selected("use_celery") and not own_celery_processes(request):
        celery_processes.serve(deployment)
    return deployment


def own_celery_processes(request) -> bool:
    """Say whether the requesting module starts Celery's worker and scheduler itself."""
    return bool(getattr(request.module, "OWN_CELERY_PROCESSES", False))


class SharedDeployments:
    """The deployments modules share (SHARE_DEPLOYMENT = True), of one combination at a time.

    A module shares only if it leaves the deployment as it found it: no process stopped, no
    setting changed, nothing a later module's assertion counts. Each is keyed by the combination,
    the service's environment and whether the module runs Celery's processes itself.
    """

    def __init__(self) -> None:
        """Hold none yet."""
        self.running: dict[tuple, tuple[Deployment, contextlib.ExitStack]] = {}

    def get(self, request, combo: Combination, service_env: dict[str, str]) -> Deployment:
        """Return the shared deployment of this key, deployed now if none runs yet."""
        key = (combo.id, tuple(sorted(service_env.items())), own_celery_processes(request))
        self.keep_only(combo.id)
        if key not in self.running:
            with contextlib.ExitStack() as stack:
                deployment = deploy(stack, request, combo, service_env)
                self.running[key] = (deployment, stack.pop_all())
            # At the end, stop it after the modules' fixtures and before the session's PostgreSQL
            # and Redis (their finalizers run last to first, and deploy asked for them).
            request.session.addfinalizer(lambda: self.keep_only(None))
        return self.running[key][0]

    def keep_only(self, combo_id: str | None) -> None:
        """Stop every shared deployment of another combination than ``combo_id`` (None: all)."""
        for key in [key for key in self.running if key[0] != combo_id]:
            self.running.pop(key)[1].close()


SHARED = pytest.StashKey[SharedDeployments]()


def shared_deployments(config: pytest.Config) -> SharedDeployments:
    """Return this process's (xdist worker's) shared deployments."""
    return config.stash.setdefault(SHARED, SharedDeployments())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Stop the shared deployments once the next test is of another combination (after this
    test's module let go of its deployment)."""
    result = yield
    if nextitem is not None and _has_combo(nextitem):
        shared_deployments(item.config).keep_only(nextitem.callspec.params["combo"].id)
    return result


@pytest.fixture(scope="module")
def deployment(request, combo: Combination, service_env: dict[str, str]) -> Iterator[Deployment]:
    """Serve one combination to the module (deploy); stop it all afterwards.

    A module that leaves the deployment as it found it says so, SHARE_DEPLOYMENT = True, and
    gets the combination's shared one (SharedDeployments); the instances it adds stop with it.
    With use_auth, `requests` sends the signed-up user's token on writes (auth.py).
    """
    with contextlib.ExitStack() as stack:
        if getattr(request.module, "SHARE_DEPLOYMENT", False):
            deployment = shared_deployments(request.config).get(request, combo, service_env)
            stack.callback(deployment.stop_extras, len(deployment.extra))
        else:
            deployment = deploy(stack, request, combo, service_env)
        if deployment.account is not None:
            stack.enter_context(auth.bearer_on_writes(deployment.account.token))
        yield deployment
