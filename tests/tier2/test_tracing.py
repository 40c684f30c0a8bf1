"""Tier 2: traces and error reports of the served service (use_opentelemetry).

Each served combination with OpenTelemetry runs with its OTLP endpoint on the test's receiver
(``otlp.py``) and its Sentry DSN on the test's fake Sentry (``sentry.py``), web and Celery's
processes alike (conftest's ``service_env``). A POST through nginx is one trace from the server
span to the worker's UPDATE, its log lines stamped with it; an incoming ``traceparent`` is
continued; an unreachable collector slows no request and logs no error per request; a forced
error reaches Sentry once, with the trace id and without the request's body or cookies.
The receiver first proves it decodes what the SDK's exporter sends, in process and as a script.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from combinations import SERVED, params
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from . import celery_processes as celery
from . import otlp
from .deployment import Deployment
from .sentry import FakeSentry
from .servers import ServerError, Service, free_port, wait_until

RECEIVED_WITHIN = 10  # seconds


def export_two_spans(endpoint: str, compression: Compression) -> dict[str, str]:
    """Export a parent span and its child with the SDK's OTLP/HTTP exporter; return their ids."""
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=compression)
    provider = TracerProvider(resource=Resource.create({"service.name": "receiver-check"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    try:
        with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
            attributes = {"n": 3, "ok": True, "tags": ["a", "b"]}
            with tracer.start_as_current_span("child", attributes=attributes) as child:
                pass
            parent.set_status(StatusCode.ERROR, "broken")
    finally:
        provider.shutdown()
    return {
        "trace": f"{parent.get_span_context().trace_id:032x}",
        "parent": f"{parent.get_span_context().span_id:016x}",
        "child": f"{child.get_span_context().span_id:016x}",
    }


def check_received(spans: list[otlp.Span], ids: dict[str, str]) -> None:
    """Check the receiver kept both spans as the SDK made them."""
    by_name = {span.name: span for span in spans}
    parent, child = by_name["parent"], by_name["child"]
    assert {span.trace_id for span in spans} == {ids["trace"]}
    assert (parent.span_id, parent.parent_span_id) == (ids["parent"], "")
    assert (child.span_id, child.parent_span_id) == (ids["child"], ids["parent"])
    assert (parent.kind, child.kind) == ("SERVER", "INTERNAL")
    assert (parent.status, parent.status_message, child.status) == ("ERROR", "broken", "UNSET")
    assert child.attributes == {"n": 3, "ok": True, "tags": ["a", "b"]}
    assert {span.service for span in spans} == {"receiver-check"}
    assert child.start_ns <= child.end_ns <= parent.end_ns


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_receiver_decodes_what_the_sdk_exports(compression):
    """It keeps each span the SDK's exporter sends, plain or gzip, with its ids and parents."""
    with otlp.Receiver() as receiver:
        ids = export_two_spans(receiver.endpoint, compression)
        spans = receiver.wait_for(lambda spans: len(spans) == 2 and spans, RECEIVED_WITHIN)
    check_received(spans, ids)
    assert receiver.exports == 2 and not receiver.errors


def test_the_receiver_refuses_what_is_not_an_otlp_export():
    """It answers 404, 415 or 400 to another path, content type or an undecodable body."""
    protobuf = {"Content-Type": otlp.CONTENT_TYPE}
    with otlp.Receiver() as receiver:
        url = f"{receiver.endpoint}/v1/traces"
        statuses = [
            requests.post(f"{receiver.endpoint}/v1/logs", data=b"x", headers=protobuf, timeout=5),
            requests.post(url, json={"resourceSpans": []}, timeout=5),
            requests.post(url, data=b"\xff\xff\xff", headers=protobuf, timeout=5),
            requests.post(
                url, data=b"x", headers={**protobuf, "Content-Encoding": "gzip"}, timeout=5
            ),
        ]
    assert [answer.status_code for answer in statuses] == [404, 415, 400, 400]
    assert len(receiver.errors) == 2 and receiver.exports == 0 and not receiver.spans()


def listening(port: int, process: subprocess.Popen) -> bool:
    """Say whether something accepts connections on the port; fail if the process exited."""
    if process.poll() is not None:
        raise ServerError(f"the receiver exited with {process.returncode}: {process.stderr.read()}")
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def test_the_receiver_runs_as_a_script_writing_json_lines(tmp_path: Path):
    """It serves on the given port and writes each span to --out as a JSON line until SIGTERM."""
    port, out = free_port(), tmp_path / "spans.jsonl"
    script = Path(otlp.__file__)
    argv = [sys.executable, str(script), "--port", str(port), "--out", str(out)]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as process:
        try:
            wait_until(lambda: listening(port, process), 30, "the receiver listening")
            ids = export_two_spans(f"http://127.0.0.1:{port}", Compression.Gzip)
            wait_until(lambda: len(out.read_text().splitlines()) == 2, RECEIVED_WITHIN, "2 lines")
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    assert code == 0
    spans = [otlp.Span(**json.loads(line)) for line in out.read_text().splitlines()]
    check_received(spans, ids)


# --------------------------------------------------------------------------- the served service

OTEL_COMBINATIONS = [combo for combo in SERVED if combo.selected("use_opentelemetry")]
served = pytest.mark.parametrize("combo", params(OTEL_COMBINATIONS), scope="module")
TIMEOUT = 10  # seconds for one request
EXPORTED_WITHIN = 20  # seconds from a request to its spans received (batches every 100 ms here)
SENT_WITHIN = 20  # seconds from a request to its Sentry event received
TASK = "tasks.process_item"  # the example task, after the package's name


@pytest.fixture(scope="module")
def receiver() -> Iterator[otlp.Receiver]:
    """Run the module's OTLP/HTTP receiver."""
    with otlp.Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def fake_sentry() -> Iterator[FakeSentry]:
    """Run the module's fake Sentry."""
    with FakeSentry() as running:
        yield running


@pytest.fixture(scope="module")
def service_env(receiver: otlp.Receiver, fake_sentry: FakeSentry) -> dict[str, str]:
    """Point every process of the deployment at the receiver and the fake Sentry."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between exports (the SDK's default: 5000)
        "OTEL_SERVICE_NAME": "traced-service",
        "SENTRY_DSN": fake_sentry.dsn,
    }


def record_of(service: Service, message: str, **fields) -> dict | None:
    """Return the service's JSON log line with this message and these fields, if written yet."""
    for line in service.lines():
        record = json.loads(line)
        if record.get("message") == message and fields.items() <= record.items():
            return record
    return None


def logged(service: Service, message: str, **fields) -> dict:
    """Wait for the service's JSON log line with this message and these fields; return it."""
    return wait_until(
        lambda: record_of(service, message, **fields),
        EXPORTED_WITHIN,
        f"a log line {message!r} with {fields}\n{service.output()}",
    )


def one(spans: list[otlp.Span], name: str, kind: str) -> otlp.Span:
    """Return the one span of this name and kind among ``spans``."""
    matching = [span for span in spans if (span.name, span.kind) == (name, kind)]
    assert len(matching) == 1, f"{len(matching)} {kind} spans {name!r} in:\n" + "\n".join(
        map(otlp.describe, spans)
    )
    return matching[0]


def children(spans: list[otlp.Span], parent: otlp.Span, verb: str) -> list[otlp.Span]:
    """Return the SQL spans of a statement verb (INSERT, UPDATE...) whose parent is ``parent``."""
    return [s for s in spans if s.parent_span_id == parent.span_id and s.name.startswith(verb)]


def expected_names(deployment: Deployment) -> set[str]:
    """Return the names of the spans a POST of an item makes, web and worker."""
    names = {"POST /api/items"}
    if deployment.combo.selected("use_celery"):
        task = f"{deployment.package}.{TASK}"
        names |= {f"send {task}", f"run {task}"}
    return names


def worker(deployment: Deployment) -> Service:
    """Return the deployment's Celery worker."""
    prefix = celery.service_name(deployment, "worker") + "-"
    (found,) = [p for p in deployment.extra if p.logs.parent.name.startswith(prefix)]
    return found


@served
def test_a_post_is_one_trace_from_the_entry_to_the_workers_update(deployment, receiver):
    """It exports, in one trace: the server span, its INSERT, and with Celery the PRODUCER span
    of the send, the worker's CONSUMER span under it and the UPDATE under that; the web's and
    the worker's log lines of the item carry that trace, each with the span it was written in.
    """
    request_id = f"traced-{uuid.uuid4().hex}"
    created = requests.post(
        f"{deployment.entry}/api/items",
        json={"name": "traced"},
        headers={"X-Request-ID": request_id},
        timeout=TIMEOUT,
    )
    assert created.status_code == 201, created.text
    assert created.headers["X-Request-ID"] == request_id
    item_id = created.json()["id"]
    line = logged(deployment.service, "item created", item_id=item_id, request_id=request_id)
    names = expected_names(deployment)
    spans = receiver.wait_for(
        lambda spans: (
            names <= {s.name for s in spans if s.trace_id == line["trace_id"]}
            and receiver.trace(line["trace_id"])
        ),
        EXPORTED_WITHIN,
    )
    server = one(spans, "POST /api/items", "SERVER")
    assert server.parent_span_id == "" and server.service == "traced-service"
    assert (
        server.attributes.get(
            "http.response.status_code", server.attributes.get("http.status_code")
        )
        == 201
    )
    assert line["span_id"] == server.span_id
    assert [s.kind for s in children(spans, server, "INSERT")] == ["CLIENT"], spans
    if not deployment.combo.selected("use_celery"):
        return
    task = f"{deployment.package}.{TASK}"
    producer = one(spans, f"send {task}", "PRODUCER")
    consumer = one(spans, f"run {task}", "CONSUMER")
    assert producer.parent_span_id == server.span_id
    assert consumer.parent_span_id == producer.span_id
    assert [s.kind for s in children(spans, consumer, "UPDATE")] == ["CLIENT"], spans
    processed = logged(worker(deployment), "item processed", item_id=item_id)
    assert processed["request_id"] == request_id
    assert (processed["trace_id"], processed["span_id"]) == (line["trace_id"], consumer.span_id)
