"""Run migrations against the app's configured database (``flask db upgrade``)."""

from alembic import context
from flask import current_app


def _database():
    """Return the Flask-SQLAlchemy extension bound to the running app."""
    return current_app.extensions["migrate"].db


def run_offline() -> None:
    """Emit SQL for the migrations without connecting."""
    context.configure(
        url=_database().engine.url.render_as_string(hide_password=False),
        target_metadata=_database().metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Apply the migrations in one transaction per run."""
    options = dict(current_app.extensions["migrate"].configure_args)
    options.setdefault("compare_type", True)
    with _database().engine.connect() as connection:
        context.configure(connection=connection, target_metadata=_database().metadata, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
