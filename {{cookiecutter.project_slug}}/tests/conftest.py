"""Fixtures: an app per test on a fresh database (SQLite unless DATABASE_URL names a server)."""

import os
import weakref

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import cache, db, limiter


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
def settings_overrides(tmp_path) -> dict:
    """Return the overrides every test app gets; tests add their own."""
    overrides = {"app_env": "test", "secret_key": "test-secret-key-not-for-production"}
    if not os.environ.get("DATABASE_URL"):
        overrides["database_url"] = f"sqlite:///{tmp_path / 'test.db'}"
    return overrides


@pytest.fixture
def app(settings_overrides):
    """Build an app on an empty database."""
    app = create_app(settings_overrides)
    with app.app_context():
        db.drop_all()
        db.create_all()
        cache.clear()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def limited_client(settings_overrides):
    """Return a function giving a client of an app that enforces rate limits, counters reset."""

    def make(**overrides):
        app = create_app({**settings_overrides, "app_env": "development", **overrides})
        with app.app_context():
            db.create_all()
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
