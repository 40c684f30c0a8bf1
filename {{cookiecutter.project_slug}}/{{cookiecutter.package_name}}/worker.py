"""The entry point of the worker and the scheduler (``celery --app <this module>:celery_app``).

Importing it builds nothing: the app is built when Celery first asks for ``celery_app``.
"""

from functools import cache

from celery import Celery
from celery.signals import worker_process_init
from flask import Flask

from . import create_app
from .extensions import db


@cache
def flask_app() -> Flask:
    """Build the Flask app, once per process (forked worker processes inherit it)."""
    return create_app()


def __getattr__(name: str) -> Celery:
    """Return the Celery app of the Flask app when Celery asks for ``celery_app``."""
    if name == "celery_app":
        return flask_app().extensions["celery"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@worker_process_init.connect
def _open_own_connections(**_) -> None:
    """Give each worker process database connections of its own, none copied from its parent."""
    with flask_app().app_context():
        db.engine.dispose(close=False)
