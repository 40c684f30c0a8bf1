"""Every response carries a request id: the caller's when well-formed, else a fresh one."""

import pytest


def test_incoming_id_is_returned(client):
    """It returns the X-Request-ID it was given."""
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize("bad", ["", "has spaces", "x" * 129, 'quote"s'])
def test_malformed_id_is_replaced(client, bad):
    """It replaces a malformed id with a generated one."""
    response = client.get("/healthz", headers={"X-Request-ID": bad})
    assert response.headers["X-Request-ID"] != bad
    assert len(response.headers["X-Request-ID"]) == 32


def test_ids_differ_between_requests(client):
    """It generates a distinct id per request."""
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert first != second
