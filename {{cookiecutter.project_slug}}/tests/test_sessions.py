"""Cookie sessions: no signer for requests without a cookie; signed cookies still round-trip."""

import pytest
from flask import session

from {{ cookiecutter.package_name }}.sessions import LazyCookieSessions


@pytest.fixture
def signers(app, monkeypatch):
    """Count the signing serializers the app's session interface builds."""
    built = []
    original = LazyCookieSessions.get_signing_serializer

    def counting(self, flask_app):
        built.append(flask_app)
        return original(self, flask_app)

    monkeypatch.setattr(LazyCookieSessions, "get_signing_serializer", counting)
    return built


def test_a_request_without_a_cookie_builds_no_signer(client, signers):
    """It answers an API request without building a session signer."""
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/items").status_code == 200
    assert signers == []


def test_an_untouched_session_reads_no_cookie_setting(client, monkeypatch):
    """It opens and saves the session of a request without cookies without reading a setting."""
    read = []
    for setting in ("get_cookie_name", "get_cookie_domain", "get_cookie_path"):
        original = getattr(LazyCookieSessions, setting)
        monkeypatch.setattr(
            LazyCookieSessions,
            setting,
            lambda self, app, _name=setting, _original=original: (
                read.append(_name) or _original(self, app)
            ),
        )
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/items").status_code == 200
    assert read == []


def test_a_session_read_but_left_empty_still_varies_on_the_cookie(app):
    """It still answers Vary: Cookie for a request whose view read the session, as Flask does."""

    @app.get("/test-session")
    def recall():
        return {"value": session.get("value")}

    response = app.test_client().get("/test-session")
    assert response.get_json() == {"value": None}
    assert "Cookie" in response.headers.get("Vary", "")
    assert "Set-Cookie" not in response.headers


def test_a_session_emptied_by_its_view_deletes_the_cookie(app):
    """It expires the session cookie when a view clears a session it was sent."""

    @app.get("/test-session/<value>")
    def remember(value):
        session["value"] = value
        return {}

    @app.get("/test-session/forget")
    def forget():
        session.clear()
        return {}

    client = app.test_client()
    client.get("/test-session/kept")
    assert client.get_cookie("session") is not None
    response = client.get("/test-session/forget")
    assert "session=;" in response.headers["Set-Cookie"]
    assert client.get_cookie("session") is None


def test_a_signed_session_cookie_still_round_trips(app, signers):
    """It writes a signed session cookie and reads it back on the next request."""

    @app.get("/test-session/<value>")
    def remember(value):
        session["value"] = value
        return {"stored": session["value"]}

    @app.get("/test-session")
    def recall():
        return {"value": session.get("value")}

    client = app.test_client()
    assert client.get("/test-session/kept").status_code == 200
    assert client.get_cookie("session") is not None
    assert client.get("/test-session").get_json() == {"value": "kept"}
    assert signers, "a request with a session cookie is opened by Flask's signer"


def test_a_tampered_session_cookie_is_an_empty_session(app):
    """It ignores a session cookie whose signature does not match."""

    @app.get("/test-session")
    def recall():
        return {"value": session.get("value")}

    client = app.test_client()
    client.set_cookie("session", "eyJ2YWx1ZSI6ImZvcmdlZCJ9.bad.signature")
    assert client.get("/test-session").get_json() == {"value": None}
