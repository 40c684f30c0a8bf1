"""PostgreSQL's pooled connections: checked at checkout by a look at their socket, not pinged."""

import socket

import pytest
from sqlalchemy.exc import DisconnectionError

from {{ cookiecutter.package_name }}.platform import connection_checks, database
from {{ cookiecutter.package_name }}.settings import Settings


class Connection:
    """A driver's connection as the check sees it: the file descriptor of its socket."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock

    def fileno(self) -> int:
        """Return the socket's descriptor; raise, as a closed connection does, without one."""
        if self.sock is None:
            raise OSError("the connection is closed")
        return self.sock.fileno()


@pytest.fixture
def pair():
    """Return two connected sockets: the pooled connection's end, and the server's."""
    ours, server = socket.socketpair()
    yield ours, server
    ours.close()
    server.close()


def test_postgres_engines_are_not_pinged_and_other_servers_are():
    """It leaves a ping's round trip out for PostgreSQL alone: its connections are checked here."""
    urls = {"postgresql+psycopg://app@127.0.0.1/app": False, "dbserver://app@127.0.0.1/app": True}
    for url, pinged in urls.items():
        settings = Settings.model_construct(database_url=url, database_pool_size=5)
        assert database.engine_options(settings)["pool_pre_ping"] is pinged


def test_an_idle_connection_is_handed_out(pair):
    """It lets a connection the server sent nothing through."""
    connection_checks.closed_by_server(Connection(pair[0]), None, None)


@pytest.mark.parametrize("goodbye", ["message", "close"])
def test_a_connection_the_server_closed_is_replaced(pair, goodbye):
    """It refuses a connection with something to read (the server's last message, or its end):
    the pool connects anew instead of handing it to a request."""
    ours, server = pair
    if goodbye == "message":
        server.sendall(b"E terminating connection due to administrator command")
    else:
        server.close()
    with pytest.raises(DisconnectionError):
        connection_checks.closed_by_server(Connection(ours), None, None)


def test_a_connection_closed_on_this_side_is_replaced():
    """It refuses a connection that has no socket left."""
    with pytest.raises(DisconnectionError):
        connection_checks.closed_by_server(Connection(None), None, None)
