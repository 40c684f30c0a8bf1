"""Bind SQLAlchemy: a bounded pool checked before use, timeouts, reads without a transaction,
SQLite tables, readiness, and one line (not a traceback) for a command whose database cannot be
reached."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy import CursorResult, Result, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, CreateTable

from ..extensions import db
from ..settings import Settings
{%- if cookiecutter.use_postgres == "yes" %}
from . import connection_checks
{%- endif %}
from .database_errors import DETAILS, DatabaseUnavailable, classify, describe
from .errors import Answer, json_error

# The app makes its tables at start-up when nothing else makes them in this project.
CREATE_TABLES = {{ "False" if cookiecutter.use_postgres == "yes" else "True" }}


def rows_changed(result: Result[Any]) -> int:
    """Return how many rows an UPDATE or a DELETE changed: its result is a CursorResult, which
    SQLAlchemy types as any Result."""
    return result.rowcount if isinstance(result, CursorResult) else 0


def engine_options(settings: Settings) -> dict[str, Any]:
    """Return engine options: a bounded pool, checked before use (pinged, unless its connections
    are checked at checkout without a round trip), and connect/statement timeouts.

    A statement running past DATABASE_STATEMENT_TIMEOUT ends in a 503, not in a thread held.
    SQLite bounds only the wait for another writer's lock: by the same setting (0: the longest
    the setting allows), where the driver's own default (5 s) fails writes under a burst.
    """
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        lock_wait = settings.database_statement_timeout or 3600
        return {"pool_pre_ping": True, "connect_args": {"timeout": lock_wait}}
    timeout, pool_size = settings.database_connect_timeout, settings.database_pool_size
    connect_args: dict[str, object] = {"connect_timeout": timeout}
{%- if cookiecutter.use_postgres == "yes" %}
    statement_ms = round(settings.database_statement_timeout * 1000)
    connect_args["options"] = f"-c statement_timeout={statement_ms}"
{%- endif %}
    return {
        "pool_pre_ping": {{ "not connection_checks.checked_here(settings.database_url)" if cookiecutter.use_postgres == "yes" else "True" }},
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_recycle": 1800,
        "pool_timeout": timeout,
        "connect_args": connect_args,
    }


def read_session() -> Session:
    """Return the request's session, each read committed on its own: no BEGIN before it and no
    ROLLBACK when the connection goes back to the pool (a round trip each), unless a transaction
    already began. For a route that only reads."""
    session = db.session()
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return session


def create_tables() -> None:
    """Create the models' missing tables and their indexes (a unique one is a rule the data
    keeps); safe when workers race."""
    with db.engine.begin() as connection:
        for table in db.metadata.sorted_tables:
            connection.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                connection.execute(CreateIndex(index, if_not_exists=True))


def ping() -> None:
    """Raise when the database does not answer or cannot take writes."""
    url = db.engine.url
    with db.engine.connect() as connection:
        if connection.dialect.name != "sqlite":  # a standby, or default_transaction_read_only
            read_only = connection.execute(text("SHOW transaction_read_only")).scalar() == "on"
        else:  # read-only by its URL, or by its file or folder (which holds its journals)
            connection.execute(text("SELECT 1"))
            database = (url.database or ":memory:").removeprefix("file:")
            paths = [] if database == ":memory:" else [Path(database), Path(database).parent]
            writable = all(os.access(path, os.W_OK) for path in paths if path.exists())
            read_only = url.query.get("mode") == "ro" or not writable
    if read_only:
        raise DatabaseUnavailable(DETAILS["read-only"])


def _database_unavailable(exc: DBAPIError) -> Answer:
    """Answer 503 saying what failed (unreachable, read-only, locked, schema); else re-raise."""
    detail = describe(exc)
    if detail is None:
        raise exc  # not a failure of the database itself: a bug, answered as a logged 500
    return json_error(503, "Service Unavailable", detail, (("Retry-After", "5"),))


def _value_rejected(exc: DataError) -> Answer:
    """Answer 422 when the database refuses a value (out of range, wrong form), not a 500."""
    current_app.logger.warning("the database refused a value: %s", exc.orig)
    detail = "A value is out of range or not storable by the database."
    return json_error(422, "Unprocessable Content", detail)


@contextmanager
def unreachable_in_one_line(database_url: str) -> Iterator[None]:
    """Turn a database that cannot be reached into one line naming DATABASE_URL and its address
    (its password masked): the command ends with it and exit status 1, not with a traceback."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        kind, message = classify(exc)
        if kind != "unreachable":
            raise
        address = make_url(database_url).render_as_string(hide_password=True)
        raise click.ClickException(
            f"DATABASE_URL: the database at {address} is not reachable ({message})"
        ) from None


def init_app(app: Flask) -> None:
    """Configure and bind the database, and map its failures to 503 (a refused value to 422).

    Built for a command (``flask ...``), the app gives the command's click context a resource
    that ends an unreachable database in one line: click hands a context's resources, as a
    ``with`` statement would, the exception that ends the command.
    """
    settings = app.extensions["settings"]
    command = click.get_current_context(silent=True)
    if command is not None:
        command.with_resource(unreachable_in_one_line(settings.database_url))
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings)
    db.init_app(app)
{%- if cookiecutter.use_postgres == "yes" %}
    connection_checks.init_app(app)
{%- endif %}
    app.register_error_handler(DBAPIError, _database_unavailable)
    app.register_error_handler(DataError, _value_rejected)
    if CREATE_TABLES:
        with app.app_context():
            create_tables()
