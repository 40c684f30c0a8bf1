"""Loopback helpers: free ports and plain HTTP requests to 127.0.0.1."""

from __future__ import annotations

import http.client
import json
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


def request(
    port: int,
    method: str,
    path: str,
    body: dict | None = None,
    timeout: float = 10,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Send one request to 127.0.0.1:port and return the reply."""
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
