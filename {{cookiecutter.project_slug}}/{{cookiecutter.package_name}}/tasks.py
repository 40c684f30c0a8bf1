"""Background tasks: the example marks a new item processed, once, however often it runs."""

import logging

from celery import shared_task
from flask import Flask
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import update
from sqlalchemy.exc import InterfaceError, OperationalError

from .celery_app import send
from .extensions import db
from .models import PENDING, PROCESSED, Item, item_created, utc_now

log = logging.getLogger(__name__)
# Errors that pass: a database or broker restarting, a connection dropped. Retried with backoff.
TRANSIENT = (OperationalError, InterfaceError, BrokerError, ConnectionError)


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def process_item(item_id: int) -> bool:
    """Mark a pending item processed; True if this run did it (a repeat changes nothing)."""
    changed = db.session.execute(
        update(Item)
        .where(Item.id == item_id, Item.status == PENDING)
        .values(status=PROCESSED, processed_at=utc_now())
    ).rowcount
    db.session.commit()  # no read caches a pending item: there is no stale copy to drop
    log.info("item processed" if changed else "item not pending", extra={"item_id": item_id})
    return bool(changed)


def _enqueue_processing(app: Flask, item_id: int) -> None:
    """Send the task that processes a new item."""
    send(process_item, item_id)


def init_app(app: Flask) -> None:
    """Process each new item of ``app`` in the background."""
    item_created.connect(_enqueue_processing, sender=app)
