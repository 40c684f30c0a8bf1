"""Fixtures: apps on a test database of their own, never the one DATABASE_URL names.

The session reads no .env and none of the settings the environment exports: every test app
has the settings' defaults and its overrides. Only TEST_* variables reach it.
TEST_DATABASE_URL names a database kept for the tests: the session drops every table it has,
builds the schema as production does, and drops every table again at the end. Unset, the tests
use a temporary SQLite file.

The tests share their apps, one for each set of overrides (``app``: none; ``shared_app``), their
tables and cache emptied before each test: a test that changes its app (a setting, a route, an
extension) takes one of its own from ``make_app``.
"""

{% if cookiecutter.use_auth == "yes" -%}
import functools
{% endif -%}
import gc
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
{%- if cookiecutter.use_auth == "yes" %}
from datetime import timedelta
{%- endif %}
from pathlib import Path
{%- if cookiecutter.use_auth == "yes" %}
from weakref import WeakKeyDictionary
{%- endif %}

import pytest
from flask import Flask
{%- if cookiecutter.use_auth == "yes" %}
from flask.testing import FlaskClient
{%- endif %}
{%- if cookiecutter.use_auth == "yes" and cookiecutter.use_frontend == "yes" %}
from flask_login import FlaskLoginClient
{%- endif %}
{%- if cookiecutter.use_postgres == "yes" %}
from flask_migrate import upgrade
{%- endif %}
{%- if cookiecutter.use_opentelemetry == "yes" %}
from opentelemetry import trace
{%- if cookiecutter.use_auth == "yes" %}
from opentelemetry.instrumentation.utils import suppress_instrumentation
{%- endif %}
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
{%- endif %}
from sqlalchemy import MetaData, create_engine, event{% if cookiecutter.use_auth == "yes" %}, select{% endif %}
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError{% if cookiecutter.use_auth == "yes" %}, SQLAlchemyError{% endif %}
from sqlalchemy.pool import Pool

from {{ cookiecutter.package_name }} import create_app
{%- if cookiecutter.use_auth == "yes" %}
from {{ cookiecutter.package_name }}.auth.accounts import User, hasher, issue_token, user_for_token
{%- endif %}
{%- if cookiecutter.use_auth == "yes" and cookiecutter.use_frontend == "yes" %}
from {{ cookiecutter.package_name }}.auth.pages import SignedIn
{%- endif %}
from {{ cookiecutter.package_name }}.extensions import cache, db
from {{ cookiecutter.package_name }}.platform import health, logs{% if cookiecutter.use_opentelemetry == "yes" %}, telemetry{% endif %}
{%- if cookiecutter.use_auth == "yes" %}
from {{ cookiecutter.package_name }}.platform.timestamps import utc_now
{%- endif %}
from tests.settings.test_configuration_reference import settings_classes

SECRET = "test-secret-key-not-for-production"
PROJECT = Path(__file__).resolve().parent.parent
{%- if cookiecutter.use_auth == "yes" %}
TESTER, TESTER_PASSWORD = "tester@example.com", "tester-password"
TOKENS: WeakKeyDictionary[Flask, str] = WeakKeyDictionary()  # the tester's token, by app


@functools.cache
def hash_of(password: str) -> str:
    """Return the app's hash of ``password``, computed once per password: users stored with it
    sign in as with a hash of their own (only the salt would differ)."""
    return hasher.hash(password)


# One test user (TESTER), stored by the first client that needs it: ``auth_client`` sends its
# bearer token, as the API's writes ask; ``writer`` and ``writer_of`` have what every write asks
# for; ``client`` sends no credentials at all.
def token_of_tester(app: Flask) -> str | None:
    """Return a live token of the app's test user, made when the app has none; None when the
    app's database cannot store it (no tables, read-only: failures tests provoke)."""
{%- if cookiecutter.use_opentelemetry == "yes" %}
    # Not traced: the tests of traces count the spans of the requests they make.
{%- endif %}
    with app.app_context(){% if cookiecutter.use_opentelemetry == "yes" %}, suppress_instrumentation(){% endif %}:
        try:
            token = TOKENS.get(app)
            if token is None or user_for_token(token) is None:  # none yet, or tables emptied
                user = db.session.scalar(select(User).where(User.email == TESTER))
                if user is None:  # apps not made by make_app may share a database with one
                    user = User(
                        email=TESTER,
                        password_hash=hash_of(TESTER_PASSWORD),
                        email_verified_at=utc_now(),
                    )
                    db.session.add(user)
                    db.session.flush()
                token = TOKENS[app] = issue_token(user, timedelta(hours=1))[0]
            return token
        except SQLAlchemyError:
            db.session.rollback()
            return None


