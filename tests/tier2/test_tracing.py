"""Tier 2: traces and error reports of the served service (use_opentelemetry).

Each served combination with OpenTelemetry runs with its OTLP endpoint on the test's receiver
(``otlp.py``) and its Sentry DSN on the test's fake Sentry (``sentry.py``), web and Celery's
processes alike (conftest's ``service_env``). A POST through nginx is one trace from the server
span to the worker's UPDATE, its log lines stamped with it; an incoming ``traceparent`` is
continued; an unreachable collector slows no request and logs no error per request; a forced
error reaches Sentry once, with the trace id and without the request's body, cookies or the
client's address.
The receiver first proves it decodes what the SDK's exporter sends, in process and as a script.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import project_files
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
from .sentry import Envelope, FakeSentry
from .servers import ServerError, Service, compose_command, free_port, wait_until

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
TASK = "items.tasks.process_item"  # the example task, after the package's name


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


def record_of(service: Service, **fields) -> dict | None:
    """Return the service's first JSON log line with these fields (message, level...), if any."""
    for line in service.lines():
        record = json.loads(line)
        if fields.items() <= record.items():
            return record
    return None


def logged(service: Service, **fields) -> dict:
    """Wait for the service's first JSON log line with these fields; return it."""
    return wait_until(
        lambda: record_of(service, **fields),
        EXPORTED_WITHIN,
        f"a log line with {fields}\n{service.output()}",
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


def status_code(span: otlp.Span) -> int | None:
    """Return a server span's HTTP status (stable or older semantic conventions)."""
    return span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))


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
    line = logged(
        deployment.service, message="item created", item_id=item_id, request_id=request_id
    )
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
    orphans = [s for s in spans if s.parent_span_id not in {"", *(p.span_id for p in spans)}]
    assert not orphans, orphans  # one tree, from the server span
    assert status_code(server) == 201
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
    processed = logged(worker(deployment), message="item processed", item_id=item_id)
    assert processed["request_id"] == request_id
    assert (processed["trace_id"], processed["span_id"]) == (line["trace_id"], consumer.span_id)


@served
def test_an_incoming_traceparent_is_continued(deployment, receiver):
    """It makes the server span a child of the caller's span, in the caller's trace, through
    nginx too; the request id is answered and logged beside it, as without one."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    request_id = f"continued-{uuid.uuid4().hex}"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01", "X-Request-ID": request_id}
    created = requests.post(
        f"{deployment.entry}/api/items", json={"name": "continued"}, headers=headers, timeout=10
    )
    assert created.status_code == 201, created.text
    assert created.headers["X-Request-ID"] == request_id
    spans = receiver.wait_for(
        lambda spans: [s for s in spans if s.trace_id == trace_id and s.kind == "SERVER"],
        EXPORTED_WITHIN,
    )
    server = one(spans, "POST /api/items", "SERVER")
    assert server.parent_span_id == parent_id
    line = logged(deployment.service, message="item created", item_id=created.json()["id"])
    assert (line["request_id"], line["trace_id"], line["span_id"]) == (
        request_id,
        trace_id,
        server.span_id,
    )


QUERY_SECRET = "query-secret-7c2f"  # sent in a query string: never in a span
# Seconds the service's workers get to export what they have ended: ten of their export
# intervals (OTEL_BSP_SCHEDULE_DELAY above).
EXPORT_SETTLE = 1.0
TRACE_STARTERS = {"SERVER", "PRODUCER", "CONSUMER"}  # a request served, a task sent or run
PROBES = ("/healthz", "/readyz", "/metrics")


def new_server_span(receiver: otlp.Receiver, before: int, name: str) -> list[otlp.Span]:
    """Wait for a SERVER span ``name`` among the spans received after the first ``before``, then
    for the service's other exports; return every span received after ``before``."""
    receiver.wait_for(
        lambda spans: [s for s in spans[before:] if (s.kind, s.name) == ("SERVER", name)],
        EXPORTED_WITHIN,
    )
    time.sleep(EXPORT_SETTLE)
    return receiver.spans()[before:]


@served
def test_the_query_string_stays_out_of_the_exported_spans(deployment, receiver):
    """It exports a request's server span with the path the client asked for, not its query
    string (a token may travel in it), through nginx too."""
    before = len(receiver.spans())
    url = f"{deployment.entry}/api/items?limit=1&token={QUERY_SECRET}"
    assert requests.get(url, timeout=TIMEOUT).status_code == 200
    spans = new_server_span(receiver, before, "GET /api/items")
    server = one([s for s in spans if s.kind == "SERVER"], "GET /api/items", "SERVER")
    assert server.attributes.get("http.target", "/api/items") == "/api/items", server.attributes
    leaked = [otlp.describe(s) for s in spans if QUERY_SECRET in json.dumps(s.attributes)]
    assert not leaked, leaked


