"""Database failures are told apart by the driver's words or SQLSTATE, logged without secrets."""

import logging

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from {{ cookiecutter.package_name }}.platform.database_errors import describe


class DriverError(Exception):
    """A driver's exception, with the SQLSTATE a database server would send."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        """Keep the message and the SQLSTATE."""
        super().__init__(message)
        self.sqlstate = sqlstate


KINDS = [
    (OperationalError, "no such table: items", None, "schema is behind"),
    (ProgrammingError, 'relation "items" does not exist', "42P01", "schema is behind"),
    (OperationalError, "attempt to write a readonly database", None, "read-only"),
    (OperationalError, "cannot execute INSERT in a read-only transaction", "25006", "read-only"),
    (OperationalError, "database is locked", None, "locked"),
    (OperationalError, "canceling statement due to statement timeout", "57014", "in time"),
    (OperationalError, "connection failed: Connection refused", None, "not reachable"),
    (OperationalError, "terminating connection due to administrator command", "57P01", "reach"),
    (OperationalError, "disk I/O error", None, "unavailable"),
]


@pytest.mark.parametrize(("error", "message", "sqlstate", "detail"), KINDS)
def test_each_kind_of_failure_gets_its_own_detail(error, message, sqlstate, detail):
    """It names the kind of failure in the detail a client gets."""
    assert detail in (describe(error("INSERT ...", {}, DriverError(message, sqlstate))) or "")


def test_a_failure_that_is_not_the_databases_is_left_alone():
    """It returns None for an error the database did not cause (a bug: a 500)."""
    error = ProgrammingError("SELEC 1", {}, DriverError('syntax error at "SELEC"', "42601"))
    assert describe(error) is None
    assert describe(IntegrityError("INSERT ...", {}, DriverError("duplicate key", "23505"))) is None


def test_the_logged_message_is_the_drivers_first_line_without_credentials(caplog):
    """It logs the driver's first line only, with any password in it masked."""
    error = OperationalError(
        "SELECT 1",
        {"secret": "parameter"},
        DriverError("could not connect to db://app:hunter2@host/app\nHINT: check it"),
    )
    with caplog.at_level(logging.WARNING):
        describe(error)
        describe(OperationalError("", {}, DriverError("bad dsn: password=hunter2 x")))
    assert [record.getMessage() for record in caplog.records] == [
        "database unreachable: could not connect to db://app:***@host/app",
        "database unavailable: bad dsn: password=*** x",
    ]
