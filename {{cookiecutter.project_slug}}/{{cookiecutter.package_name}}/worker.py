"""Celery's entry point (``celery --app <this module>:celery_app``); importing it builds nothing."""

import sys
from functools import cache

from celery import Celery
from celery.signals import worker_process_init
from flask import Flask

from . import create_app
from .extensions import db
from .settings import SettingsError


@cache
def flask_app() -> Flask:
    """Build the Flask app, once per process (forked worker processes inherit it)."""
    try:
        return create_app()
    except SettingsError as exc:  # Celery would bury it in a traceback: one line, exit 1
        sys.exit(f"Error: {exc}")


def __getattr__(name: str) -> Celery:
    """Return the Celery app of the Flask app when Celery asks for ``celery_app``."""
    if name != "celery_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    celery: Celery = flask_app().extensions["celery"]
    return celery


@worker_process_init.connect
def _open_own_connections(**_: object) -> None:
    """Give each worker process database connections of its own, none copied from its parent."""
    with flask_app().app_context():
        db.engine.dispose(close=False)