def send_token(client: FlaskClient, token: str | None = None):
    """Make ``client`` send ``Authorization: Bearer <token>`` on every request that names no
    Authorization of its own; by default the token of its app's test user. Return the client."""
    token = token or token_of_tester(client.application)
    assert token, "the test user's token could not be stored in this app's database"
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.fixture
def auth_client(app):
    """Return a test client of the app sending the test user's bearer token."""
    return send_token(app.test_client())
{%- endif %}
{%- if cookiecutter.use_auth == "yes" and cookiecutter.use_frontend == "yes" %}


def client_signed_in(app: Flask):
    """Return a test client of ``app`` signed in to the pages as its test user, by Flask-Login's
    documented test client; it sends no bearer token."""
    token = token_of_tester(app)
    assert token, "the test user could not be stored in this app's database"
    with app.app_context(){% if cookiecutter.use_opentelemetry == "yes" %}, suppress_instrumentation(){% endif %}:
        tester = user_for_token(token)
    assert tester is not None
    return FlaskLoginClient(app, app.response_class, user=SignedIn(tester))


@pytest.fixture
def signed_in_client(app):
    """Return a test client of the app signed in to the pages as the test user (no token)."""
    return client_signed_in(app)
{%- endif %}


def writer_of(app: Flask):
    """Return a test client of ``app`` with every credential its writes need."""
    client = {{ "client_signed_in(app)" if cookiecutter.use_auth == "yes" and cookiecutter.use_frontend == "yes" else "app.test_client()" }}
{%- if cookiecutter.use_auth == "yes" %}
    send_token(client)
{%- endif %}
    return client


def connections_to(server: socket.socket) -> int:
    """Return how many connections reached the listening ``server`` since it was last asked
    (none is served: each is accepted and closed)."""
    server.setblocking(False)
    count = 0
    for _ in range(1000):  # more than any test makes
        try:
            server.accept()[0].close()
        except BlockingIOError:
            break
        count += 1
    return count


def empty_database(url: str) -> None:
    """Drop every table of the database ``url`` names; fail clearly when it cannot be reached."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            tables = MetaData()
            tables.reflect(connection)
            tables.drop_all(connection)
    except OperationalError as exc:
        pytest.exit(f"TEST_DATABASE_URL cannot be used (create that database first): {exc}", 2)
    finally:
        engine.dispose()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what the imports and the collection made (gc.freeze): it lives as long as the
    session, and each of Python's full garbage collections would walk all of it again."""
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def outside_settings():
    """Remove every variable a settings class reads (TEST_* stay) and export APP_ENV=test, with
    which no .env is read; return what was removed. No server named there is ever reached."""
    names = {name.upper() for cls in settings_classes() for name in cls.model_fields}
    removed = {
        name: value
        for name, value in os.environ.items()
        if name.upper() in names and not name.upper().startswith("TEST_")
    }
    with pytest.MonkeyPatch.context() as environment:
        for name in removed:
            environment.delenv(name)
        environment.setenv("APP_ENV", "test")
        yield removed


@pytest.fixture(scope="session")
def test_database_url(tmp_path_factory, outside_settings):
    """Return the URL of the tests' own database, emptied before and after the session."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    if url == outside_settings.get("DATABASE_URL"):
        pytest.exit("TEST_DATABASE_URL names the DATABASE_URL database: give tests their own", 2)
    empty_database(url)
    yield url
    empty_database(url)


@pytest.fixture(scope="session")
def _schema(test_database_url):
    """Build the test database's schema once per session, as production does."""
    app = create_app({"app_env": "test", "secret_key": SECRET, "database_url": test_database_url})
    with app.app_context():
{%- if cookiecutter.use_postgres == "yes" %}
        upgrade()  # the schema comes from the migrations only
{%- endif %}
        db.engine.dispose()


@pytest.fixture
def empty_database_url(tmp_path) -> str:
    """Return the URL of a new, empty SQLite database, for tests about a missing schema."""
    return f"sqlite:///{tmp_path / 'empty.db'}"


# Every database connection a pool opened and has not closed yet, by id.
OPEN_CONNECTIONS: dict[int, object] = {}


@event.listens_for(Pool, "connect")
def _opened(dbapi_connection, record) -> None:
    OPEN_CONNECTIONS[id(dbapi_connection)] = dbapi_connection


@event.listens_for(Pool, "close")
@event.listens_for(Pool, "close_detached")
def _closed(dbapi_connection, record=None) -> None:
    OPEN_CONNECTIONS.pop(id(dbapi_connection), None)


