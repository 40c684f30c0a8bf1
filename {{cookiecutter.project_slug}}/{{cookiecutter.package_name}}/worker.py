"""The worker's entry point: ``celery --app {{ cookiecutter.package_name }}.worker:celery_app worker``."""

from celery.signals import worker_process_init

from . import create_app
from .extensions import db

flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@worker_process_init.connect
def _open_own_connections(**_) -> None:
    """Give each worker process database connections of its own, none copied from its parent."""
    with flask_app.app_context():
        db.engine.dispose(close=False)
