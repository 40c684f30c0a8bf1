"""What the tracing scenario needs beyond wrk: an OTLP/HTTP sink and the service's CPU and memory.

The sink stands for a collector on the same host: it answers 200 to each POST /v1/traces and
counts what arrived (requests, bytes, spans by name), so the figures show that the sampled
services exported their spans and how many per request. It decodes each body with the
`opentelemetry-proto` package the traced bake's exporter installs.
"""

import contextlib
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from serve import Service  # serve puts tests/ (tier2) on the path

TRACES_PATH = "/v1/traces"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Received:
    """What a sink was sent: export requests, their bytes, the spans in them by name."""

    requests: int = 0
    bytes: int = 0
    refused: int = 0  # requests to another path or with a body that is no export request
    server_spans: int = 0  # one per traced request: the app server's span of it
    spans: Counter = field(default_factory=Counter)

    def figures(self) -> dict:
        """Return the counts as JSON-ready figures, the span names most frequent first."""
        return {
            "requests": self.requests,
            "bytes": self.bytes,
            "refused": self.refused,
            "spans": sum(self.spans.values()),
            "server_spans": self.server_spans,
            "span_names": dict(self.spans.most_common()),
        }


class Sink:
    """A loopback OTLP/HTTP endpoint that answers 200 to every export and counts it."""

    def __init__(self) -> None:
        """Bind a port of 127.0.0.1 the kernel picks; serve once start() is called."""
        self.received = Received()
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # the exporter keeps its connection, as to a collector

            def do_POST(self) -> None:
                """Read one export, count its spans, answer an empty ExportTraceServiceResponse."""
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    request = ExportTraceServiceRequest.FromString(body)
                except Exception:  # protobuf's DecodeError, and anything else
                    request = None
                spans = None
                if request is not None and self.path == TRACES_PATH:
                    scopes = [scope for rs in request.resource_spans for scope in rs.scope_spans]
                    spans = [span for scope in scopes for span in scope.spans]
                with lock:
                    received.requests += 1
                    received.bytes += len(body)
                    if spans is None:
                        received.refused += 1
                    else:
                        received.spans.update(span.name for span in spans)
                        received.server_spans += sum(
                            span.kind == Span.SpanKind.SPAN_KIND_SERVER for span in spans
                        )
                self.send_response(200 if spans is not None else 400)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args) -> None:
                """Write no line per export."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Return the base URL, as OTEL_EXPORTER_OTLP_ENDPOINT names it (/v1/traces appended)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "Sink":
        """Serve in a thread of this process."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _stat(pid: int) -> list[str]:
    """Return the fields of /proc/PID/stat after the command's name (field 3 on)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(service: Service) -> float:
    """Return the CPU time (user and system) of a server: its master, its live workers and the
    workers it reaped (a worker recycled by max_requests moves into the master's children's time).
    """
    fields = _stat(service.process.pid)  # utime, stime, cutime, cstime are fields 14 to 17
    ticks = sum(int(value) for value in fields[11:15])
    for pid in service.workers():
        with contextlib.suppress(OSError):  # a worker that exited meanwhile is in cutime now
            ticks += sum(int(value) for value in _stat(pid)[11:13])
    return ticks / CLOCK_TICKS
