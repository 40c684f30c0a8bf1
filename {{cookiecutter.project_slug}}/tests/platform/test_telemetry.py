"""Requests, SQL and log lines are traced with OpenTelemetry; errors reach Sentry with the trace.

The spans are read with the SDK's in-memory exporter, added to the provider conftest.py started
(as an OTLP endpoint would start it).
"""

import json
from typing import Any

import pytest
import sentry_sdk
from flask import request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from sqlalchemy import text

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform import telemetry
from tests.conftest import writer_of

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
# Values a request sends that an error report must not carry (named here, far from the source
# lines an event quotes).
BODY_SECRET = "body-secret-value"
# An endpoint nothing listens on: the process starts tracing, and samples (exports) nothing.
ENDPOINT = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    "OTEL_TRACES_SAMPLER": "always_off",
}
COOKIE_SECRET = "cookie-secret-value"
QUERY_SECRET = "query-secret-value"
CLIENT_ADDRESS = "203.0.113.7"


@pytest.fixture
def spans(app):
    """Return an exporter receiving every span this process ends from now on."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # started by conftest.py
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # it takes no more spans


def server_span(exporter):
    """Return the one SERVER span the exporter holds."""
    found = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def test_a_request_makes_a_server_span_named_by_its_route_template(app, spans):
    """It names the request's span by the route, not by the path asked for."""
    app.test_client().get("/api/items/123456")
    assert server_span(spans).name == "GET /api/items/<id:item_id>"


def test_the_sql_of_a_request_is_a_child_span(app, spans):
    """It traces the request's SQL statements as children of the request's span."""
    assert writer_of(app).post("/api/items", json={"name": "traced"}).status_code == 201
    request_span = server_span(spans)
    sql = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.CLIENT]
    assert any(s.parent and s.parent.span_id == request_span.context.span_id for s in sql)
    assert any("INSERT" in s.name or "INSERT" in str(s.attributes) for s in sql)


def test_probes_and_metrics_are_not_traced(app, spans):
    """It exports nothing of /healthz, /readyz and /metrics, not even the checks' own calls:
    they are asked every few seconds."""
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    client.get("/metrics")
    assert spans.get_finished_spans() == ()


def test_calls_outside_a_request_are_not_traced(app, spans):
    """It exports no span that starts a trace of its own outside a request (a command's SQL)."""
    with app.app_context():
        db.session.execute(text("SELECT 1"))
    assert spans.get_finished_spans() == ()


def test_the_query_string_stays_out_of_the_request_span(app, spans):
    """It keeps the path of the request's URL on its span, without the query string."""
    app.test_client().get(f"/api/items?limit=1&token={QUERY_SECRET}")
    span = server_span(spans)
    assert QUERY_SECRET not in json.dumps(dict(span.attributes or {}))
    assert span.attributes is not None and span.attributes["http.target"] == "/api/items"


def test_an_incoming_traceparent_is_continued(app, spans):
    """It keeps the caller's trace id and makes the caller's span the parent."""
    header = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    app.test_client().get("/api/items", headers={"traceparent": header})
    span = server_span(spans)
    assert trace.format_trace_id(span.context.trace_id) == CALLER_TRACE
    assert span.parent is not None
    assert trace.format_span_id(span.parent.span_id) == CALLER_SPAN


def test_log_lines_in_a_request_carry_its_trace_and_span_ids(capsys, make_app):
    """It stamps a JSON line written inside the request with the request span's ids."""
    app = make_app()
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    @app.get("/log-something")
    def log_something():
        app.logger.info("inside a span")
        return {}

    app.test_client().get("/log-something", headers={"X-Request-ID": "req-1"})
    exporter.shutdown()
    span = server_span(exporter)
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    [line] = [line for line in out if line["message"] == "inside a span"]
    assert line["request_id"] == "req-1"
    assert line["trace_id"] == trace.format_trace_id(span.context.trace_id)
    assert line["span_id"] == trace.format_span_id(span.context.span_id)


def test_nothing_is_exported_without_an_endpoint(monkeypatch):
    """It builds no exporter unless an OTLP endpoint is set."""
    for name in telemetry.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert telemetry.span_exporter() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert isinstance(telemetry.span_exporter(), OTLPSpanExporter)


# An app built without an OTLP endpoint, then one built after the variables (JSON in argv) set it;
# neither with SENTRY_DSN.
TRACING = """
import json, os, sys
from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform import telemetry
loaded = {"opentelemetry.exporter.otlp.proto.http", "opentelemetry.instrumentation.flask"}
for endpoint in (dict(), json.loads(sys.argv[1])):
    os.environ.update(endpoint)
    create_app({"app_env": "test", "secret_key": "s" * 40, "database_url": "sqlite://"})
    print(telemetry.tracing(), loaded <= set(sys.modules), loaded.isdisjoint(sys.modules))
print("sentry_sdk" in sys.modules)
"""


def test_a_process_traces_only_with_an_endpoint(run_python):
    """It instruments nothing without an OTLP endpoint: no span is made, none costs a request,
    and the process never loads the OTLP exporter nor the instrumentations; once an endpoint is
    set, an app built then loads and starts both. Without SENTRY_DSN it never loads the Sentry
    SDK."""
    result = run_python("-c", TRACING, json.dumps(ENDPOINT))
    printed = [line for line in result.stdout.splitlines() if not line.startswith("{")]  # no log
    expected = ["False False True", "True True False", "False"]
    assert printed == expected, result.stdout + result.stderr


class Recorder(Transport):
    """Keep the events Sentry would send (sentry-sdk's `transport` option)."""

    def __init__(self) -> None:
        """Start with no events."""
        super().__init__()
        self.events: list[Any] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        """Keep the envelope's event, if it holds one."""
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


@pytest.fixture
def sentry():
    """Start Sentry as SENTRY_DSN does, into a recorder; stop it after the test."""
    recorder = Recorder()
    options = telemetry.sentry_options("https://key@sentry.example.invalid/1")
    sentry_sdk.init(**options, transport=recorder)
    yield recorder
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def test_an_error_reaches_sentry_with_its_trace_id_and_no_body(make_app, spans, sentry):
    """It sends one event for an exception, with the request's trace id, its message's first line,
    and no body, local variables, cookies or client address.
    """
    app = make_app()

    @app.get("/boom")  # a GET: every bake takes it without a form token
    def boom():
        note = request.get_json()["note"]  # a local variable holding the body's value
        raise RuntimeError(f"forced\nFailing row contains ({note})")  # as a database says

    client = app.test_client()
    client.set_cookie("session", COOKIE_SECRET)
    forwarded = {"X-Forwarded-For": CLIENT_ADDRESS}
    assert client.get("/boom", json={"note": BODY_SECRET}, headers=forwarded).status_code == 500
    sentry_sdk.flush()
    [event] = sentry.events
    trace_id = trace.format_trace_id(server_span(spans).context.trace_id)
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    assert event["request"]["url"].endswith("/boom")  # the request is described...
    assert "data" not in event["request"]  # ...without its body
    assert event["exception"]["values"][-1]["value"] == "forced"
    assert BODY_SECRET not in json.dumps(event)
    assert COOKIE_SECRET not in json.dumps(event)
    assert CLIENT_ADDRESS not in json.dumps(event)


def test_without_a_dsn_sentry_is_not_started(settings_overrides):
    """It leaves the Sentry SDK uninitialised while SENTRY_DSN is empty."""
    create_app({**settings_overrides, "sentry_dsn": ""})
    assert not sentry_sdk.is_initialized()
