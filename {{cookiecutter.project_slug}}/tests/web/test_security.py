"""Pages refuse forged posts (CSRF), send a strict Content-Security-Policy and safe cookies."""

import json

import pytest

from {{ cookiecutter.package_name }}.web.security import CROSS_SITE_POST, SECURE_COOKIE_OVER_HTTP
from tests.conftest import writer_of
from tests.items.test_pages import HTMX, csrf_token


def test_form_post_without_a_token_is_refused(writer):
    """It refuses a form post without a CSRF token (400) and stores nothing."""
    writer.get("/")
    response = writer.post("/items", data={"name": "forged"})
    assert response.status_code == 400
    assert "CSRF token is missing" in response.json["error"]["detail"]
    assert writer.get("/api/items").json["total"] == 0


def test_form_post_with_a_wrong_token_is_refused(writer):
    """It refuses a form post whose token is not the session's."""
    writer.get("/")
    response = writer.post("/items", data={"name": "forged", "csrf_token": "not-a-token"})
    assert response.status_code == 400
    assert writer.get("/api/items").json["total"] == 0


def test_htmx_post_without_a_token_is_refused(writer):
    """It refuses an HTMX post carrying no token, neither in a field nor in the header."""
    writer.get("/")
    assert writer.post("/items", data={"name": "forged"}, headers=HTMX).status_code == 400


def test_htmx_post_with_the_header_token_is_accepted(writer):
    """It accepts an HTMX post whose token comes in the X-CSRFToken header alone."""
    token = csrf_token(writer)
    response = writer.post(
        "/items", data={"name": "by header"}, headers={**HTMX, "X-CSRFToken": token}
    )
    assert response.status_code == 201


def test_csrf_checks_can_be_turned_off(make_app):
    """It accepts a form post without a token when WTF_CSRF_ENABLED is false (as in flask-wtf)."""
    app = make_app()
    app.config["WTF_CSRF_ENABLED"] = False
    response = writer_of(app).post("/items", data={"name": "unchecked"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_json_api_needs_no_token(writer):
    """It keeps the JSON API free of CSRF tokens: it takes no cookies."""
    assert writer.post("/api/items", json={"name": "api"}).status_code == 201


def test_pages_send_a_strict_content_security_policy(client):
    """It sends one policy with the pages: own scripts and styles only, nothing inline or eval."""
    policy = client.get("/").headers.getlist("Content-Security-Policy")
    assert len(policy) == 1
    directives = dict(part.strip().split(" ", 1) for part in policy[0].split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy[0]


def test_fragments_carry_the_policy_too(writer):
    """It sends the policy with an HTMX fragment as with the page."""
    token = csrf_token(writer)
    response = writer.post("/items", data={"name": "x", "csrf_token": token}, headers=HTMX)
    assert "unsafe" not in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("overrides", "secure"),
    [
        ({"app_env": "production"}, True),
        ({"app_env": "test"}, False),
        ({"app_env": "production", "session_cookie_secure": False}, False),
        ({"app_env": "test", "session_cookie_secure": True}, True),
    ],
)
def test_session_cookie_is_http_only_lax_and_secure_in_production(make_app, overrides, secure):
    """It sets the session cookie HttpOnly and SameSite=Lax, Secure in production by default."""
    client = writer_of(make_app(**overrides))
    cookie = client.get("/").headers["Set-Cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert "httponly" in attributes
    assert "SameSite=Lax" in cookie
    assert ("secure" in attributes) is secure


@pytest.mark.parametrize(
    ("overrides", "base_url", "told"),
    [
        ({"app_env": "production"}, "http://localhost", True),
        ({"app_env": "production"}, "https://localhost", False),
        ({"app_env": "production", "session_cookie_secure": False}, "http://localhost", False),
    ],
)
def test_a_post_over_plain_http_without_the_https_only_cookie_says_why(
    make_app, capsys, overrides, base_url, told
):
    """It answers a post that came over plain HTTP without the session cookie, which is sent over
    HTTPS only (a browser keeps none from an HTTP answer), naming SESSION_COOKIE_SECURE, and logs
    it; other refused tokens are told to reload the page."""
    app = make_app(**overrides)
    token = csrf_token(writer_of(app))
    browser = app.test_client()  # it kept no cookie from the page
    capsys.readouterr()
    form = {"name": "x", "csrf_token": token}
    response = browser.post("/items", data=form, headers=HTMX, base_url=base_url)
    assert response.status_code == 400
    detail = response.json["error"]["detail"]
    warnings = [
        json.loads(line)["message"]
        for line in capsys.readouterr().out.splitlines()
        if '"WARNING"' in line
    ]
    if told:
        assert detail == SECURE_COOKIE_OVER_HTTP
        assert "SESSION_COOKIE_SECURE=false" in detail and "HTTPS" in detail
        assert warnings == [f"CSRF check failed: {SECURE_COOKIE_OVER_HTTP}"]
    else:
        assert detail.endswith("Reload the page and retry."), detail
        assert "HTTPS" not in detail and warnings == []


@pytest.mark.parametrize(
    ("base_url", "headers", "expected"),
    [
        ("http://localhost", {"Origin": "http://elsewhere.example"}, CROSS_SITE_POST),
        ("https://localhost", {"Origin": "https://elsewhere.example"}, CROSS_SITE_POST),
        ("http://localhost", {"Sec-Fetch-Site": "cross-site"}, CROSS_SITE_POST),
        ("http://localhost", {"Origin": "http://localhost:8443"}, SECURE_COOKIE_OVER_HTTP),
        ("http://localhost", {"Origin": "null"}, SECURE_COOKIE_OVER_HTTP),
        ("http://localhost", {"Origin": "http://["}, SECURE_COOKIE_OVER_HTTP),
        (
            "http://localhost",
            {"Sec-Fetch-Site": "same-origin", "Origin": "http://elsewhere.example"},
            SECURE_COOKIE_OVER_HTTP,
        ),
    ],
    ids=[
        "origin-over-http",
        "origin-over-https",
        "fetch-metadata",
        "same-host-other-port",
        "null-origin",
        "malformed-origin",
        "fetch-metadata-wins",
    ],
)
def test_a_post_from_another_site_is_told_samesite_withheld_the_cookie(
    make_app, capsys, base_url, headers, expected
):
    """It answers a production post without the session cookie that the browser says came from
    another site (Sec-Fetch-Site, else an Origin naming another host) by naming SameSite, over
    plain HTTP as over HTTPS, and logs no warning for it; a post from this host (or an Origin
    that tells nothing) over plain HTTP still names SESSION_COOKIE_SECURE."""
    app = make_app(app_env="production")
    token = csrf_token(writer_of(app))
    capsys.readouterr()
    response = app.test_client().post(
        "/items", data={"name": "x", "csrf_token": token}, headers=headers, base_url=base_url
    )
    assert response.status_code == 400
    assert response.json["error"]["detail"] == expected
    warned = '"WARNING"' in capsys.readouterr().out
    assert warned is (expected == SECURE_COOKIE_OVER_HTTP)
    if expected == CROSS_SITE_POST:
        assert "SameSite" in expected and "HTTPS" not in expected