def finish_readiness_checks(timeout: float = 10.0) -> None:
    """Wait for readiness checks still running after the probe that started them answered."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith(health.THREAD_PREFIX):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                pytest.fail(f"{thread.name} was still running {timeout:.0f}s after its test")


class ConnectionGuard:
    """Dispose every engine connected with inside the block; keep in ``left`` what stayed open.

    Engines are held strongly: an app dropped before the block ends is collected with its
    engine, and a pool collected that way never closes its connections.
    Readiness checks a probe did not wait for are waited for first: a connection they open
    after the engines were disposed would stay open in a pool nobody closes.
    """

    def __init__(self) -> None:
        """Start with no engines and nothing left."""
        self.engines: set[Engine] = set()
        self.left: list = []

    def _remember(self, connection) -> None:
        self.engines.add(connection.engine)

    def __enter__(self) -> "ConnectionGuard":
        """Remember every engine connected with from now on."""
        event.listen(Engine, "engine_connect", self._remember)
        return self

    def __exit__(self, *exc_info) -> None:
        """Dispose the engines; close, and keep in ``left``, every connection still open."""
        finish_readiness_checks()
        event.remove(Engine, "engine_connect", self._remember)
        for engine in self.engines:
            engine.dispose()
        self.engines.clear()
        self.left = list(OPEN_CONNECTIONS.values())
        OPEN_CONNECTIONS.clear()
        for connection in self.left:
            connection.close()


@pytest.fixture(autouse=True)
def _close_pooled_connections():
    """Dispose every engine a test connected with; fail the test if a connection outlives it."""
    with ConnectionGuard() as guard:
        yield
    left = guard.left
    assert not left, f"{len(left)} database connection(s) outlived the test that opened them"


@pytest.fixture(scope="session")
def settings_overrides(test_database_url, _schema) -> dict:
    """Return the overrides every test app gets; tests add their own (to a copy)."""
    return {
        "app_env": "test",
        "secret_key": SECRET,
        "database_url": test_database_url,
{%- if cookiecutter.use_redis == "yes" %}
        # TEST_REDIS_URL: a Redis the tests may flush (never REDIS_URL); unset: limits in memory
        # and no cache (a test that needs one asks for shared_cache).
        "redis_url": os.environ.get("TEST_REDIS_URL") or None,
{%- endif %}
{%- if cookiecutter.use_celery == "yes" %}
        "celery_task_always_eager": True,  # tests of the web run each task at once, in-process
{%- endif %}
    }


def emptied(app: Flask) -> Flask:
    """Empty the tables and the cache of ``app``; return it."""
    with app.app_context():
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())
        cache.clear()
    return app


@pytest.fixture
def make_app(settings_overrides):
    """Return a function building an app of the test's own with extra overrides, on emptied
    tables and caches: for a test that changes its app (a setting, a route, an extension)."""

    def make(**overrides):
        return emptied(create_app({**settings_overrides, **overrides}))

    return make


def shape_of(app: Flask) -> dict:
    """Return what a test leaves as it found on the shared app: its configuration and settings,
    routes, static folder, kind of cache, hooks, error handlers and which object each extension
    is."""
    hooks = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
        app.url_value_preprocessors,
        app.url_default_functions,
        app.template_context_processors,
    )
    with app.app_context():  # the cache of the app in context
        kind_of_cache = type(cache.cache).__name__
    return {
        "configuration": dict(app.config),
        "settings": app.extensions["settings"].model_dump(),
        "routes": sorted((rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()),
        "static folder": app.static_folder,
        "cache": kind_of_cache,
        "views": dict(app.view_functions),
        "hooks": [{key: list(funcs) for key, funcs in table.items() if funcs} for table in hooks],
        "app context teardowns": list(app.teardown_appcontext_funcs),
        # Flask adds empty entries as it looks handlers up: only those it holds count.
        "error handlers": {
            (scope, code): dict(handlers)
            for scope, codes in app.error_handler_spec.items()
            for code, handlers in codes.items()
            if handlers
        },
        "extensions": {name: id(value) for name, value in app.extensions.items()},
    }


def changes(before: dict, after: dict) -> list[str]:
    """Return the parts of an app's shape (shape_of) that differ from ``before`` to ``after``.

    An extension the app added as it served is no change: the next test starts without it.
    """
    kept = {name: after["extensions"].get(name) for name in before["extensions"]}
    return [part for part in before if before[part] != {**after, "extensions": kept}[part]]


@pytest.fixture(scope="session")
def _shared() -> dict:
    """Hold the apps the tests share (shared_app), by what each was built with, with its shape;
    and, while a test runs, the ones it asked for."""
    return {"apps": {}, "asked": {}}


@pytest.fixture(autouse=True)
def _shared_apps_left_as_found(_shared):
    """Fail a test that changed a shared app it asked for, and let the next test build a new one.

    Autouse, so set up before the test's other fixtures and checked after their teardown
    (monkeypatch's undo included).
    """
    _shared["asked"] = {}
    yield
    for key, app in _shared["asked"].items():
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        changed = changes(_shared["apps"][key]["shape"], shape_of(app))
        if changed:
            del _shared["apps"][key]
            pytest.fail(f"the test changed a shared app's {', '.join(changed)}: use make_app()")


@pytest.fixture
def shared_app(_shared, settings_overrides):
    """Return a function giving the app the tests share for some extra overrides, on tables and
    caches emptied at the test's first ask (a second ask in the test gets it as it is).

    Each is built once per session: building an app (its settings, its routes) costs more than
    most tests. ``setup(app)``, if given, runs at each test's first ask, after the emptying, and
    must leave the app's shape as its first run did (an outbox emptied, not replaced). A test
    that changes its app asks make_app for one of its own.
    """

    def get(setup: Callable[[Flask], object] | None = None, **overrides) -> Flask:
        key = (setup, repr(sorted(overrides.items())))
        if key in _shared["asked"]:
            return _shared["asked"][key]
        built = _shared["apps"].get(key)
        if built is None:
            app = create_app({**settings_overrides, **overrides})
        else:
            app = built["app"]
            for name in app.extensions.keys() - built["shape"]["extensions"].keys():
                del app.extensions[name]  # what it filled as it served (documents, checks' runs)
        # Process-wide, and set by the last app built: this one's again.
        logs.init_app(app)
{%- if cookiecutter.use_celery == "yes" %}
        app.extensions["celery"].set_current()  # the app tasks find, in this thread
        app.extensions["celery"].set_default()  # and in the threads the test starts
{%- endif %}
        emptied(app)
        if setup is not None:
            setup(app)
        if built is None:
            _shared["apps"][key] = {"app": app, "shape": shape_of(app)}
        _shared["asked"][key] = app
        return app

    return get


@pytest.fixture
def app(shared_app):
    """Return the app the tests share with no extra overrides, on emptied tables and caches."""
    return shared_app()


@pytest.fixture
def limited_app(make_app):
    """Return a function building an app that enforces rate limits, counters reset."""

    def make(**overrides):
        app = make_app(app_env="development", **overrides)
        app.extensions["rate_limits"].reset()
        return app

    return make


@pytest.fixture
def limited_client(limited_app):
    """Return a function giving an anonymous client of an app that enforces rate limits."""

    def make(**overrides):
        return limited_app(**overrides).test_client()

    return make


def with_a_cache(app: Flask) -> Flask:
    """Give ``app`` a cache when its settings name none: this process's memory, which every
    request of a test shares as every worker would share one (the tests run as one worker).
    Return the app."""
    if app.config["CACHE_TYPE"] == "NullCache":
        cache.init_app(app, config={"CACHE_TYPE": "SimpleCache"})
    return app


@pytest.fixture
def shared_cache(app):
    """Give the app a cache (with_a_cache) for the test, and the one its settings name after."""
    yield with_a_cache(app)
    cache.init_app(app)


@pytest.fixture
def client(app):
    """Return a test client of the app sending no credentials: an anonymous caller."""
    return app.test_client()


@pytest.fixture
def writer(app):
    """Return a test client of the app with the credentials writes need (see ``writer_of``)."""
    return writer_of(app)


@pytest.fixture
def runner(app):
    """Return a CLI runner of the app."""
    return app.test_cli_runner()


@pytest.fixture
def project_dir() -> Path:
    """Return the project's root folder, the one holding pyproject.toml and the package."""
    return PROJECT


@pytest.fixture
def run_python(tmp_path):
    """Return a function running ``python <args>`` on this project with only the given variables.

    It runs in an empty folder, so no .env is read: the variables passed are the whole story.
    """

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603  (this Python, fixed arguments)
            [sys.executable, *args],
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT), **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run
{%- if cookiecutter.use_opentelemetry == "yes" %}


@pytest.fixture(scope="session", autouse=True)
def _tracing() -> InMemorySpanExporter:
    """Trace every test's app as an OTLP endpoint would, keeping the spans in memory."""
    exporter = InMemorySpanExporter()
    telemetry.start(exporter)
    return exporter


@pytest.fixture(autouse=True)
def _spans_dropped(_tracing: InMemorySpanExporter):
    """Drop the spans kept once a test is over: the session's would all stay in memory."""
    yield
    _tracing.clear()


@pytest.fixture(autouse=True)
def _no_span_left_current():
    """Fail a test that leaves a span current: what its thread did next would join that trace."""
    yield
    span = trace.get_current_span()
    assert not span.get_span_context().is_valid, f"{span} is still current"
{%- endif %}
