#!/usr/bin/python3
"""TEST STAND-IN for axllent/mailpit, built only by the template's tier-3 tests: nothing can be
pulled there. It is not Mailpit.

What it stands in for, where the generated compose file and the tests rely on it:
- the SMTP server: Debian's aiosmtpd, accepting every mail (no authentication, no TLS) and keeping
  it in memory (one line per mail on STDOUT, for `docker compose logs`);
- the HTTP API, in the JSON shape of Mailpit's own (the subset the tests read):
  ``GET /api/v1/messages`` (newest first: ``total``, ``count``, ``messages`` with each message's
  ``ID``, ``From``, ``To``, ``Subject``, ``Created``, ``Size``, ``Snippet``) and
  ``GET /api/v1/message/<ID>`` (with the ``Text`` and ``HTML`` bodies; the ID ``latest`` names the
  newest message, as Mailpit's does and docs/auth.md's walk reads it); ``GET /livez`` and
  ``GET /readyz`` answer 200; ``GET /`` says there is no UI here;
- the command line: no arguments to serve, ``readyz`` (the compose healthcheck: exit 0 when the
  HTTP server answers /readyz) and ``version``; the listen addresses from MP_SMTP_BIND_ADDR and
  MP_UI_BIND_ADDR (defaults 0.0.0.0:1025 and 0.0.0.0:8025).

What it does not stand in for: the web UI, POP3, SMTP authentication and STARTTLS, relaying,
searching, tags, deleting, websockets, storage on disk, and every flag (refused, so a test cannot
rely on one silently).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import sys
import threading
import urllib.request
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from typing import Any

from aiosmtpd.controller import Controller

SMTP_DEFAULT = "0.0.0.0:1025"
UI_DEFAULT = "0.0.0.0:8025"
READYZ_TIMEOUT = 3  # seconds: the compose healthcheck's own timeout


def address(value: str) -> tuple[str, int]:
    """Return (host, port) of "host:port"; a wildcard host is 0.0.0.0."""
    host, _, port = value.rpartition(":")
    return (host.strip("[]") if host not in ("", "[::]") else "0.0.0.0"), int(port)


def people(value: str | None) -> list[dict[str, str]]:
    """Return the addresses of a header as Mailpit lists them."""
    return [{"Name": name, "Address": addr} for name, addr in getaddresses([value or ""])]


class Store:
    """The mail received, in memory, oldest first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []

    def add(self, raw: bytes) -> dict[str, Any]:
        """Parse and keep one mail; return it."""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        bodies = {}
        for kind in ("plain", "html"):
            part = parsed.get_body(preferencelist=(kind,))
            bodies[kind] = part.get_content() if part is not None else ""
        message = {
            "ID": uuid.uuid4().hex,
            "MessageID": str(parsed.get("Message-ID", "")).strip("<>"),
            "From": (people(parsed.get("From")) or [{}])[0],
            "To": people(parsed.get("To")),
            "Cc": people(parsed.get("Cc")) if parsed.get("Cc") else [],
            "Subject": str(parsed.get("Subject", "")),
            "Created": datetime.now(UTC).isoformat(),
            "Size": len(raw),
            "Snippet": " ".join(bodies["plain"].split())[:250],
            "Text": bodies["plain"],
            "HTML": bodies["html"],
        }
        with self.lock:
            self.messages.append(message)
        return message

    def summaries(self) -> list[dict[str, Any]]:
        """Return every message without its bodies, newest first."""
        with self.lock:
            found = list(reversed(self.messages))
        return [{k: v for k, v in m.items() if k not in ("Text", "HTML")} for m in found]

    def get(self, message_id: str) -> dict[str, Any] | None:
        """Return one message with its bodies (``latest``: the newest), or None."""
        with self.lock:
            if message_id == "latest":
                return self.messages[-1] if self.messages else None
            return next((m for m in self.messages if m["ID"] == message_id), None)


class SMTPHandler:
    """aiosmtpd's handler: keep every mail delivered."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def handle_DATA(self, server, session, envelope) -> str:
        """Keep the mail; say so on STDOUT."""
        message = self.store.add(envelope.original_content or envelope.content)
        print(json.dumps({"received": message["ID"], "to": envelope.rcpt_tos}), flush=True)
        return "250 OK"


class APIHandler(BaseHTTPRequestHandler):
    """Answer the part of Mailpit's HTTP API the tests read."""

    server: APIServer

    def do_GET(self) -> None:
        """Serve the message list, one message, the health endpoints and a plain page at /."""
        path = self.path.split("?")[0].rstrip("/")
        store = self.server.store
        if path in ("/livez", "/readyz"):
            return self.answer(200, "ok", "text/plain")
        if path == "/api/v1/messages":
            found = store.summaries()
            body = {"total": len(found), "unread": len(found), "count": len(found)}
            return self.answer(200, {**body, "start": 0, "tags": [], "messages": found})
        if path.startswith("/api/v1/message/"):
            message = store.get(path.removeprefix("/api/v1/message/"))
            if message is None:
                return self.answer(404, "message not found", "text/plain")
            return self.answer(200, message)
        if path == "":
            return self.answer(200, "no UI: a tier-3 test stand-in for Mailpit", "text/plain")
        return self.answer(404, "not served by the Mailpit stand-in", "text/plain")

    def answer(self, status: int, body: Any, media_type: str = "application/json") -> None:
        """Send a JSON (or plain text) answer."""
        data = (json.dumps(body) if media_type == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        """Keep quiet: STDOUT holds the mail received."""


class APIServer(ThreadingHTTPServer):
    daemon_threads = True
    store: Store


def describe() -> str:
    """Return what this stand-in is, on one line."""
    return f"tier-3 stand-in for Mailpit: aiosmtpd {version('aiosmtpd')} and a small HTTP API"


def readyz() -> int:
    """Exit 0 when the HTTP server answers /readyz with 200, as `mailpit readyz` does."""
    host, port = address(os.environ.get("MP_UI_BIND_ADDR", UI_DEFAULT))
    host = "127.0.0.1" if host == "0.0.0.0" else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=READYZ_TIMEOUT) as r:
            return 0 if r.status == 200 else 1
    except OSError as exc:
        print(f"mailpit stand-in: not ready: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str]) -> int:
    """Serve SMTP and HTTP until SIGTERM or SIGINT; or run the readyz or version subcommand."""
    if argv == ["version"]:
        print(describe())
        return 0
    if argv == ["readyz"]:
        return readyz()
    if argv:
        raise SystemExit(f"mailpit stand-in: {argv!r}: it takes only `readyz` or `version`")
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    store = Store()
    smtp_host, smtp_port = address(os.environ.get("MP_SMTP_BIND_ADDR", SMTP_DEFAULT))
    smtp = Controller(SMTPHandler(store), hostname=smtp_host, port=smtp_port)
    smtp.start()
    api = APIServer(address(os.environ.get("MP_UI_BIND_ADDR", UI_DEFAULT)), APIHandler)
    api.store = store
    threading.Thread(target=api.serve_forever, daemon=True).start()
    print(describe(), {"smtp": f"{smtp_host}:{smtp_port}", "http": api.server_address})
    sys.stdout.flush()
    stopped.wait()
    api.shutdown()
    api.server_close()
    smtp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
