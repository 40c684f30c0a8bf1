"""Pooled server connections: one per thread, checked before use, rolled back when returned;
reads without a transaction; a command whose database cannot be reached stops with one line."""

import gc
import sqlite3
import threading
import time

import click
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

{% if cookiecutter.use_postgres != "yes" %}from {{ cookiecutter.package_name }} import create_app
{% endif %}from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform import database
from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import ConnectionGuard


def server_settings(**fields) -> Settings:
    """Return settings naming a database server (not validated: its driver need not be here)."""
    fields = {"database_url": "dbserver://app@127.0.0.1/app", "database_pool_size": 5, **fields}
    return Settings.model_construct(**fields)


def test_a_server_pool_hands_out_no_connection_with_a_transaction_left_open(tmp_path):
    """It rolls back what a returned connection left uncommitted: the next user never sees it.

    The server's pool options run here on an SQLite file.
    """
    options = database.engine_options(server_settings(database_pool_size=1))
    del options["connect_args"]
    engine = create_engine(f"sqlite:///{tmp_path / 'reset.db'}", **options)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    raw = engine.raw_connection()
    raw.cursor().execute("INSERT INTO t VALUES (1)")  # the driver opens a transaction
    raw.close()  # back to the pool, uncommitted
    with engine.connect() as connection:  # the same connection: a pool of one
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 0
    engine.dispose()


def test_server_engines_check_each_connection_before_use():
    """It pings a server connection before handing it out: one closed by a restart is replaced."""
    options = database.engine_options(server_settings())
    assert options["pool_pre_ping"] is True
    assert options["pool_recycle"] == 1800


