"""Trace a task's sending and its run with OpenTelemetry, in one trace across the broker.

A task's trace is carried in its headers, beside the request id (celery_app.py): its sending and
its run are spans made here, with the tracing API, instead of the Celery instrumentation, whose
sending span stays open and attached when the broker refuses the task. Celery forks its pool from
a process holding the app: the SDK restarts its thread in each child.
"""

import functools
from collections.abc import Callable
from typing import Any

from celery import Task
from opentelemetry import propagate, trace

# celery_app.publish: hands a task, its arguments and its headers to the broker.
Publish = Callable[[Task[..., object], tuple[object, ...], dict[str, Any]], None]


def traced_sending(publish: Publish) -> Publish:
    """Trace each sending of a task, and put its trace in the task's headers.

    The span ends, with the error recorded, when the send raises (the broker is down).
    """

    @functools.wraps(publish)
    def traced(task: Task[..., object], args: tuple[object, ...], headers: dict[str, Any]) -> None:
        tracer = trace.get_tracer(__name__)
        with tracer.start_as_current_span(f"send {task.name}", kind=trace.SpanKind.PRODUCER):
            propagate.inject(headers)
            publish(task, args, headers)

    return traced


def traced_run(call: Callable[..., object]) -> Callable[..., object]:
    """Trace each run of a task (its ``__call__``) in the trace its headers carry, or a new one."""

    @functools.wraps(call)
    def traced(task: Task[..., object], *args: object, **kwargs: object) -> object:
        tracer = trace.get_tracer(__name__)
        parent = propagate.extract(task.request.headers or {})
        with tracer.start_as_current_span(
            f"run {task.name}", context=parent, kind=trace.SpanKind.CONSUMER
        ):
            return call(task, *args, **kwargs)

    return traced
