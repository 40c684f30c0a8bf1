"""Liveness always answers; readiness reports each dependency, in time, and says what failed."""

import json
import threading
import time

from sqlalchemy import event
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform import database
from {{ cookiecutter.package_name }}.platform.database_errors import DatabaseUnavailable
from {{ cookiecutter.package_name }}.platform.fields import MAX_ID
from {{ cookiecutter.package_name }}.platform.health import dependencies, run_checks
{%- if cookiecutter.use_auth == "yes" %}
from tests.conftest import send_token, token_of_tester
{%- endif %}


def read_only_app(settings_overrides: dict):
    """Build an app on the test database whose connections cannot write, as if it were read-only.

    SQLite opens the file read-only (mode=ro); on a database server, sessions start read-only, as
    on a standby or with default_transaction_read_only.
    """
    url = make_url(settings_overrides["database_url"])
    if url.get_backend_name() == "sqlite":
        read_only = f"sqlite:///file:{url.database}?mode=ro&uri=true"
        return create_app({**settings_overrides, "database_url": read_only})
    app = create_app(settings_overrides)
    with app.app_context():
        event.listen(db.engine, "connect", lambda dbapi, _: setattr(dbapi, "read_only", True))
    return app


def test_liveness(client):
    """It answers 200 on /healthz."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readiness_when_database_answers(client):
    """It answers 200 with every check passing."""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    assert response.get_json()["checks"]["database"]["status"] == "ok"
    assert {check["status"] for check in response.get_json()["checks"].values()} == {"ok"}


def test_readiness_when_database_is_down(client, monkeypatch):
    """It answers 503 saying what failed when the database fails; liveness stays 200."""

    def refuse() -> None:
        raise DatabaseUnavailable("The database is not reachable.")

    monkeypatch.setattr(database, "ping", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
    assert response.get_json()["checks"]["database"] == {
        "status": "error",
        "error": "The database is not reachable.",
    }
    assert client.get("/healthz").status_code == 200


def test_a_hung_check_is_reported_within_the_timeout_and_not_started_again(app):
    """It answers within the timeout while a check hangs, and reuses the hung run meanwhile."""
    release, calls = threading.Event(), []

    def hangs() -> None:
        calls.append(1)
        release.wait(5)

    try:
        for _ in range(2):
            started = time.monotonic()
            results = run_checks(app, {"slow": hangs, "fast": lambda: None}, timeout=0.2)
            assert time.monotonic() - started < 3.0  # not the hang's 5 s (a margin for load)
            assert results["slow"]["status"] == "error"
            assert "no answer" in str(results["slow"]["error"])
            assert results["fast"]["status"] == "ok"
        assert len(calls) == 1  # the second probe found the first run still going
    finally:
        release.set()
    thread, _ = app.extensions["readiness_runs"]["slow"]
    thread.join(5)  # the released run ends
    assert run_checks(app, {"slow": hangs}, timeout=1.0)["slow"]["status"] == "ok"
    assert len(calls) == 2


def test_readyz_answers_within_its_timeout_when_the_database_hangs(make_app, monkeypatch):
    """It answers 503 within HEALTH_CHECK_TIMEOUT when the database check does not return."""
    release = threading.Event()
    monkeypatch.setattr(database, "ping", lambda: {"released": release.wait(5)})
    client = make_app(health_check_timeout=0.2).test_client()
    try:
        started = time.monotonic()
        response = client.get("/readyz")
        assert time.monotonic() - started < 3.0  # not the hang's 5 s (a margin for load)
    finally:
        release.set()
    assert response.status_code == 503
    assert "no answer" in response.get_json()["checks"]["database"]["error"]


def test_a_check_outliving_its_probe_ends_and_closes_its_connection_before_teardown(
    make_app, monkeypatch
):
    """A check still holding a connection when /readyz answered is waited for at teardown.

    The teardown (conftest.py) waits for it, then fails the test if a connection stays open.
    """
    connected = threading.Event()

    def holds_a_connection() -> None:
        with db.engine.connect():
            connected.set()
            time.sleep(0.5)

    monkeypatch.setattr(database, "ping", holds_a_connection)
    response = make_app(health_check_timeout=0.2).test_client().get("/readyz")
    assert response.status_code == 503
    assert "no answer" in response.get_json()["checks"]["database"]["error"]
    assert connected.wait(5)


def test_a_read_only_database_is_unready_and_writes_get_a_503_saying_so(settings_overrides, capsys):
    """It fails readiness and answers 503 "read-only" to a write, logging the driver's error."""
    client = read_only_app(settings_overrides).test_client()
{%- if cookiecutter.use_auth == "yes" %}
    token = token_of_tester(create_app(settings_overrides))  # stored while the database is writable
    send_token(client, token)
{%- endif %}

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"]["error"] == "The database is read-only."

    response = client.post("/api/items", json={"name": "nowhere to go"})
    assert response.status_code == 503
    assert response.get_json()["error"]["detail"] == "The database is read-only."
    assert response.headers["Retry-After"] == "5"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warnings = [line for line in lines if line.get("database_error") == "read-only"]
    assert warnings and warnings[0]["level"] == "WARNING", lines
    driver_says = warnings[0]["message"].split(": ", 1)[1]
    assert "readonly" in driver_says or "read-only" in driver_says, driver_says
    database_url = settings_overrides["database_url"]
    assert not any(database_url in line["message"] for line in lines)


def test_a_database_without_tables_answers_503_naming_the_schema(
    settings_overrides, empty_database_url
):
    """It answers 503 naming the schema on missing tables, unready where readiness checks it."""
    app = create_app({**settings_overrides, "database_url": empty_database_url})
    with app.app_context():
        db.drop_all()
    client = app.test_client()

    # The list, and one item's read (an id no test creates, so no shared cache holds it).
    for path in ("/api/items", f"/api/items/{MAX_ID}"):
        response = client.get(path)
        assert response.status_code == 503
        assert "schema" in response.get_json()["error"]["detail"]
    ready = client.get("/readyz")
    if "schema" in dependencies(app):  # the schema comes from elsewhere: readiness checks it
        assert ready.status_code == 503
        assert "schema" in ready.get_json()["checks"]["schema"]["error"]
    else:  # the app makes its tables itself at start-up: nothing to wait for
        assert ready.status_code == 200


def test_probes_are_never_rate_limited(limited_client):
    """It answers every probe even after the client has used up its limit."""
    client = limited_client(ratelimit_default="2 per minute")
    assert [client.get("/api/items").status_code for _ in range(3)][-1] == 429
    assert all(client.get(path).status_code == 200 for path in ["/healthz", "/readyz"] * 3)
