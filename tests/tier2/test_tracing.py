"""Tier 2: traces and error reports of the served service (use_opentelemetry).

The test's own OTLP/HTTP receiver (``otlp.py``) first proves it decodes what the OpenTelemetry
SDK's exporter sends, in process and run as a script.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from . import otlp
from .servers import ServerError, free_port, wait_until

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
