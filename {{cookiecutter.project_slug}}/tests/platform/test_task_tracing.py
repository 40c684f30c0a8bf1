"""A task's sending and its run are spans of the request's trace, across the broker.

The spans are read as tests/platform/test_telemetry.py reads them.
"""

from opentelemetry import trace
from opentelemetry.trace import StatusCode

from tests.conftest import writer_of
from tests.platform.test_telemetry import server_span, spans  # noqa: F401  (a fixture)


def only(exporter, kind):
    """Return the one span of ``kind`` the exporter holds."""
    [span] = [s for s in exporter.get_finished_spans() if s.kind == kind]
    return span


def test_a_posted_items_task_continues_the_requests_trace(app, spans):  # noqa: F811
    """It traces the task's sending under the request, its run under the sending, and the run's
    SQL under the run: one trace (the tests run tasks in-process; tier 2 runs a worker).
    """
    assert writer_of(app).post("/api/items", json={"name": "queued"}).status_code == 201
    request = server_span(spans)
    sending = only(spans, trace.SpanKind.PRODUCER)
    running = only(spans, trace.SpanKind.CONSUMER)
    task = "{{ cookiecutter.package_name }}.items.tasks.process_item"
    assert (sending.name, running.name) == (f"send {task}", f"run {task}")
    assert sending.parent is not None and sending.parent.span_id == request.context.span_id
    assert running.parent is not None and running.parent.span_id == sending.context.span_id
    children = [s for s in spans.get_finished_spans() if s.parent == running.context]
    assert any(s.name.startswith("UPDATE") for s in children), [s.name for s in children]
    assert {s.context.trace_id for s in spans.get_finished_spans()} == {request.context.trace_id}


def test_a_task_the_broker_refuses_ends_its_sending_span_with_the_error(make_app, spans):  # noqa: F811
    """It ends the sending span, marked failed, when the broker is down; nothing stays current
    (the autouse fixture in conftest.py checks that after every test).
    """
    app = make_app()
    app.extensions["celery"].conf.update(
        task_always_eager=False, broker_url="redis://127.0.0.1:9/0"
    )
    assert writer_of(app).post("/api/items", json={"name": "stuck"}).status_code == 201
    sending = only(spans, trace.SpanKind.PRODUCER)
    assert sending.status.status_code == StatusCode.ERROR
    assert sending.parent is not None
    assert sending.parent.span_id == server_span(spans).context.span_id
