"""Celery, built from the Flask app: tasks run in its app context, with its settings and logs.

No task is lost: a task is acknowledged only once it finished (a worker killed mid-task leaves
it to be delivered again), each worker process reserves one task at a time, and every message
is JSON (never pickle). The scheduler (Celery beat) sends the periodic tasks of BEAT_SCHEDULE.
"""

import contextvars
import logging
import uuid

import redis
from celery import Celery, Task
from celery.signals import setup_logging
from flask import Flask, g, has_request_context

log = logging.getLogger(__name__)
# The request id of the task running in this process, for its log lines.
TASK_REQUEST_ID = contextvars.ContextVar("task_request_id", default=None)
# Seconds a Redis call of Celery may take: above kombu's 1 s poll of the queue.
BROKER_SOCKET_TIMEOUT = 5
SOFT_LIMIT_MARGIN = 5  # seconds between the soft time limit and the hard one
# A publish retried twice within about a second, then given up: a request is never held long.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
# The queue the tasks go to: a Redis list of that name holds the messages waiting for a worker.
QUEUE = "celery"
# Seconds the scheduler sleeps at most between two looks at its schedule; it stops answering its
# health check when a look is overdue by twice this (or a minute, whichever is longer).
BEAT_MAX_LOOP_INTERVAL = 30


def beat_schedule(settings) -> dict:
    """Return the periodic tasks the scheduler sends: pending items re-queued."""
    return {
        "requeue-pending-items": {
            "task": f"{__package__}.tasks.requeue_pending_items",
            "schedule": settings.celery_requeue_interval,
            # Not run once the next one is due (a worker was down): one run catches up for all.
            "options": {"expires": settings.celery_requeue_interval},
        }
    }


def celery_config(settings) -> dict:
    """Return Celery's configuration from the app's settings."""
    limit, visibility = settings.celery_task_time_limit, settings.celery_visibility_timeout
    return {
        # Without Redis tasks run in the sending process; the in-memory broker is named with a
        # host only so kombu does not warn that it falls back to one.
        "broker_url": settings.redis_url or "memory://localhost/",
        "task_always_eager": settings.celery_task_always_eager or not settings.redis_url,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,  # tasks write their effect to the database
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.celery_worker_concurrency,
        "task_time_limit": limit,
        "task_soft_time_limit": limit - SOFT_LIMIT_MARGIN,
        "task_default_queue": QUEUE,
        # Redis gives an unacknowledged task (its worker died) to a worker again after this many
        # seconds; workers look for such tasks ten times per timeout.
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, visibility // 10),
            "unacked_restore_throttle": 1,
            "socket_timeout": BROKER_SOCKET_TIMEOUT,
            "socket_connect_timeout": BROKER_SOCKET_TIMEOUT,
        },
        "broker_connection_retry_on_startup": True,
        "task_publish_retry_policy": PUBLISH_RETRY,
        "worker_hijack_root_logger": False,  # create_app configured logging
        "worker_send_task_events": False,
        "beat_schedule": beat_schedule(settings),
        "beat_max_loop_interval": BEAT_MAX_LOOP_INTERVAL,
    }


def request_id_of(request) -> str:
    """Return the request id a task was sent with (in its headers), or a fresh one."""
    given = request.get("request_id") or (request.headers or {}).get("request_id")
    return given or uuid.uuid4().hex


def task_class(app: Flask) -> type[Task]:
    """Return the base class of the tasks: each runs in an app context under its request id."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            """Run the task in an app context, its log lines stamped with its request id."""
            token = TASK_REQUEST_ID.set(request_id_of(self.request))
            try:
                with app.app_context():
                    return self.run(*args, **kwargs)
            finally:
                TASK_REQUEST_ID.reset(token)

    return FlaskTask


def send(task, *args) -> bool:
    """Enqueue ``task`` with the id of the current request or task in its headers; False if not."""
    request_id = g.get("request_id") if has_request_context() else TASK_REQUEST_ID.get()
    try:
        task.apply_async(args=args, headers={"request_id": request_id or uuid.uuid4().hex})
    except Exception as exc:  # noqa: BLE001  (any broker failure: the caller answers anyway)
        log.error("task %s not enqueued: %s: %s", task.name, type(exc).__name__, exc)
        return False
    return True


def _stamp_task_request_id(factory):
    """Return a log record factory adding the running task's request id, when there is one."""

    def make_record(*args, **kwargs):
        record = factory(*args, **kwargs)
        request_id = TASK_REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
        return record

    make_record.stamps_task_request_id = True
    return make_record


def uses_queue(app: Flask) -> bool:
    """Say whether tasks go through the Redis queue (not run at once in the sending process)."""
    return not app.extensions["celery"].conf.task_always_eager


def queue_length(app: Flask) -> int:
    """Return how many tasks wait in the queue for a worker (Redis bounds the wait)."""
    url = app.extensions["celery"].conf.broker_url
    timeout = app.extensions["settings"].redis_timeout
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return client.llen(QUEUE)
    finally:
        client.close()


def readiness_checks(app: Flask) -> dict:
    """Return a check reporting the queue's length (soft: no worker decides web readiness)."""
    if not uses_queue(app):
        return {}
    return {"task_queue": lambda: {"length": queue_length(app)}}


@setup_logging.connect
def _keep_app_logging(**_) -> None:
    """Leave logging as create_app configured it (a receiver here stops Celery's own setup)."""


def init_app(app: Flask) -> None:
    """Build the Celery app from the Flask app's settings; tasks find it as the default one."""
    celery = Celery(app.import_name, task_cls=task_class(app))
    celery.config_from_object(celery_config(app.extensions["settings"]))
    celery.set_default()
    app.extensions["celery"] = celery
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "stamps_task_request_id", False):
        logging.setLogRecordFactory(_stamp_task_request_id(factory))
