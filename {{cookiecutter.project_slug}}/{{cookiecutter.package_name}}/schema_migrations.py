"""Wire Flask-Migrate: ``flask db upgrade`` applies migrations/; readiness checks it was applied."""

from functools import cache
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import Migrate
from sqlalchemy.exc import DBAPIError

from . import database_errors
from .database_errors import UNAVAILABLE, DatabaseUnavailable
from .extensions import db

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

migrate = Migrate()


@cache
def scripts() -> tuple[frozenset[str], frozenset[str]]:
    """Return (head revisions, every revision) of migrations/, read once per process."""
    directory = ScriptDirectory(str(MIGRATIONS))
    known = frozenset(script.revision for script in directory.walk_revisions())
    return frozenset(directory.get_heads()), known


def check_at_head() -> None:
    """Raise DatabaseUnavailable when the database is behind the head of migrations/.

    A database at a revision this code does not know was migrated by a newer release (a rolling
    deployment): this older code keeps serving, as migrations are written to allow.
    """
    try:
        with db.engine.connect() as connection:
            applied = frozenset(MigrationContext.configure(connection).get_current_heads())
    except DBAPIError as exc:
        raise DatabaseUnavailable(database_errors.describe(exc) or UNAVAILABLE) from exc
    heads, known = scripts()
    if applied != heads and applied <= known:
        found = ", ".join(sorted(applied)) or "none"
        raise DatabaseUnavailable(
            f"The database schema is at revision {found}, the code needs "
            f"{', '.join(sorted(heads))}: run the migrations."
        )


def init_app(app: Flask) -> None:
    """Register the ``flask db`` commands on the app."""
    migrate.init_app(app, db, directory=str(MIGRATIONS))
