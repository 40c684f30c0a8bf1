"""Check PostgreSQL's pooled connections at checkout by a look at their socket, not a ping.

SQLAlchemy's pre-ping costs a round trip on every checkout; a connection the server closed (a
restart ends them all) has the server's goodbye, or its end, waiting to be read, which a poll
of the socket sees at once. The pool replaces such a connection before any request uses it.
"""

import select
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from ..extensions import db

BACKEND = "postgresql"


def checked_here(database_url: str) -> bool:
    """Say whether the connections of ``database_url`` are checked here (no pre-ping needed)."""
    return make_url(database_url).get_backend_name() == BACKEND


def closed_by_server(dbapi_connection: Any, record: object, proxy: object) -> None:
    """Refuse a pooled connection with something to read: an idle connection is sent nothing
    until it asks, so the server has closed it. The pool then connects anew (SQLAlchemy's
    documented answer to DisconnectionError raised at checkout)."""
    poll = select.poll()
    try:
        poll.register(dbapi_connection.fileno(), select.POLLIN)
    except Exception as exc:  # the driver closed it already: no socket left to look at
        raise DisconnectionError("the connection is closed") from exc
    if poll.poll(0):
        raise DisconnectionError("the server closed the connection")


def init_app(app: Flask) -> None:
    """Check the app's PostgreSQL connections at each checkout (its engine exists by now)."""
    if checked_here(app.extensions["settings"].database_url):
        with app.app_context():
            event.listen(db.engine, "checkout", closed_by_server)
