"""A small OTLP/HTTP traces receiver on loopback, for tests: what the service's exporter sends.

It accepts ``POST /v1/traces`` with an ``application/x-protobuf`` body (gzip or deflate encoded
when the exporter compresses), decodes the ``ExportTraceServiceRequest`` with the
``opentelemetry-proto`` package, answers 200 with an empty ``ExportTraceServiceResponse`` and keeps
each span as a plain ``Span`` record. Use it as a context manager in tests::

    with Receiver() as receiver:
        ...  # the service runs with OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint
        spans = receiver.wait_for(lambda spans: [s for s in spans if s.name == "GET /"], 10)

or as a script (a tier-3 stand-in image runs this same file), each span a JSON line in FILE::

    python otlp.py --port 4318 --out spans.jsonl

It depends on nothing but the standard library and ``opentelemetry-proto`` (and its protobuf).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Generic, Self, TypeVar

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

PATH = "/v1/traces"
CONTENT_TYPE = "application/x-protobuf"
MAX_BODY = 16 * 1024 * 1024  # bytes; the SDK's batches (512 spans by default) are far smaller
LOOPBACK = "127.0.0.1"
T = TypeVar("T")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Span:
    """One received span: ids in hex (``parent_span_id`` empty for a root), kind and status code
    by their short names (``SERVER``, ``PRODUCER``; ``UNSET``, ``OK``, ``ERROR``)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    attributes: dict[str, Any]
    status: str
    status_message: str
    start_ns: int
    end_ns: int


def value(any_value: AnyValue) -> Any:
    """Return an OTLP attribute value as plain Python (bytes as hex)."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(item) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind)


def attributes(pairs) -> dict[str, Any]:
    """Return OTLP key-value pairs as a dict."""
    return {pair.key: value(pair.value) for pair in pairs}


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    """Flatten an export request into spans, each with its resource's ``service.name``."""
    spans = []
    for resource_spans in request.resource_spans:
        service = attributes(resource_spans.resource.attributes).get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=ProtoSpan.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        service=service,
                        attributes=attributes(span.attributes),
                        status=Status.StatusCode.Name(span.status.code).removeprefix(
                            "STATUS_CODE_"
                        ),
                        status_message=span.status.message,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                    )
                )
    return spans


def decoded(body: bytes, encoding: str) -> bytes:
    """Undo the request's Content-Encoding (none, gzip or deflate); ValueError for another."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class Handler(BaseHTTPRequestHandler):
    """Answer the OTLP/HTTP traces endpoint; hand decoded spans to the server's receiver."""

    protocol_version = "HTTP/1.1"  # the exporter keeps its connection open between batches
    server: _Server

    def do_POST(self) -> None:
        """Decode one export request and keep its spans; 4xx for anything else."""
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return self.answer(411 if length == 0 else 413, b"a body of known, bounded length")
        body = self.rfile.read(length)
        if self.path.split("?")[0] != PATH:
            return self.answer(404, b"only " + PATH.encode())
        if self.headers.get_content_type() != CONTENT_TYPE:
            return self.answer(415, b"only " + CONTENT_TYPE.encode())
        try:
            message = decoded(body, self.headers.get("Content-Encoding", ""))
            request = ExportTraceServiceRequest.FromString(message)
        except (ValueError, OSError, EOFError, zlib.error, DecodeError) as exc:
            self.server.receiver.rejected(f"{type(exc).__name__}: {exc}")
            return self.answer(400, str(exc).encode())
        self.server.receiver.keep(spans_of(request))
        return self.answer(200, ExportTraceServiceResponse().SerializeToString(), CONTENT_TYPE)

    def answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        """Send a complete answer with its length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Keep quiet: the receiver's records say what arrived."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Collector


class Collector(Generic[R]):
    """Records a loopback HTTP server keeps as its handler decodes them, on the server's threads.

    The handler calls ``keep`` or ``rejected``; tests read ``records`` or ``wait_for`` some.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0, host: str = LOOPBACK):
        self._server = _Server((host, port), handler)
        self._server.receiver = self
        self._lock = threading.Lock()
        self._records: list[R] = []
        self._errors: list[str] = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """Return the port it listens on."""
        return self._server.server_address[1]

    def start(self) -> Self:
        """Serve on a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def keep(self, records: list[R]) -> None:
        """Keep the records of one accepted request."""
        with self._lock:
            self._records.extend(records)

    def rejected(self, reason: str) -> None:
        """Note a request refused as undecodable."""
        with self._lock:
            self._errors.append(reason)

    @property
    def errors(self) -> list[str]:
        """Return why each refused request was refused."""
        with self._lock:
            return list(self._errors)

    def records(self) -> list[R]:
        """Return every record kept so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def describe(self, record: R) -> str:
        """Return one line about a record, for a timeout's message."""
        return repr(record)[:300]

    def wait_for(
        self, predicate: Callable[[list[R]], T], timeout: float, interval: float = 0.05
    ) -> T:
        """Call ``predicate`` on the records kept so far until it returns something true, at
        most ``timeout`` seconds; return that, or raise TimeoutError listing what arrived."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self.records())
            if result:
                return result
            if time.monotonic() > deadline:
                last = "\n".join(map(self.describe, self.records()[-50:])) or "(nothing)"
                raise TimeoutError(f"not received within {timeout}s; the last received:\n{last}")
            time.sleep(interval)


class Receiver(Collector[Span]):
    """An OTLP/HTTP traces receiver on 127.0.0.1 (a free port unless given), on its own threads.

    ``out``, when given, gets each span as a JSON line as it arrives.
    """

    def __init__(self, port: int = 0, host: str = LOOPBACK, out: IO[str] | None = None):
        super().__init__(Handler, port, host)
        self._out = out
        self.exports = 0  # export requests accepted

    @property
    def endpoint(self) -> str:
        """Return the base URL an exporter's OTEL_EXPORTER_OTLP_ENDPOINT names."""
        return f"http://127.0.0.1:{self.port}"

    def keep(self, records: list[Span]) -> None:
        """Keep the spans of one accepted export request (and write them out, if asked)."""
        with self._lock:
            self.exports += 1
            if self._out is not None:
                for span in records:
                    self._out.write(json.dumps(dataclasses.asdict(span), sort_keys=True) + "\n")
                self._out.flush()
        super().keep(records)

    def spans(self) -> list[Span]:
        """Return every span received so far, in arrival order."""
        return self.records()

    def trace(self, trace_id: str) -> list[Span]:
        """Return the spans received so far of one trace."""
        return [span for span in self.spans() if span.trace_id == trace_id]

    def describe(self, record: Span) -> str:
        """Return one line naming a span, its ids and its service."""
        return describe(record)


def describe(span: Span) -> str:
    """Return one line naming a span, its ids and its service."""
    parent = span.parent_span_id or "-"
    return f"{span.trace_id} {parent}->{span.span_id} {span.kind} {span.name!r} ({span.service})"


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until SIGTERM or SIGINT, writing each span to --out as a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=4318, help="port to bind (default 4318)")
    parser.add_argument("--out", type=Path, required=True, help="file to append JSON lines to")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    with args.out.open("a", encoding="utf-8") as out, Receiver(args.port, args.host, out) as rx:
        print(f"OTLP/HTTP traces receiver on http://{args.host}:{rx.port}{PATH}", file=sys.stderr)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
