"""The audit trail's periodic task: the scheduler (Celery beat) drops the events older than
AUDIT_RETENTION_DAYS once a day, as ``flask audit prune`` does."""

import logging

from celery import shared_task
from flask import Flask, current_app
from sqlalchemy.exc import InterfaceError, OperationalError

from ..platform.celery_app import schedule
from . import audit

log = logging.getLogger(__name__)
DAY = 86_400  # seconds between two runs
# Errors that pass: a database restarting, a connection dropped. Retried with backoff.
TRANSIENT = (OperationalError, InterfaceError, ConnectionError)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=60, max_retries=5)
def prune_audit_trail() -> int:
    """Drop the events older than AUDIT_RETENTION_DAYS; return how many (a repeat drops none)."""
    days = current_app.extensions["settings"].audit_retention_days
    dropped = audit.prune(days)
    log.info("audit trail pruned", extra={"count": dropped, "days": days})
    return dropped


def init_app(app: Flask) -> None:
    """Have the scheduler prune the audit trail of ``app`` once a day."""
    schedule(app, prune_audit_trail, DAY)
