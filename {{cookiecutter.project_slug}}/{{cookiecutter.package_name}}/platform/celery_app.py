"""Celery, built from the Flask app: tasks run in its app context, with its settings and logs."""

import logging
import uuid
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery, Task
from celery.signals import setup_logging
from flask import Flask, g

from ..settings import Settings
from . import redis_client{% if cookiecutter.use_opentelemetry == "yes" %}, task_tracing{% endif %}

log = logging.getLogger(__name__)
# A publish retried twice within about a second, then given up: a request is never held long.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return Celery's configuration from the app's settings (what differs from its defaults)."""
    limit = settings.celery_task_time_limit
    return {
        # Without Redis tasks run in the sending process; the in-memory broker is named with a
        # host only so kombu does not warn that it falls back to one.
        "broker_url": settings.redis_url or "memory://localhost/",
        "task_always_eager": settings.celery_task_always_eager or not settings.redis_url,
        # No task is lost: one is acknowledged once it finished (a worker killed mid-task leaves
        # it to be delivered again), and each worker process reserves one task at a time.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.celery_worker_concurrency,
        "task_time_limit": limit,
        "task_soft_time_limit": limit - 5,  # 5 s to clean up before the hard limit
        # Redis gives an unacknowledged task (its worker died) to a worker again after the
        # visibility timeout; workers look for such tasks every 10 s (kombu's interval, its
        # throttle off). A Redis call may take 5 s, above kombu's 1 s poll of the queue.
        "broker_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout,
            "unacked_restore_throttle": 1,
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
        },
        "broker_connection_retry_on_startup": True,
        "task_publish_retry_policy": PUBLISH_RETRY,
        "beat_schedule": {},  # each feature adds its periodic tasks: schedule() below
        # The scheduler looks at its schedule every 30 s at least; it stops answering its health
        # check when a look is overdue by twice this (or a minute, whichever is longer).
        "beat_max_loop_interval": 30,
    }


def schedule(app: Flask, task: Task[..., object], seconds: float) -> None:
    """Have the scheduler (Celery beat) send ``task`` every ``seconds``; a feature calls this
    from its init_app. A run not started once the next is due (a worker was down) is dropped:
    one run catches up for all."""
    celery: Celery = app.extensions["celery"]
    entry = {"task": task.name, "schedule": seconds, "options": {"expires": seconds}}
    celery.conf.beat_schedule = {**celery.conf.beat_schedule, task.name: entry}


def send(task: Task[..., object], *args: object) -> bool:
    """Enqueue ``task`` with the id of the current request or task in its headers; False if not."""
    try:
        publish(task, args, {"request_id": g.get("request_id")})
    except Exception as exc:  # noqa: BLE001  (any broker failure: the caller answers anyway)
        log.error("task %s not enqueued: %s: %s", task.name, type(exc).__name__, exc)
        return False
    return True

{% if cookiecutter.use_opentelemetry == "yes" %}
@task_tracing.traced_sending
{%- endif %}
def publish(task: Task[..., object], args: tuple[object, ...], headers: dict[str, Any]) -> None:
    """Hand ``task`` to the broker with ``args`` and ``headers``; raise if the broker refuses."""
    task.apply_async(args=args, headers=headers)


def queue_length(app: Flask) -> int:
    """Return how many tasks wait for a worker in the queue (a Redis list of the queue's name)."""
    celery: Celery = app.extensions["celery"]
    conf = celery.conf
    if conf.task_always_eager:
        return 0  # no queue: tasks run at once where they are sent
    options = redis_client.options(app.extensions["settings"])
    client = redis.Redis.from_url(conf.broker_url, **options)
    with client:  # closed after the call (redis-py's __enter__ is not typed: client is)
        return client.llen(conf.task_default_queue)


def readiness_checks(app: Flask) -> dict[str, Callable[[], dict[str, int]]]:
    """Return a check reporting the queue's length (soft: no worker decides web readiness)."""
    if app.extensions["celery"].conf.task_always_eager:
        return {}
    return {"task_queue": lambda: {"length": queue_length(app)}}


@setup_logging.connect
def _keep_app_logging(**_: object) -> None:
    """Leave logging as create_app configured it (a receiver here stops Celery's own setup)."""


def init_app(app: Flask) -> None:
    """Build the Celery app from the Flask app's settings; tasks find it as the default one."""

    class FlaskTask(Task[..., object]):
{%- if cookiecutter.use_opentelemetry == "yes" %}
        @task_tracing.traced_run
{%- endif %}
        def __call__(self, *args: object, **kwargs: object) -> object:
            """Run the task in an app context, its log lines stamped with its request id."""
            headers = self.request.headers or {}
            with app.app_context():
                g.request_id = headers.get("request_id") or uuid.uuid4().hex
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(app.extensions["settings"]))
    celery.set_default()
    app.extensions["celery"] = celery