@served
def test_probes_and_metrics_export_no_span(deployment, receiver):
    """It exports nothing of three rounds of /healthz, /readyz and /metrics, not even the
    readiness checks' database and Redis calls: every trace it exports starts with a request
    served or a task sent or run, and the only request served is the one asked after them."""
    service = deployment.service
    before = len(receiver.spans())
    for _ in range(3):
        for path in PROBES:
            assert requests.get(f"{service.url}{path}", timeout=TIMEOUT).status_code == 200, path
    assert requests.get(f"{service.url}/api/items?limit=1", timeout=TIMEOUT).status_code == 200
    spans = new_server_span(receiver, before, "GET /api/items")
    roots = [s for s in spans if not s.parent_span_id]
    assert {s.kind for s in roots} <= TRACE_STARTERS, "\n".join(map(otlp.describe, roots))
    served_names = [s.name for s in roots if s.kind == "SERVER"]
    assert served_names == ["GET /api/items"], served_names


@pytest.mark.parametrize(
    "combo",
    params([combo for combo in OTEL_COMBINATIONS if combo.selected("use_postgres")]),
    scope="module",
)
def test_a_command_exports_no_span(deployment, receiver):
    """It exports nothing of compose's one-shot migration command, run again with the service's
    OTLP endpoint (as `make demo` runs it): no span under the command's service name."""
    names = []
    for compose_name, service in project_files.one_shot_services(deployment.compose).items():
        names.append(f"{compose_name}-{uuid.uuid4().hex[:8]}")
        command = deployment.new_service(names[-1], OTEL_SERVICE_NAME=names[-1])
        ran = command.run_once(compose_command(service))  # exits after its exporter shut down
        assert ran.returncode == 0, ran.stdout + ran.stderr
    assert names
    time.sleep(EXPORT_SETTLE)
    assert [otlp.describe(s) for s in receiver.spans() if s.service in names] == []


# A request that waited for an export to the unreachable collector would take 0.8 s at least: the
# exporter retries a refused connection after its first backoff, 1 s with 20 % jitter
# (opentelemetry-exporter-otlp-proto-http), until OTEL_EXPORTER_OTLP_TIMEOUT has passed. The
# BatchSpanProcessor exports on its own thread: a request only queues its spans.
WAITED_AT_LEAST = 0.8  # seconds
EXPORT_TIMEOUT = "2"  # seconds an export may take (the SDK's default, 10, only slows the test)
REQUESTS = 50  # to each instance, interleaved
WARM_UP = 5  # requests to each instance before (connections to the database opened)
GIVEN_UP_WITHIN = 20  # seconds for the exporter to log that it gave a batch up


def latencies(urls: list[str], count: int) -> list[list[float]]:
    """GET each URL in turn, ``count`` rounds; return each one's latencies in seconds."""
    timings: list[list[float]] = [[] for _ in urls]
    for _ in range(count):
        for url, timing in zip(urls, timings, strict=True):
            start = time.perf_counter()
            answer = requests.get(url, timeout=TIMEOUT)
            timing.append(time.perf_counter() - start)
            assert answer.status_code == 200, answer.text
    return timings


@served
def test_an_unreachable_collector_slows_no_request_and_logs_no_error_per_request(deployment):
    """It serves as fast with its collector's port closed as with a collector that answers (the
    median within twice, 9 in 10 requests under what one wait for an export would cost), and
    logs the failed exports on the exporter's thread, outside any request, not once per request.

    Both instances run with the same settings, Sentry off, but the endpoint.
    """
    closed = f"http://127.0.0.1:{free_port()}"
    same = {"OTEL_EXPORTER_OTLP_TIMEOUT": EXPORT_TIMEOUT, "SENTRY_DSN": ""}
    up = deployment.extra_service("collector-up", **same)
    down = deployment.extra_service("collector-down", OTEL_EXPORTER_OTLP_ENDPOINT=closed, **same)
    urls = [f"{service.url}/api/items?limit=1" for service in (up, down)]
    latencies(urls, WARM_UP)
    start = down.mark()
    served_up, served_down = latencies(urls, REQUESTS)
    median_up, median_down = statistics.median(served_up), statistics.median(served_down)
    ninth_decile = statistics.quantiles(served_down, n=10)[-1]
    report = f"median {median_down:.3f}s down, {median_up:.3f}s up; 90% under {ninth_decile:.3f}s"
    assert median_down <= 2 * median_up + 0.05, report
    assert ninth_decile < WAITED_AT_LEAST, report

    def errors() -> list[dict]:
        return [r for r in map(json.loads, down.lines(start)) if r["level"] == "ERROR"]

    wait_until(errors, GIVEN_UP_WITHIN, f"the exporter logging a batch given up\n{down.output()}")
    assert all(r["logger"].startswith("opentelemetry.") for r in errors()), errors()
    assert all(r.get("request_id") is None for r in errors()), errors()
    assert len(errors()) < REQUESTS / 5, errors()


