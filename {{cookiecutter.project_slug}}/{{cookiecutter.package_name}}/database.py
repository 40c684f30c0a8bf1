"""Bind SQLAlchemy: pooled connections checked without a round trip, one-row reads, SQLite tables.

The app makes an SQLite file's tables at start-up only when the project has no other source of
its schema (CREATE_SQLITE_TABLES): with one, the two would fight over the same tables.
"""
{% if cookiecutter.use_postgres == "yes" %}
import functools
{%- endif %}
import select

from flask import Flask, current_app
{%- if cookiecutter.use_postgres == "yes" %}
from psycopg.rows import namedtuple_row
{%- endif %}
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    InterfaceError,
    InternalError,
    InvalidatePoolError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.schema import CreateTable

from . import models  # noqa: F401  (registers the tables on db.metadata)
from .database_errors import READ_ONLY, UNAVAILABLE, DatabaseUnavailable, describe, sqlite_read_only
from .errors import json_error
from .extensions import db

CREATE_SQLITE_TABLES = {{ "False" if cookiecutter.use_postgres == "yes" else "True" }}


def engine_options(
    url: str, pool_size: int, connect_timeout: int, statement_timeout: float = 0
) -> dict:
    """Return engine options: a bounded pool (guarded, see below), connect/statement timeouts.

    Where the driver supports it, the server cancels a statement running longer than
    ``statement_timeout`` seconds (0: never): a slow query ends in a 503 instead of holding a
    thread past every other timeout.
    """
    if make_url(url).get_backend_name() == "sqlite":
        return {"pool_pre_ping": True}
    connect_args: dict = {"connect_timeout": connect_timeout}
{%- if cookiecutter.use_postgres == "yes" %}
    connect_args["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
{%- endif %}
    return {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_recycle": 1800,
        "pool_timeout": connect_timeout,
        "pool_reset_on_return": None,  # guard_pooled_connections resets what needs it
        "connect_args": connect_args,
    }


def closed_by_server(dbapi_connection) -> bool:
    """Tell, without a round trip, whether the server closed this idle pooled connection.

    An idle connection has nothing to read: a readable socket holds the server's last words (a
    restart, a terminated session) or its end of the connection. No socket: nothing to tell.
    """
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None:
        return False
    try:
        poller = select.poll()
        poller.register(fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # noqa: BLE001  (closed on this side already: replace it too)
        return True


def _replace_if_closed(dbapi_connection, record, proxy) -> None:
    """Have the pool connect afresh when the server closed the connection it hands out."""
    if closed_by_server(dbapi_connection):
        raise InvalidatePoolError("the server closed a pooled connection")


def _roll_back_if_in_transaction(dbapi_connection, record, reset_state) -> None:
    """Roll back a returned connection that is inside a transaction; pass an idle one as it is.

    The pool's own reset rolls back every returned connection, one with nothing open too: a call
    into the driver, under its lock, that an idle connection does not need. A connection whose
    driver tells no transaction status is rolled back.
    """
    if reset_state.terminate_only:  # being closed: nothing to keep
        return
    status = getattr(getattr(dbapi_connection, "info", None), "transaction_status", None)
    if getattr(status, "name", None) != "IDLE":
        dbapi_connection.rollback()


def guard_pooled_connections(engine) -> None:
    """Check each connection the pool hands out with a local look at its socket.

    It replaces pool_pre_ping, which costs a round trip to the database on every checkout. A
    returned connection is rolled back only when it is inside a transaction (the engine's own
    reset is off: engine_options).
    """
    event.listen(engine, "checkout", _replace_if_closed)
    event.listen(engine, "reset", _roll_back_if_in_transaction)


def read_row(statement, **parameters):
    """Run one SELECT outside any transaction and return its first row (or None): one round trip.

    Through the session, a read opens a transaction: BEGIN, the SELECT, and a ROLLBACK when the
    request ends, three round trips to a database server for one row. Here the SELECT goes alone.
    Only for a single statement: two reads this way may see different states of the database.
    """
    engine = db.engine
{%- if cookiecutter.use_postgres == "yes" %}
    if engine.dialect.name == "postgresql":
        return _read_row_with_driver(engine, statement, parameters)
{%- endif %}
    with engine.connect() as connection:  # sqlite3 begins no transaction for a SELECT
        return connection.execute(statement, parameters).first()
{%- if cookiecutter.use_postgres == "yes" %}


@functools.lru_cache(maxsize=64)
def compiled(statement, dialect):
    """Return a statement compiled for a dialect, once: its SQL and how to bind its values."""
    return statement.compile(dialect=dialect)


def _read_row_with_driver(engine, statement, parameters: dict):
    """Run read_row's SELECT with psycopg itself, on a connection from the engine's pool.

    SQLAlchemy's Connection and Result cost more CPU than the round trip they wrap: about 100 of
    the 230 microseconds a read took through them. The pool still hands out
    the connection (checked, counted, sized as for the session). psycopg converts the values and
    names the columns; no SQLAlchemy type conversion runs, so this suits columns psycopg maps
    itself (numbers, text, timestamps). A driver error is raised as SQLAlchemy raises it, so the
    app's handlers answer it alike (503 for an unreachable database); the connection it happened
    on is closed, not returned to the pool.
    """
    dbapi = engine.dialect.loaded_dbapi
    sql = compiled(statement, engine.dialect)
    values = sql.construct_params(parameters)
    connection = None
    done = False
    try:
        connection = engine.raw_connection()
        driver = connection.driver_connection
        driver.autocommit = True
        with driver.cursor(row_factory=namedtuple_row) as cursor:
            row = cursor.execute(sql.string, values).fetchone()
        driver.autocommit = False  # back as the session expects it
        done = True
        return row
    except dbapi.Error as exc:
        raise DBAPIError.instance(
            sql.string,
            values,
            exc,
            dbapi.Error,
            connection_invalidated=connection is not None,
            dialect=engine.dialect,
        ) from exc
    finally:
        if connection is not None:
            if not done:  # failed or interrupted midway, perhaps still in autocommit: never reused
                connection.invalidate()
            connection.close()
{%- endif %}


def create_sqlite_schema() -> None:
    """Create missing tables in an embedded SQLite file; safe when workers race."""
    if not CREATE_SQLITE_TABLES or db.engine.dialect.name != "sqlite":
        return
    with db.engine.begin() as connection:
        for table in db.metadata.sorted_tables:
            connection.execute(CreateTable(table, if_not_exists=True))


def ping() -> None:
    """Raise DatabaseUnavailable when the database does not answer or cannot take writes.

    An SQLite file and its folder (journal files) must be writable; a database server says
    whether this session is read-only (a standby, or default_transaction_read_only).
    """
    try:
        with db.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                connection.execute(text("SELECT 1"))
                read_only = sqlite_read_only(db.engine.url)
            else:
                read_only = connection.execute(text("SHOW transaction_read_only")).scalar() == "on"
    except DBAPIError as exc:
        raise DatabaseUnavailable(describe(exc) or UNAVAILABLE) from exc
    if read_only:
        raise DatabaseUnavailable(READ_ONLY)


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
    """Configure and bind the database, and map connection failures to 503."""
    settings = app.extensions["settings"]
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
        settings.database_url,
        settings.database_pool_size,
        settings.database_connect_timeout,
        settings.database_statement_timeout,
    )
    db.init_app(app)
    for failure in (OperationalError, InterfaceError, ProgrammingError, InternalError):
        app.register_error_handler(failure, _database_unavailable)
    app.register_error_handler(DataError, _value_rejected)
    with app.app_context():
        if db.engine.dialect.name != "sqlite":  # SQLite keeps pre-pinging: it has no server
            guard_pooled_connections(db.engine)
        create_sqlite_schema()
