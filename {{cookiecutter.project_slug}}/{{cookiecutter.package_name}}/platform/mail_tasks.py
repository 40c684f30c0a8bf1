"""Run mail jobs in a Celery task, retried with backoff while the mail server cannot take the
message (down, slow past MAIL_TIMEOUT, or deferring with a 4xx): mail sent while it is down goes
out once it is back, and no request waits for it. The task's arguments are a job's name and an
address: the message, and any token in it, is made by the worker (each try makes it afresh),
so neither the broker nor the worker's log lines ever hold one."""

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
def deliver_mail(name: str, address: str) -> None:
    """Run the mail job ``name`` for ``address`` and deliver its message, if it makes one;
    retried later while the server cannot take it."""
    envelope = mail.run_job(name, address)
    if envelope is not None:
        mail.deliver(current_app.extensions["settings"], envelope)


def queue(app: Flask) -> mail.Queue:
    """Return how ``app`` hands over its mail jobs: to deliver_mail, else (tasks run in the
    sending process, or the broker refused the task) to a thread of this process, once."""

    def enqueue(name: str, address: str) -> None:
        if app.extensions["celery"].conf.task_always_eager or not send(deliver_mail, name, address):
            mail.run_in_background(app, name, address)

    return enqueue
