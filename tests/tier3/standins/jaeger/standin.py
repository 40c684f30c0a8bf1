#!/usr/bin/env python3
"""TEST STAND-IN for jaegertracing/jaeger (v2, all-in-one, memory storage), built only by the
template's tier-3 tests: nothing can be pulled there. It is not Jaeger.

What it stands in for, where the generated compose file and the tests rely on it:
- the OTLP/HTTP receiver (``POST /v1/traces``, protobuf): the tier-2 test receiver, otlp.py,
  copied beside this file, which decodes with opentelemetry-proto and keeps the spans in memory
  (each is also printed to STDOUT as a JSON line, for `docker compose logs`);
- the query service's HTTP port: ``GET /api/traces/<trace id>`` and ``GET /api/services`` answer
  in the JSON shape of Jaeger's own query API (the subset the tests read: trace and span ids,
  operation names, CHILD_OF references, ``span.kind`` and the attributes as tags, each span's
  process with its ``serviceName``). ``GET /`` says there is no UI here;
- the health extension's HTTP port: ``GET /status`` answers 200 once both servers listen;
- the command line: ``--set=<key>=<host:port>`` for those three endpoints, as Jaeger's collector
  configuration takes them (receivers.otlp.protocols.http.endpoint,
  extensions.jaeger_query.http.endpoint, extensions.healthcheckv2.http.endpoint), and their
  defaults on JAEGER_LISTEN_HOST (the image's 0.0.0.0) at 4318, 16686 and 13133.

What it does not stand in for: the UI, OTLP over gRPC (4317), Jaeger's and Zipkin's own
protocols, the sampling endpoints, metrics, any storage but memory, search by tags or time, and
every other configuration key (refused, so a test cannot rely on one silently).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from typing import Any

from otlp import Handler, Receiver, Span

DEFAULT_PORTS = {"otlp": 4318, "query": 16686, "health": 13133}
ENDPOINT_KEYS = {
    "receivers.otlp.protocols.http.endpoint": "otlp",
    "extensions.jaeger_query.http.endpoint": "query",
    "extensions.healthcheckv2.http.endpoint": "health",
}
TAG_TYPES = {bool: "bool", int: "int64", float: "float64", str: "string"}


def endpoints(argv: list[str]) -> dict[str, tuple[str, int]]:
    """Return the (host, port) of each server from ``--set`` arguments over the defaults.

    Raise SystemExit naming an argument the stand-in does not take.
    """
    host = os.environ.get("JAEGER_LISTEN_HOST", "localhost")
    found = {name: (host, port) for name, port in DEFAULT_PORTS.items()}
    words = iter(argv)
    for word in words:
        if word == "--set":
            word = "--set=" + next(words, "")
        key, _, value = word.removeprefix("--set=").partition("=")
        if not word.startswith("--set=") or key not in ENDPOINT_KEYS:
            known = ", ".join(ENDPOINT_KEYS)
            raise SystemExit(f"jaeger stand-in: {word!r} is none of its --set endpoints: {known}")
        address, _, port = value.rpartition(":")
        found[ENDPOINT_KEYS[key]] = (address, int(port))
    return found


def tag(key: str, value: Any) -> dict[str, Any]:
    """Return one attribute as a Jaeger tag (a list or a map as its JSON text)."""
    kind = TAG_TYPES.get(type(value))
    if kind is None:
        return {"key": key, "type": "string", "value": json.dumps(value)}
    return {"key": key, "type": kind, "value": value}


def jaeger_trace(trace_id: str, spans: list[Span]) -> dict[str, Any]:
    """Return one trace in the JSON shape of Jaeger's query API (``data`` of /api/traces/<id>)."""
    processes: dict[str, str] = {}  # service name -> process id
    out = []
    for span in spans:
        process = processes.setdefault(span.service, f"p{len(processes) + 1}")
        references = [
            {"refType": "CHILD_OF", "traceID": trace_id, "spanID": span.parent_span_id}
        ] * bool(span.parent_span_id)
        tags = [tag("span.kind", span.kind.lower())]
        tags += [tag(key, value) for key, value in sorted(span.attributes.items())]
        out.append(
            {
                "traceID": trace_id,
                "spanID": span.span_id,
                "operationName": span.name,
                "references": references,
                "startTime": span.start_ns // 1000,
                "duration": (span.end_ns - span.start_ns) // 1000,
                "tags": tags,
                "logs": [],
                "processID": process,
            }
        )
    return {
        "traceID": trace_id,
        "spans": out,
        "processes": {pid: {"serviceName": name, "tags": []} for name, pid in processes.items()},
    }


class QueryHandler(BaseHTTPRequestHandler):
    """Answer the query port: a trace by its id, the services seen, no UI."""

    server: QueryServer

    def do_GET(self) -> None:
        """Serve /api/traces/<id>, /api/services and a plain page at /."""
        path = self.path.split("?")[0].rstrip("/")
        receiver = self.server.receiver
        if path.startswith("/api/traces/"):
            trace_id = path.removeprefix("/api/traces/").lower().rjust(32, "0")
            spans = receiver.trace(trace_id)
            if not spans:
                error = {"code": 404, "msg": "trace not found"}
                return self.answer(404, {"data": None, "errors": [error]})
            return self.answer(200, {"data": [jaeger_trace(trace_id, spans)], "errors": None})
        if path == "/api/services":
            names = sorted({span.service for span in receiver.spans()})
            return self.answer(200, {"data": names, "total": len(names), "errors": None})
        if path == "":
            return self.answer(200, {"stand-in": "no UI: a tier-3 test stand-in for Jaeger"})
        return self.answer(404, {"data": None, "errors": [{"code": 404, "msg": "not served"}]})

    def answer(self, status: int, body: dict[str, Any]) -> None:
        """Send a JSON answer (as the receiver sends its own)."""
        Handler.answer(self, status, json.dumps(body).encode(), "application/json")

    def log_message(self, format: str, *args) -> None:
        """Keep quiet: STDOUT holds the spans."""


class QueryServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


class HealthHandler(QueryHandler):
    """Answer the health extension's /status (200 while the stand-in serves)."""

    def do_GET(self) -> None:
        """Serve /status."""
        if self.path.split("?")[0] == "/status":
            return self.answer(200, {"status": "StatusOK", "healthy": True})
        return self.answer(404, {"errors": [{"code": 404, "msg": "not served"}]})


def describe() -> str:
    """Return what this stand-in is, on one line."""
    proto = version("opentelemetry-proto")
    return f"tier-3 stand-in for Jaeger: the tests' OTLP receiver (opentelemetry-proto {proto})"


def main(argv: list[str]) -> int:
    """Serve the receiver, the query port and the health port until SIGTERM or SIGINT."""
    if argv == ["--version"]:
        print(describe())
        return 0
    where = endpoints(argv)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    receiver = Receiver(where["otlp"][1], where["otlp"][0], out=sys.stdout)
    servers = []
    with receiver:
        for name, handler in (("query", QueryHandler), ("health", HealthHandler)):
            server = QueryServer(where[name], handler)
            server.receiver = receiver
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        print(describe(), {name: f"{h}:{p}" for name, (h, p) in where.items()}, file=sys.stderr)
        stopped.wait()
        for server in servers:
            server.shutdown()
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
