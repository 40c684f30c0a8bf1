"""A fake Sentry on loopback, for tests: the envelopes the service's sentry-sdk sends.

It accepts ``POST /api/<project>/envelope/`` (gzip-compressed, as sentry-sdk sends it without the
Brotli module; brotli too when the tests have that module), splits each envelope into its
items (a JSON header line, then items of a JSON header line and a payload) and keeps it with its
raw, decompressed bytes: a test can look for what must never be sent anywhere in them.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from http.server import BaseHTTPRequestHandler

from .otlp import Collector

ENVELOPE_PATH = re.compile(r"^/api/(?P<project>\d+)/envelope/$")
MAX_BODY = 16 * 1024 * 1024  # bytes; sentry-sdk trims events far below this


@dataclasses.dataclass(frozen=True)
class Item:
    """One item of an envelope: its header, and its payload parsed as JSON when it is JSON."""

    header: dict
    payload: object


@dataclasses.dataclass(frozen=True)
class Envelope:
    """One envelope as received: its project, header, items and decompressed bytes."""

    project: str
    header: dict
    items: tuple[Item, ...]
    raw: bytes

    def of_type(self, kind: str) -> list[object]:
        """Return the payloads of the items of one type (``event``, ``transaction``...)."""
        return [item.payload for item in self.items if item.header.get("type") == kind]


def decompressed(body: bytes, encoding: str) -> bytes:
    """Undo sentry-sdk's Content-Encoding (none, gzip, or br when Brotli is installed here)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        import brotli  # only when the service's sentry-sdk had it: then install it here too

        return brotli.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def parse(project: str, raw: bytes) -> Envelope:
    """Split an envelope: its header line, then each item's header line and payload.

    A payload is ``length`` bytes when its header says so, else up to the next newline.
    """
    header_line, _, rest = raw.partition(b"\n")
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        if "length" in item_header:
            length = item_header["length"]
            payload, rest = rest[:length], rest[length:].removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        content = item_header.get("content_type", "application/json")
        parsed = json.loads(payload) if content == "application/json" else payload
        items.append(Item(item_header, parsed))
    return Envelope(project, json.loads(header_line), tuple(items), raw)


class Handler(BaseHTTPRequestHandler):
    """Answer Sentry's envelope endpoint; hand parsed envelopes to the server's receiver."""

    protocol_version = "HTTP/1.1"
    server: object

    def do_POST(self) -> None:
        """Keep one envelope; 4xx for anything else."""
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return self.answer(411 if length == 0 else 413, b"{}")
        body = self.rfile.read(length)
        route = ENVELOPE_PATH.match(self.path.split("?")[0])
        if route is None:
            return self.answer(404, b"{}")
        try:
            raw = decompressed(body, self.headers.get("Content-Encoding", ""))
            envelope = parse(route["project"], raw)
        except (ValueError, OSError, EOFError, KeyError) as exc:
            self.server.receiver.rejected(f"{type(exc).__name__}: {exc}")
            return self.answer(400, b"{}")
        self.server.receiver.keep([envelope])
        return self.answer(200, json.dumps({"id": envelope.header.get("event_id")}).encode())

    def answer(self, status: int, body: bytes) -> None:
        """Send a complete JSON answer with its length."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Keep quiet: the envelopes say what arrived."""


class FakeSentry(Collector[Envelope]):
    """A fake Sentry on 127.0.0.1 (a free port), keeping every envelope it is sent."""

    PROJECT = "1"

    def __init__(self) -> None:
        super().__init__(Handler)

    @property
    def dsn(self) -> str:
        """Return a DSN naming this server (any public key; the project ``PROJECT``)."""
        return f"http://publickey@127.0.0.1:{self.port}/{self.PROJECT}"

    def events(self) -> list[dict]:
        """Return every error event received so far."""
        return [event for envelope in self.records() for event in envelope.of_type("event")]

    def describe(self, record: Envelope) -> str:
        """Return one line naming an envelope's items."""
        return f"envelope {record.header.get('event_id')}: {[i.header for i in record.items]}"