# The item name the database is made to refuse, out of band: the service's INSERT then fails with
# an integrity error, which the service does not expect (a bug, not a database outage): a 500.
REFUSED_NAME = "refused-by-the-test"
REFUSE = {  # by database: the statement that makes it refuse the name, the one that stops it
    "postgresql": (
        f"ALTER TABLE items ADD CONSTRAINT tier2_refused CHECK (name <> '{REFUSED_NAME}')",
        "ALTER TABLE items DROP CONSTRAINT tier2_refused",
    ),
    "sqlite": (
        f"CREATE TRIGGER tier2_refused BEFORE INSERT ON items WHEN NEW.name = '{REFUSED_NAME}' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        "DROP TRIGGER tier2_refused",
    ),
}
BODY_MARKER = "body-marker-4f1c9a"  # sent in the request's body: never in an envelope
COOKIE_MARKER = "cookie-marker-b27e05"  # sent as a cookie: never in an envelope
# Request headers that carry the client's address: filtered out of events (personal data).
CLIENT_ADDRESS_HEADERS = {"x-forwarded-for", "x-real-ip", "forwarded"}
QUIET_FOR = 2  # seconds after the event without another: the SDK sends each at once


def holding(envelope: Envelope, marker: str) -> list[str]:
    """Return where in an envelope's JSON items a string holding ``marker`` is, with its start."""

    def walk(node: object, path: str) -> Iterator[str]:
        if isinstance(node, dict):
            for key, child in node.items():
                yield from walk(child, f"{path}.{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                yield from walk(child, f"{path}[{index}]")
        elif isinstance(node, str) and marker in node:
            yield f"{path}: {node[:160]!r}"

    return [
        found
        for number, item in enumerate(envelope.items)
        for found in walk(item.payload, f"item{number}")
    ]


@contextlib.contextmanager
def name_refused(deployment: Deployment) -> Iterator[None]:
    """Make the service's database refuse to store an item named REFUSED_NAME, for a while."""
    refuse, allow = REFUSE["postgresql" if deployment.postgres is not None else "sqlite"]
    deployment.query(refuse)
    try:
        yield
    finally:
        deployment.query(allow)


@served
def test_an_unexpected_error_reaches_sentry_once_with_its_trace_and_no_body(
    deployment, receiver, fake_sentry
):
    """It sends one event for a request that failed unexpectedly (a 500), carrying the trace id
    of the request's server span, and neither the request's body nor its cookies anywhere, nor
    the client's address in the request's headers.

    The database refuses the item's name (a constraint the service does not know about).
    """
    before = len(fake_sentry.records())
    request_id = f"sentry-{uuid.uuid4().hex}"
    with name_refused(deployment):
        answer = requests.post(
            f"{deployment.entry}/api/items",
            json={"name": REFUSED_NAME, "description": BODY_MARKER},
            headers={"X-Request-ID": request_id, "Cookie": f"session={COOKIE_MARKER}"},
            timeout=TIMEOUT,
        )
    assert (answer.status_code, answer.json()["error"]["status"]) == (500, 500), answer.text
    assert BODY_MARKER not in answer.text
    line = logged(deployment.service, level="ERROR", request_id=request_id)
    trace_id = line["trace_id"]
    spans = receiver.wait_for(
        lambda spans: [s for s in spans if s.trace_id == trace_id and s.kind == "SERVER"],
        EXPORTED_WITHIN,
    )
    server = one(spans, "POST /api/items", "SERVER")
    assert (status_code(server), server.status) == (500, "ERROR")
    fake_sentry.wait_for(lambda envelopes: envelopes[before:], SENT_WITHIN)
    time.sleep(QUIET_FOR)
    envelopes = fake_sentry.records()[before:]
    events = [event for envelope in envelopes for event in envelope.of_type("event")]
    assert len(events) == 1, [fake_sentry.describe(envelope) for envelope in envelopes]
    (event,) = events
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    assert event["exception"]["values"][-1]["type"] == "IntegrityError"
    request = event.get("request", {})
    assert not {"data", "cookies"} & set(request), request
    for marker in (BODY_MARKER, COOKIE_MARKER):
        where = [path for envelope in envelopes for path in holding(envelope, marker)]
        leaked = any(marker.encode() in envelope.raw for envelope in envelopes)
        assert not leaked, f"{marker!r} sent to Sentry, in:\n" + "\n".join(where)
    addresses = {
        name: value
        for name, value in request.get("headers", {}).items()
        if name.lower() in CLIENT_ADDRESS_HEADERS and value != "[Filtered]"
    }
    assert not addresses, f"the client's address sent to Sentry: {addresses}"
    assert not fake_sentry.errors