@pytest.mark.parametrize("env", [{}, {"WEB_THREADS": "16"}])
def test_a_worker_whose_threads_all_read_at_once_opens_one_connection_per_thread(
    monkeypatch, tmp_path, env
):
    """Its pool keeps a connection for each thread: round after round, none connects anew.

    A pool smaller than the threads closes each connection beyond it when it is returned, so
    every request past the pool would connect again (for a database server, a costly handshake).
    The server's pool options run here on an SQLite file: the pool behaves the same.
    """
    for name in ("DATABASE_POOL_SIZE", "WEB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(app_env="test")
    size = settings.database_pool_size
    options = database.engine_options(server_settings(database_pool_size=size))
    del options["connect_args"]
    engine = create_engine(f"sqlite:///{tmp_path / 'pool.db'}", **options)
    connects = []
    event.listen(engine, "connect", lambda *args: connects.append(args))
    together = threading.Barrier(settings.web_threads)
    failures = []

    def serve_requests() -> None:
        try:
            for _ in range(3):
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                    together.wait(timeout=30)  # every thread holds a connection at once
                together.wait(timeout=30)  # every thread has returned it: kept, or closed
        except Exception as exc:  # noqa: BLE001  (reported below, with the count)
            failures.append(exc)
            together.abort()

    threads = [threading.Thread(target=serve_requests) for _ in range(settings.web_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    engine.dispose()
    assert not failures, failures
    assert len(connects) == settings.web_threads


def test_an_explicit_pool_size_is_kept(monkeypatch):
    """It keeps DATABASE_POOL_SIZE as set, below the threads too (a cap on connections)."""
    monkeypatch.setenv("DATABASE_POOL_SIZE", "3")
    assert Settings(app_env="test").database_pool_size == 3


def test_an_sqlite_write_waits_for_another_writers_lock_up_to_the_statement_timeout(tmp_path):
    """It waits for a writer holding the SQLite file's lock, DATABASE_STATEMENT_TIMEOUT at most
    (not the driver's 5 s): a lock released in time lets the write through, one held past it
    fails the write as "locked" (a 503). 0 waits an hour."""
    path = tmp_path / "locks.db"

    def engine_waiting(seconds: float):
        url = f"sqlite:///{path}"
        settings = Settings.model_construct(database_url=url, database_statement_timeout=seconds)
        return create_engine(url, **database.engine_options(settings))

    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # a timer commits
    locker.execute("CREATE TABLE t (n INTEGER)")
    patient, hasty = engine_waiting(10), engine_waiting(0.3)
    try:
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        release = threading.Timer(0.5, locker.execute, ("COMMIT",))
        release.start()
        with patient.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))  # waits for the release
        release.join()
        locker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with (
            pytest.raises(OperationalError, match="database is locked"),
            hasty.begin() as connection,
        ):
            connection.execute(text("INSERT INTO t VALUES (2)"))
        assert 0.3 <= time.monotonic() - started < 4
        locker.execute("ROLLBACK")
        assert locker.execute("SELECT n FROM t").fetchall() == [(1,)]
    finally:
        patient.dispose()
        hasty.dispose()
        locker.close()
    unbounded = Settings.model_construct(database_url="sqlite://", database_statement_timeout=0)
    assert database.engine_options(unbounded)["connect_args"] == {"timeout": 3600}


def test_the_connections_of_an_app_dropped_before_the_end_of_a_test_are_closed(make_app):
    """The tests' connection guard closes what an app it never kept opened (no stray failures)."""
    with ConnectionGuard() as guard:
        make_app()  # connects, then nothing keeps the app: a collection may take its engine
        make_app()  # replaces the first where a library keeps the latest app (as its default)
        gc.collect()
        gc.collect()  # the first pass runs the finalizers that free the engine to the second
    assert guard.left == []


def test_a_command_whose_database_cannot_be_opened_stops_with_one_line(run_python, tmp_path):
    """It ends a command whose database cannot be reached with one line on STDERR naming
    DATABASE_URL and the address (no password), and exit status 1: no traceback."""
    url = f"sqlite:///{tmp_path / 'missing' / 'app.db'}"  # a folder that does not exist
    command = {{ '("db", "upgrade")' if cookiecutter.use_postgres == "yes" else '("routes",)' }}
    result = run_python(
        "-m", "flask", "--app", "{{ cookiecutter.package_name }}", *command, APP_ENV="development", DATABASE_URL=url
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    expected = f"Error: DATABASE_URL: the database at {url} is not reachable (unable to open"
    assert line.startswith(expected), line


def test_an_unreachable_server_is_named_by_its_address_without_its_password():
    """It says which variable names the database and where it is, its password masked."""
    url = "dbserver://app:pw-1@127.0.0.1:1/app"
    unreachable = OperationalError("SELECT 1", {}, ConnectionError("connection refused"))
    with pytest.raises(click.ClickException) as caught, database.unreachable_in_one_line(url):
        raise unreachable
    assert caught.value.message == (
        "DATABASE_URL: the database at dbserver://app:***@127.0.0.1:1/app is not reachable "
        "(connection refused)"
    )


def test_other_database_failures_keep_their_traceback():
    """It leaves a failure other than an unreachable database as it is: a bug to read in full."""
    missing_table = OperationalError("SELECT 1", {}, Exception("no such table: items"))
    with pytest.raises(OperationalError), database.unreachable_in_one_line("sqlite://"):
        raise missing_table


def test_a_read_session_sends_no_begin_and_keeps_a_transaction_already_begun(app):
    """It reads in autocommit (no BEGIN, no ROLLBACK at return: a round trip each on a server),
    unless the request already began a transaction, which it keeps."""
    with app.test_request_context():
        session = database.read_session()
        assert session.connection().get_execution_options()["isolation_level"] == "AUTOCOMMIT"
        session.close()
        begun = db.session()
        begun.execute(text("SELECT 1"))  # a transaction began, as a write's would
        assert database.read_session() is begun
        assert "isolation_level" not in begun.connection().get_execution_options()
{%- if cookiecutter.use_postgres != "yes" %}


def test_the_app_builds_its_tables_with_their_indexes(settings_overrides, empty_database_url):
    """It creates each model's table and every index the model declares (a unique one is a
    rule the data keeps), on a database with none."""
    app = create_app({**settings_overrides, "database_url": empty_database_url})
    with app.app_context(), db.engine.connect() as connection:
        inspector = db.inspect(connection)
        for table in db.metadata.sorted_tables:
            made = {index["name"]: index["unique"] for index in inspector.get_indexes(table.name)}
            assert {index.name: index.unique for index in table.indexes}.items() <= made.items()
    with app.app_context():
        db.engine.dispose()
{%- endif %}
