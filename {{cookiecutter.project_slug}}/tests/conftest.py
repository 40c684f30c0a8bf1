"""Fixtures: apps on a test database of their own, never the one DATABASE_URL names.

TEST_DATABASE_URL names a test database on a server (e.g. PostgreSQL): the session creates it,
replacing a leftover one, builds its schema as production does, and drops it at the end. Unset,
the tests use a temporary SQLite file. TEST_REDIS_URL, when set, names a Redis the tests may
flush; unset, cache and limits stay in memory. DATABASE_URL and REDIS_URL are never used.
"""

import os
import weakref

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import cache, db, limiter

SECRET = "test-secret-key-not-for-production"


def _on_server(url: str, *statements: str) -> None:
    """Run statements on the server of ``url`` (PostgreSQL), ``{name}`` being its database.

    SQLite needs nothing: its file comes and goes with the test's temporary folder.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for statement in statements:
            connection.execute(text(statement.format(name=parsed.database)))
    admin.dispose()


def create_database(url: str) -> None:
    """Create the database ``url`` names, dropping a leftover one."""
    _on_server(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', 'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    """Drop the database ``url`` names."""
    _on_server(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build_schema(app) -> None:
    """Build the schema as production does: the migrations when there are any."""
    with app.app_context():
        if "migrate" in app.extensions:
            from flask_migrate import upgrade

            upgrade()
        else:
            db.create_all()


@pytest.fixture(scope="session")
def test_database_url(tmp_path_factory):
    """Return the URL of the session's own test database, created here and dropped after."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    if url == os.environ.get("DATABASE_URL"):
        pytest.exit("TEST_DATABASE_URL names the DATABASE_URL database: give tests their own", 2)
    create_database(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def _schema(test_database_url):
    """Build the test database's schema once per session."""
    app = create_app({"app_env": "test", "secret_key": SECRET, "database_url": test_database_url})
    build_schema(app)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def empty_database_url(test_database_url, tmp_path):
    """Return the URL of another database, empty, for tests that build a schema themselves."""
    parsed = make_url(test_database_url)
    if parsed.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = parsed.set(database=f"{parsed.database}_empty").render_as_string(hide_password=False)
    create_database(url)
    yield url
    drop_database(url)


@pytest.fixture(autouse=True)
def _close_pooled_connections():
    """Dispose every engine a test connected with, so no connection outlives its test."""
    engines = weakref.WeakSet()

    def remember(connection) -> None:
        engines.add(connection.engine)

    event.listen(Engine, "engine_connect", remember)
    yield
    event.remove(Engine, "engine_connect", remember)
    for engine in list(engines):
        engine.dispose()


@pytest.fixture
def settings_overrides(test_database_url, _schema) -> dict:
    """Return the overrides every test app gets; tests add their own."""
    return {
        "app_env": "test",
        "secret_key": SECRET,
        "database_url": test_database_url,
        "redis_url": os.environ.get("TEST_REDIS_URL") or None,
    }


@pytest.fixture
def make_app(settings_overrides):
    """Return a function building an app with extra overrides, on emptied tables and caches."""

    def make(**overrides):
        app = create_app({**settings_overrides, **overrides})
        with app.app_context():
            with db.engine.begin() as connection:
                for table in reversed(db.metadata.sorted_tables):
                    connection.execute(table.delete())
            cache.clear()
        return app

    return make


@pytest.fixture
def app(make_app):
    """Build an app on empty tables."""
    app = make_app()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def limited_client(make_app):
    """Return a function giving a client of an app that enforces rate limits, counters reset."""

    def make(**overrides):
        app = make_app(app_env="development", **overrides)
        with app.app_context():
            limiter.reset()
        return app.test_client()

    return make


@pytest.fixture
def client(app):
    """Return a test client of the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Return a CLI runner of the app."""
    return app.test_cli_runner()
