"""Tell database failures apart (unreachable, read-only, locked, schema behind) and log them.

The driver's message is logged as a WARNING, first line only; it names no password or URL
(SQLAlchemy's own text, with the SQL and its parameters, is not logged). Clients get a short
sentence saying which kind of failure it is.
"""

import logging
import os
import re
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import InterfaceError, OperationalError

log = logging.getLogger(__name__)

READ_ONLY = "The database is read-only."
UNAVAILABLE = "The database is unavailable."
# kind: (SQLSTATE prefixes of a database server, message fragments of SQLite and drivers, detail)
KINDS = {
    "schema": (
        ("42P01", "42703"),
        ("no such table", "no such column", "has no column named"),
        "The database schema is behind the code: a table or column is missing.",
    ),
    "read-only": (
        ("25006",),
        ("readonly database", "read-only"),
        READ_ONLY,
    ),
    "locked": (
        ("55P03",),
        ("database is locked", "database table is locked"),
        "The database is busy (locked by another writer); retry shortly.",
    ),
    "too slow": (
        ("57014",),
        ("statement timeout",),
        "The database did not answer in time; retry shortly.",
    ),
    "unreachable": (
        ("08", "57P0"),
        ("unable to open database file", "connection", "could not connect"),
        "The database is not reachable.",
    ),
}
# A URL's password (scheme://user:PASSWORD@host) or a conninfo's password=...: masked in logs.
CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^@\s]*(?=@)|(password\s*=\s*)\S+", re.IGNORECASE)


class DatabaseUnavailable(Exception):
    """The database failed in a known way; the message is safe to show to clients."""


def sqlite_read_only(url: URL) -> bool:
    """Return True when an SQLite database is read-only: by URL, file or folder (journals)."""
    if url.query.get("mode") == "ro":
        return True
    database = (url.database or "").removeprefix("file:")
    if not database or database == ":memory:":
        return False
    path = Path(database).resolve()
    targets = [path.parent] + ([path] if path.exists() else [])
    return not all(os.access(target, os.W_OK) for target in targets)


def driver_message(exc: Exception) -> str:
    """Return the first line of the driver's error, any credentials in it masked."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines() or [type(original).__name__]
    return CREDENTIALS.sub(lambda m: (m.group(1) or m.group(2)) + "***", lines[0])


def kind_of(exc: Exception) -> str | None:
    """Return the kind of a database failure, or None when it is not a known one."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    message = driver_message(exc).lower()
    for kind, (states, fragments, _detail) in KINDS.items():
        if (sqlstate and sqlstate.startswith(states)) or any(f in message for f in fragments):
            return kind
    if isinstance(exc, (OperationalError, InterfaceError)):
        return "unavailable"
    return None


def describe(exc: Exception) -> str | None:
    """Log a known database failure as a WARNING and return its detail for clients, else None."""
    kind = kind_of(exc)
    if kind is None:
        return None
    log.warning("database %s: %s", kind, driver_message(exc), extra={"database_error": kind})
    return KINDS[kind][2] if kind in KINDS else UNAVAILABLE
