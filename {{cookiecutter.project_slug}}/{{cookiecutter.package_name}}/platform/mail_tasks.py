"""Deliver mail from a Celery task, retried with backoff while the mail server cannot take it
(down, slow past MAIL_TIMEOUT, or deferring with a 4xx): mail sent while it is down goes out
once it is back, and no request waits for it."""

import logging

from celery import shared_task
from flask import Flask, current_app

from . import mail
from .celery_app import send

log = logging.getLogger(__name__)


# 12 retries, waiting 1 s, 2 s, 4 s... at most an hour each (jittered): about 8 hours in all.
@shared_task(
    autoretry_for=(mail.Deferred,),
    retry_backoff=True,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=12,
)
def deliver_mail(text: str) -> None:
    """Deliver a message (as text); retried later while the server cannot take it."""
    mail.deliver(current_app.extensions["settings"], text)


def queue(app: Flask) -> mail.Queue:
    """Return how ``app`` hands over its mail: to deliver_mail, else (tasks run in the sending
    process, or the broker refused the task) to a thread of this process, once."""
    settings = app.extensions["settings"]

    def enqueue(text: str) -> None:
        if app.extensions["celery"].conf.task_always_eager or not send(deliver_mail, text):
            mail.send_in_background(settings, text)

    return enqueue
