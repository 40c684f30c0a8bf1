"""A compose stack's traces: its `tracing` profile's Jaeger receives the app's spans.

The stack runs with the profile, and the app services get the OTLP/HTTP endpoint a user writes
in .env (`OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318`), at the port the host-network override
moved Jaeger's receiver to. A request sent with a W3C `traceparent` of the test's own is then
looked up by its trace id in Jaeger's query API, as the UI does (`/api/traces/<id>`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import project_files

from .net import request
from .stack import Stack, kind_of

PROFILE = "tracing"
# The SDK's batch delay (OTEL_BSP_SCHEDULE_DELAY, 5 s by default), shortened for the test.
BATCH_DELAY_MS = "500"
TRACE_TIMEOUT = 60  # seconds for the spans of a request and its task to reach the viewer


@dataclass(frozen=True)
class Span:
    """One span as the viewer's query API shows it."""

    span_id: str
    parent: str
    name: str
    kind: str
    service: str


def viewer(stack: Stack) -> str:
    """Return the stack's Jaeger service (the one its profile adds)."""
    (name,) = [n for n, s in stack.config["services"].items() if kind_of(n, s) == "jaeger"]
    return name


def tracing_override(stack: Stack) -> dict:
    """Return the override giving each app service .env's endpoint, at Jaeger's moved port."""
    endpoint = f"http://{viewer(stack)}:{stack.side_ports[viewer(stack)]['otlp']}"
    environment = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": BATCH_DELAY_MS,
    }
    apps = project_files.app_services(stack.config)
    return {"services": {name: {"environment": environment} for name in apps}}


def new_traceparent() -> tuple[str, str, dict[str, str]]:
    """Return a fresh trace id, a caller's span id and the sampled `traceparent` naming both."""
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, {"traceparent": f"00-{trace_id}-{parent}-01"}


def fetch_trace(stack: Stack, trace_id: str) -> list[Span]:
    """Return the spans of one trace from the viewer's query API (none while it has none)."""
    reply = request(stack.ports[viewer(stack)], "GET", f"/api/traces/{trace_id}")
    if reply.status == 404:
        return []
    assert reply.status == 200, reply
    spans = []
    for trace in reply.json()["data"]:
        services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
        for span in trace["spans"]:
            tags = {tag["key"]: tag["value"] for tag in span["tags"]}
            (parent,) = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"] or [
                ""
            ]
            spans.append(
                Span(
                    span["spanID"],
                    parent,
                    span["operationName"],
                    tags.get("span.kind", ""),
                    services[span["processID"]],
                )
            )
    return spans


def service_name(config: dict, name: str) -> str:
    """Return the OTEL_SERVICE_NAME compose gives an app service."""
    return config["services"][name]["environment"]["OTEL_SERVICE_NAME"]


def request_trace_problems(config: dict, spans: list[Span], caller: str) -> list[str]:
    """Say what the trace of a POST /api/items still lacks.

    The web's SERVER span continues the caller's span and has an INSERT below it; with a Celery
    worker, a PRODUCER span of the web below the server span is the parent of the worker's
    CONSUMER span, which has an UPDATE of its own below it.
    """
    web = service_name(config, project_files.web_service(config))
    by_id = {span.span_id: span for span in spans}

    def below(span: Span, ancestor: Span) -> bool:
        for _ in range(len(spans)):  # a chain of parents is at most the trace long
            if span.parent == ancestor.span_id:
                return True
            if span.parent not in by_id:
                return False
            span = by_id[span.parent]
        return False

    servers = [
        s for s in spans if (s.kind, s.service, s.name) == ("server", web, "POST /api/items")
    ]
    if len(servers) != 1:
        return [f"{len(servers)} SERVER spans 'POST /api/items' of {web}, expected one"]
    (server,) = servers
    problems = []
    if server.parent != caller:
        problems.append(f"the server span's parent is {server.parent!r}, not the caller {caller}")
    if not any(s.name.split()[0] == "INSERT" and s.parent == server.span_id for s in spans):
        problems.append("no INSERT span below the server span")
    for worker in project_files.running(config, "worker"):
        name = service_name(config, worker)
        producers = [s for s in spans if s.kind == "producer" and below(s, server)]
        consumers = [
            s
            for s in spans
            if (s.kind, s.service) == ("consumer", name)
            and s.parent in {p.span_id for p in producers}
        ]
        if len(producers) != 1 or len(consumers) != 1:
            problems.append(
                f"{len(producers)} PRODUCER spans below the request and {len(consumers)} CONSUMER"
                f" spans of {name} under them, expected one each"
            )
        elif not any(s.name.split()[0] == "UPDATE" and below(s, consumers[0]) for s in spans):
            problems.append(f"no UPDATE span below {name}'s CONSUMER span")
    return problems


def await_request_trace(stack: Stack, trace_id: str, caller: str) -> list[Span]:
    """Poll the viewer until the request's trace is complete (request_trace_problems); return
    its spans."""
    deadline = time.monotonic() + TRACE_TIMEOUT
    while True:
        spans = fetch_trace(stack, trace_id)
        problems = ["no span yet"]
        if spans:
            problems = request_trace_problems(stack.config, spans, caller)
        if not problems:
            return spans
        if time.monotonic() > deadline:
            seen = "\n".join(f"  {s}" for s in spans) or "  (none)"
            raise AssertionError(
                f"trace {trace_id} after {TRACE_TIMEOUT} s: {problems}\nspans:\n{seen}\n"
                f"{stack.logs()}"
            )
        time.sleep(0.5)
