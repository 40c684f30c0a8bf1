"""Background tasks: the example marks a new item processed, once, however often it runs."""

import logging
from datetime import timedelta

from celery import shared_task
from flask import Flask, current_app
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from ..extensions import db
from ..platform.celery_app import queue_length, schedule, send
from ..platform.database import rows_changed
from ..platform.timestamps import utc_now
from .models import PENDING, PROCESSED, Item, item_created

log = logging.getLogger(__name__)
# Errors that pass: a database or broker restarting, a connection dropped. Retried with backoff.
TRANSIENT = (OperationalError, InterfaceError, BrokerError, ConnectionError)
REQUEUE_BATCH = 500  # items re-queued at most per run of the scheduler's task


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=60, max_retries=5)
def process_item(item_id: int) -> bool:
    """Mark a pending item processed; True if this run did it (a repeat changes nothing)."""
    result = db.session.execute(
        update(Item)
        .where(Item.id == item_id, Item.status == PENDING)
        .values(status=PROCESSED, processed_at=utc_now())
    )
    changed = rows_changed(result)
    db.session.commit()  # no read caches a pending item: there is no stale copy to drop
    log.info("item processed" if changed else "item not pending", extra={"item_id": item_id})
    return bool(changed)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=60)
def requeue_pending_items() -> int:
    """Send again the task of each item pending longer than CELERY_REQUEUE_AFTER; return how many.

    Their first send failed (the broker was down) or Redis lost the message. Nothing is sent
    while tasks wait in the queue: the workers are behind or down, and copies would only add.
    """
    waiting = queue_length(current_app)
    if waiting:
        log.info("pending items not re-queued: tasks wait in the queue", extra={"queued": waiting})
        return 0
    after = current_app.extensions["settings"].celery_requeue_after
    stale = db.session.scalars(
        select(Item.id)
        .where(Item.status == PENDING, Item.created_at < utc_now() - timedelta(seconds=after))
        .order_by(Item.id)
        .limit(REQUEUE_BATCH)
    ).all()
    db.session.rollback()  # end the read: no transaction stays open while the tasks are sent
    sent = sum(send(process_item, item_id) for item_id in stale)
    log.info("pending items re-queued", extra={"count": sent, "found": len(stale)})
    return sent


def init_app(app: Flask) -> None:
    """Process each new item of ``app`` in the background; re-queue the pending ones every
    CELERY_REQUEUE_INTERVAL."""
    item_created.connect(lambda _, item_id: send(process_item, item_id), sender=app, weak=False)
    schedule(app, requeue_pending_items, app.extensions["settings"].celery_requeue_interval)
