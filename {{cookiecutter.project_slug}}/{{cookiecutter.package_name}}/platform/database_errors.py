"""Tell database failures apart (unreachable, read-only, locked, too slow, schema behind).

Each is logged as a WARNING with the first line of the driver's message, credentials masked
(not SQLAlchemy's text, which holds the SQL and its parameters); clients get a short sentence.
"""

import logging
import re

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

# kind: (SQLSTATE prefixes of a database server, message fragments of SQLite and drivers)
KINDS = {
    "schema": (("42P01", "42703"), ("no such table", "no such column", "has no column named")),
    "read-only": (("25006",), ("readonly database", "read-only")),
    "locked": (("55P03",), ("database is locked", "database table is locked")),
    "too slow": (("57014",), ("statement timeout",)),
    "unreachable": (
        ("08", "57P0"),
        ("unable to open database file", "connection", "could not connect"),
    ),
}
DETAILS = {  # what a client is told of each kind
    "schema": "The database schema is behind the code: a table or column is missing.",
    "read-only": "The database is read-only.",
    "locked": "The database is busy (locked by another writer); retry shortly.",
    "too slow": "The database did not answer in time; retry shortly.",
    "unreachable": "The database is not reachable.",
    "unavailable": "The database is unavailable.",
}
# A URL's password (scheme://user:PASSWORD@host) or a conninfo's password=...: masked in logs.
CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^@\s]*(?=@)|(password\s*=\s*)\S+", re.IGNORECASE)


class DatabaseUnavailable(Exception):
    """The database failed in a known way; the message is safe to show to clients."""


def classify(exc: DBAPIError) -> tuple[str, str]:
    """Return the kind of a database failure and the first line of its message, masked."""
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    message = CREDENTIALS.sub(lambda m: (m.group(1) or m.group(2)) + "***", lines[0])
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    matches = (
        kind
        for kind, (states, fragments) in KINDS.items()
        if sqlstate.startswith(states) or any(f in message.lower() for f in fragments)
    )
    return next(matches, "unavailable"), message


def describe(exc: DBAPIError) -> str | None:
    """Log a known database failure as a WARNING and return its detail for clients, else None."""
    kind, message = classify(exc)
    if kind == "unavailable" and not isinstance(exc, (OperationalError, InterfaceError)):
        return None  # not a failure of the database itself
    log.warning("database %s: %s", kind, message, extra={"database_error": kind})
    return DETAILS[kind]
