"""Liveness always answers; readiness reports each dependency."""

import threading

from {{ cookiecutter.package_name }} import database
from {{ cookiecutter.package_name }}.health import run_checks


def test_liveness(client):
    """It answers 200 on /healthz."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readiness_when_database_answers(client):
    """It answers 200 with a passing database check."""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"]["database"]["status"] == "ok"


def test_readiness_when_database_is_down(client, monkeypatch):
    """It answers 503 naming the database when the database fails; liveness stays 200."""

    def refuse() -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(database, "ping", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["checks"]["database"] == {"status": "error", "error": "OSError"}
    assert client.get("/healthz").status_code == 200


def test_a_slow_check_times_out(app):
    """It reports a check that does not answer within the timeout as an error."""
    release = threading.Event()
    results = run_checks(app, {"slow": lambda: release.wait(5), "fast": lambda: None}, timeout=0.2)
    release.set()
    assert results["slow"]["status"] == "error"
    assert "no answer" in results["slow"]["error"]
    assert results["fast"]["status"] == "ok"


def test_probes_are_never_rate_limited(limited_client):
    """It answers every probe even after the client has used up its limit."""
    client = limited_client(ratelimit_default="2 per minute")
    assert [client.get("/api/items").status_code for _ in range(3)][-1] == 429
    assert all(client.get(path).status_code == 200 for path in ["/healthz", "/readyz"] * 3)
