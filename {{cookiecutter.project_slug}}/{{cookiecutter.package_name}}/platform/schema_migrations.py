"""Wire Flask-Migrate: ``flask db upgrade`` applies migrations/; readiness checks it was applied."""

from functools import cache
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

from ..extensions import db, migrate
from .database_errors import DatabaseUnavailable

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"  # the project's migrations/


@cache
def scripts() -> ScriptDirectory:
    """Return the scripts of migrations/, read once per process."""
    return ScriptDirectory(str(MIGRATIONS))


def check_at_head() -> None:
    """Raise DatabaseUnavailable when the database is behind the head of migrations/.

    A revision this code does not know was applied by a newer release (a rolling deployment):
    this older code keeps serving, as migrations are written to allow.
    """
    with db.engine.connect() as connection:
        applied = set(MigrationContext.configure(connection).get_current_heads())
    heads = set(scripts().get_heads())
    known = {script.revision for script in scripts().walk_revisions()}
    if applied != heads and applied <= known:
        found = ", ".join(sorted(applied)) or "none"
        raise DatabaseUnavailable(
            f"The database schema is at revision {found}, the code needs "
            f"{', '.join(sorted(heads))}: run the migrations."
        )


def init_app(app: Flask) -> None:
    """Register the ``flask db`` commands on the app."""
    migrate.init_app(app, db, directory=str(MIGRATIONS))
