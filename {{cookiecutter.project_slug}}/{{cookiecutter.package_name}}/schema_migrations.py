"""Wire Flask-Migrate: ``flask db upgrade`` applies migrations/ to the configured database."""

from pathlib import Path

from flask import Flask
from flask_migrate import Migrate

from .extensions import db

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

migrate = Migrate()


def init_app(app: Flask) -> None:
    """Register the ``flask db`` commands on the app."""
    migrate.init_app(app, db, directory=str(MIGRATIONS))
