"""Pooled server connections: one per thread, checked without a round trip, replaced when closed."""

import enum
import gc
import socket
import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, event, text

from {{ cookiecutter.package_name }} import database
from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import ConnectionGuard


class SocketConnection:
    """A stand-in for a driver's connection: one end of a socket pair, the server the other."""

    def __init__(self, sock: socket.socket) -> None:
        """Keep the socket."""
        self.sock = sock

    def fileno(self) -> int:
        """Return the socket's file descriptor, as a server's driver does; fail once closed."""
        if self.sock.fileno() < 0:
            raise OSError("the connection is closed")
        return self.sock.fileno()


@pytest.fixture
def pair():
    """Return a pooled connection and the server's end of it."""
    ours, servers = socket.socketpair()
    yield SocketConnection(ours), servers
    ours.close()
    servers.close()


def test_an_idle_connection_the_server_kept_is_handed_out(pair):
    """It keeps a connection with nothing to read: the server still holds it."""
    connection, _ = pair
    assert not database.closed_by_server(connection)


@pytest.mark.parametrize("last_words", [b"", b"E\x00\x00\x00\x05terminating connection"])
def test_a_connection_the_server_closed_or_spoke_on_is_replaced(pair, last_words):
    """It tells a connection the server closed (or sent a termination notice on) as dropped."""
    connection, server = pair
    server.sendall(last_words)
    server.close()
    assert database.closed_by_server(connection)


def test_a_connection_closed_on_this_side_is_replaced(pair):
    """It tells a connection whose socket is already closed here as dropped."""
    connection, _ = pair
    connection.sock.close()
    assert database.closed_by_server(connection)


def test_a_connection_without_a_socket_is_left_alone():
    """It hands out a connection it cannot look into (an embedded database's)."""
    assert not database.closed_by_server(object())


def test_the_pool_connects_afresh_when_the_server_closed_a_connection(pair):
    """It makes the pool replace the connection (and older ones) instead of using it."""
    connection, server = pair
    database._replace_if_closed(connection, None, None)  # open: handed out as it is
    server.close()
    with pytest.raises(database.InvalidatePoolError):
        database._replace_if_closed(connection, None, None)


# The transaction states a database server's driver tells, by their usual names.
Status = enum.Enum("Status", "IDLE INTRANS INERROR UNKNOWN")


class Returned:
    """A stand-in for a driver's connection coming back to the pool: its status, its rollbacks."""

    def __init__(self, status: Status | None) -> None:
        """Report the status, when there is one (a driver that tells none has no ``info``)."""
        if status is not None:
            self.info = SimpleNamespace(transaction_status=status)
        self.rollbacks = 0

    def rollback(self) -> None:
        """Count the rollback."""
        self.rollbacks += 1


def reset(terminate_only: bool = False) -> SimpleNamespace:
    """Return the pool's reset state for a connection kept (or, terminate_only, closed)."""
    return SimpleNamespace(terminate_only=terminate_only, transaction_was_reset=False)


@pytest.mark.parametrize(
    ("status", "rollbacks"),
    [
        (Status.IDLE, 0),
        (Status.INTRANS, 1),
        (Status.INERROR, 1),
        (Status.UNKNOWN, 1),
        (None, 1),
    ],
)
def test_a_returned_connection_is_rolled_back_unless_idle(status, rollbacks):
    """It rolls back a connection inside a transaction (or whose driver does not say)."""
    connection = Returned(status)
    database._roll_back_if_in_transaction(connection, None, reset())
    assert connection.rollbacks == rollbacks


def test_a_connection_being_closed_is_not_rolled_back():
    """It leaves a connection the pool is closing to its close."""
    connection = Returned(Status.INTRANS)
    database._roll_back_if_in_transaction(connection, None, reset(terminate_only=True))
    assert connection.rollbacks == 0


def test_a_server_pool_hands_out_no_connection_with_a_transaction_left_open(tmp_path):
    """It rolls back what a returned connection left uncommitted: the next user never sees it.

    The server's pool options (its own reset off) and guard run here on an SQLite file.
    """
    options = database.engine_options("dbserver://app@127.0.0.1/app", 1, 3)
    del options["connect_args"]
    engine = create_engine(f"sqlite:///{tmp_path / 'reset.db'}", **options)
    database.guard_pooled_connections(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    raw = engine.raw_connection()
    raw.cursor().execute("INSERT INTO t VALUES (1)")  # the driver opens a transaction
    raw.close()  # back to the pool, uncommitted
    with engine.connect() as connection:  # the same connection: a pool of one
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 0
    engine.dispose()


def test_server_engines_do_not_ping_on_every_checkout():
    """It leaves pool_pre_ping off for a database server: the socket check replaces it."""
    options = database.engine_options("dbserver://app@127.0.0.1/app", 5, 3)
    assert "pool_pre_ping" not in options
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
    url = "dbserver://app@127.0.0.1/app"
    options = database.engine_options(url, settings.database_pool_size, 3)
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


def test_the_connections_of_an_app_dropped_before_the_end_of_a_test_are_closed(make_app):
    """The tests' connection guard closes what an app it never kept opened (no stray failures)."""
    with ConnectionGuard() as guard:
        make_app()  # connects, then nothing keeps the app: a collection may take its engine
        make_app()  # replaces the first where a library keeps the latest app (as its default)
        gc.collect()
        gc.collect()  # the first pass runs the finalizers that free the engine to the second
    assert guard.left == []
