"""Loopback helpers: free ports and plain HTTP or HTTPS requests to 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import dataclass

from loopback import free_port as free_port  # the one free_port, re-exported


@dataclass
class Reply:
    """An HTTP response: status, headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        """Decode the body as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Endpoint:
    """An HTTPS server on 127.0.0.1:port, asked for ``hostname`` (TLS SNI and Host header),
    whose certificate must verify for that name against ``context``'s roots."""

    port: int
    hostname: str
    context: ssl.SSLContext


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to 127.0.0.1 that asks for (and verifies) another host name."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        super().__init__(endpoint.hostname, endpoint.port, timeout=timeout)
        self.endpoint = endpoint

    def connect(self) -> None:
        """Connect to loopback, then handshake with SNI = the endpoint's host name."""
        raw = socket.create_connection(("127.0.0.1", self.endpoint.port), self.timeout)
        self.sock = self.endpoint.context.wrap_socket(raw, server_hostname=self.endpoint.hostname)


def peer_certificate(endpoint: Endpoint, timeout: float = 10) -> dict:
    """Return the verified certificate an HTTPS endpoint presents (ssl's decoded form)."""
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout) as raw:
        with endpoint.context.wrap_socket(raw, server_hostname=endpoint.hostname) as tls:
            return tls.getpeercert()


def request(
    port: int | Endpoint,
    method: str,
    path: str,
    body: dict | None = None,
    timeout: float = 10,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Send one request to 127.0.0.1:port (HTTPS for an Endpoint) and return the reply."""
    if isinstance(port, Endpoint):
        connection: http.client.HTTPConnection = _LoopbackHTTPS(port, timeout)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()
