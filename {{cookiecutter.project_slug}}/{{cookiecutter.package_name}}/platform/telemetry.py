"""Trace requests and the calls they make with OpenTelemetry; report errors to Sentry.

The OpenTelemetry SDK reads its own variables (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER,
OTEL_EXPORTER_OTLP_ENDPOINT...): docs/tracing.md. Without an OTLP endpoint nothing is exported.
The app server builds the app in each worker process, after the fork (gunicorn without
preload_app, granian's factory), so the SDK starts there, never in a server's master process.
"""

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind, TraceState
from opentelemetry.util.types import Attributes

if TYPE_CHECKING:  # the SDK is imported by init_app, once SENTRY_DSN is set
    from sentry_sdk.types import Event, Hint

# Either variable names the collector (the SDK's exporter reads them itself).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Probes and scrapes are asked every few seconds: spans of them would drown the requests'.
EXCLUDED_URLS = "/healthz,/readyz,/metrics"
# The spans that may start a trace: a request served{% if cookiecutter.use_celery == "yes" %}, a task sent or run (task_tracing.py){% endif %}.
# Any other span without a parent (the calls of a probe or of a command) is not recorded.
TRACE_STARTERS = frozenset({SpanKind.SERVER{% if cookiecutter.use_celery == "yes" %}, SpanKind.PRODUCER, SpanKind.CONSUMER{% endif %}})
# The span attributes that hold the URL a client asked for: kept without its query string.
URL_ATTRIBUTES = ("http.target", "http.url", "url.full")


class TraceIdFilter(logging.Filter):
    """Stamp each record written inside a span with its ``trace_id`` and ``span_id`` (hex)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the current span's ids, when there is one."""
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True


class StartedByRequests(Sampler):
    """Sample as ``sampler`` does (OTEL_TRACES_SAMPLER), only the traces a TRACE_STARTERS span
    starts: the calls of a probe, of `/metrics` or of a command are never exported."""

    def __init__(self, sampler: Sampler) -> None:
        """Decide, for the traces kept, with ``sampler``."""
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Drop a span that has no parent and starts no request's trace; ask ``sampler`` else."""
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind not in TRACE_STARTERS:
            return SamplingResult(Decision.DROP)
        return self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        """Name this sampler and the one it asks."""
        return f"StartedByRequests({self.sampler.get_description()})"


def without_query(span: Span, status: str, headers: list[tuple[str, str]]) -> None:
    """Drop the query string from a request's span: a client may send a token or a personal
    datum in it. FlaskInstrumentor's response_hook: its request attributes are all set by then."""
    if not isinstance(span, ReadableSpan):  # not recorded
        return
    for name, value in dict(span.attributes or {}).items():
        if name in URL_ATTRIBUTES and isinstance(value, str):
            span.set_attribute(name, value.partition("?")[0])
        elif name == "url.query":
            span.set_attribute(name, "")


def span_exporter() -> SpanExporter | None:
    """Return the OTLP/HTTP exporter when an OTLP endpoint is set, else None: nothing exported."""
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return None
    # Imported here, as the instrumentations in start() and OTLPIntegration in sentry_options: a
    # process that traces nothing (a command, a service without a collector) never loads them.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout and compression from OTEL_*


def start(exporter: SpanExporter) -> None:
    """Start tracing in this process: a provider (resource and sampler from OTEL_*) exporting in
    batches to ``exporter``, and the instrumentations that patch a library for the process.
    """
{%- if cookiecutter.use_redis == "yes" %}
    from opentelemetry.instrumentation.redis import RedisInstrumentor
{%- endif %}
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    provider = TracerProvider()
    # The sampler the provider read from OTEL_TRACES_SAMPLER decides for the traces kept.
    provider.sampler = StartedByRequests(provider.sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # Instrumentations that patch a library for the whole process: applied once per process.
    # uv.lock pins them together and tests/platform/test_telemetry.py checks the spans: skip the
    # range check (the SQLAlchemy one declares "< 2.1" and instruments 2.1 as well).
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)  # engines made after: the app's
{%- if cookiecutter.use_redis == "yes" %}
    RedisInstrumentor().instrument(skip_dep_check=True)  # the calls of every Redis client
{%- endif %}


def tracing() -> bool:
    """Return whether this process traces (started here, or by the tests)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def first_lines(event: "Event", hint: "Hint") -> "Event":
    """Keep the first line of each exception's message: the lines after it may quote the
    request's data (SQLAlchemy's parameters, a database's "Failing row contains ...").
    """
    for exception in event.get("exception", {}).get("values", []):
        exception["value"] = (exception.get("value") or "").split("\n", 1)[0]
    return event


def sentry_options(dsn: str) -> dict[str, Any]:
    """Return sentry_sdk.init's options: errors only, the events carrying the OpenTelemetry trace
    id (spans stay with the OTLP exporter), without personal data, cookies, client addresses,
    request bodies, SQL parameters or local variables. Each field that may hold a user's data is
    named: one left out of ``data_collection`` defaults to collecting.
    """
    from sentry_sdk.integrations.otlp import OTLPIntegration  # loads the OTLP exporter

    return {
        "dsn": dsn,
        "data_collection": {
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "denylist", "terms": ["forwarded", "-ip"]}},
            "http_bodies": [],
            "url_query_params": {"mode": "denylist"},  # the SDK's list of sensitive names
            "database_query_data": False,
            "queues": False,
            "stack_frame_variables": False,
        },
        "max_request_body_size": "never",
        "before_send": first_lines,
        "integrations": [OTLPIntegration(setup_otlp_traces_exporter=False, setup_propagator=False)],
    }


def init_app(app: Flask) -> None:
    """Trace the app's requests and stamp its log lines when an OTLP endpoint is set (the SDK
    started once per process); start Sentry when SENTRY_DSN is set.

    Without an endpoint nothing is instrumented: no span is made, so none costs a request.
    Without SENTRY_DSN the Sentry SDK is never imported: every process and command starts
    without its load.
    """
    if not tracing() and (exporter := span_exporter()) is not None:
        start(exporter)
    if tracing():
        from opentelemetry.instrumentation.flask import FlaskInstrumentor  # as in start()

        FlaskInstrumentor.instrument_app(
            app, excluded_urls=EXCLUDED_URLS, response_hook=without_query
        )
        for handler in logging.getLogger().handlers:  # logs.init_app's, configured just before
            handler.addFilter(TraceIdFilter())
    dsn = app.extensions["settings"].sentry_dsn
    if dsn:
        import sentry_sdk
        from sentry_sdk.integrations.logging import ignore_logger

        sentry_sdk.init(**sentry_options(dsn))
        ignore_logger("opentelemetry")  # a collector down: in the logs, not an event a batch
