"""Bind SQLAlchemy: a bounded pool checked before use, timeouts, SQLite tables, readiness."""

import os
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.schema import CreateTable

from . import models  # noqa: F401  (registers the tables on db.metadata)
from .database_errors import DETAILS, DatabaseUnavailable, describe
from .errors import json_error
from .extensions import db

# The app makes an SQLite file's tables at start-up only when nothing else does (migrations).
CREATE_SQLITE_TABLES = {{ "False" if cookiecutter.use_postgres == "yes" else "True" }}


def engine_options(
    url: str, pool_size: int, connect_timeout: int, statement_timeout: float = 0
) -> dict:
    """Return engine options: a bounded pool, checked before use, and connect/statement timeouts.

    pool_pre_ping replaces a connection the server closed (a restart) before a request gets it;
    a statement running longer than ``statement_timeout`` seconds (0: never) is cancelled by the
    server where the driver supports it: a slow query ends in a 503, not a thread held.
    """
    if make_url(url).get_backend_name() == "sqlite":
        return {"pool_pre_ping": True}
    connect_args: dict = {"connect_timeout": connect_timeout}
{%- if cookiecutter.use_postgres == "yes" %}
    connect_args["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
{%- endif %}
    return {
        "pool_pre_ping": True,
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_recycle": 1800,
        "pool_timeout": connect_timeout,
        "connect_args": connect_args,
    }


def create_sqlite_schema() -> None:
    """Create missing tables in an embedded SQLite file; safe when workers race."""
    if not CREATE_SQLITE_TABLES or db.engine.dialect.name != "sqlite":
        return
    with db.engine.begin() as connection:
        for table in db.metadata.sorted_tables:
            connection.execute(CreateTable(table, if_not_exists=True))


def sqlite_read_only(url: URL) -> bool:
    """Say whether an SQLite database is read-only: by URL, or its file or folder (journals)."""
    if url.query.get("mode") == "ro":
        return True
    database = (url.database or ":memory:").removeprefix("file:")
    paths = [] if database == ":memory:" else [Path(database), Path(database).parent]
    return not all(os.access(path, os.W_OK) for path in paths if path.exists())


def ping() -> None:
    """Raise when the database does not answer or cannot take writes."""
    with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.execute(text("SELECT 1"))
            read_only = sqlite_read_only(db.engine.url)
        else:  # a standby, or default_transaction_read_only
            read_only = connection.execute(text("SHOW transaction_read_only")).scalar() == "on"
    if read_only:
        raise DatabaseUnavailable(DETAILS["read-only"])


def _database_unavailable(exc: DBAPIError):
    """Answer 503 saying what failed (unreachable, read-only, locked, schema); else re-raise."""
    db.session.rollback()
    detail = describe(exc)
    if detail is None:
        raise exc  # not a failure of the database itself: a bug, answered as a logged 500
    return json_error(503, "Service Unavailable", detail, [("Retry-After", "5")])


def _value_rejected(exc: DataError):
    """Answer 422 when the database refuses a value (out of range, wrong form), not a 500."""
    db.session.rollback()
    current_app.logger.warning("the database refused a value: %s", exc.orig)
    detail = "A value is out of range or not storable by the database."
    return json_error(422, "Unprocessable Content", detail)


def init_app(app: Flask) -> None:
    """Configure and bind the database, and map its failures to 503 (a refused value to 422)."""
    settings = app.extensions["settings"]
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
        settings.database_url,
        settings.database_pool_size,
        settings.database_connect_timeout,
        settings.database_statement_timeout,
    )
    db.init_app(app)
    app.register_error_handler(DBAPIError, _database_unavailable)
    app.register_error_handler(DataError, _value_rejected)
    with app.app_context():
        create_sqlite_schema()
