"""Flask-DebugToolbar shows on the pages in development only, and production never imports it."""

import subprocess
import sys

from tests.conftest import writer_of

TOOLBAR_MARK = 'id="flDebug"'


def test_toolbar_shows_in_development(make_app):
    """It injects the toolbar into the pages with APP_ENV=development."""
    app = make_app(app_env="development")
    assert "debug_toolbar" in app.extensions
    page = app.test_client().get("/").text
    assert TOOLBAR_MARK in page


def test_toolbar_is_absent_outside_development(make_app):
    """It adds no toolbar with APP_ENV=test or production, and the policy stays strict."""
    for env in ("test", "production"):
        app = make_app(app_env=env)
        assert "debug_toolbar" not in app.extensions
        response = app.test_client().get("/")
        assert TOOLBAR_MARK not in response.text
        assert "unsafe" not in response.headers["Content-Security-Policy"]


def test_toolbar_does_not_intercept_redirects(make_app):
    """It lets the form's redirect through in development (no toolbar page in between)."""
    client = writer_of(make_app(app_env="development"))
    page = client.get("/").text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post("/items", data={"name": "redirected", "csrf_token": token})
    assert response.status_code == 303


def test_production_never_imports_the_toolbar(settings_overrides):
    """It builds a production app in a fresh interpreter without importing flask_debugtoolbar."""
    overrides = {**settings_overrides, "app_env": "production"}
    code = (
        "import sys; from {{ cookiecutter.package_name }} import create_app; "
        f"create_app({overrides!r}); "
        "print('flask_debugtoolbar' in sys.modules)"
    )
    result = subprocess.run(  # noqa: S603  (this Python, a fixed script)
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_development_without_the_toolbar_installed_still_starts(make_app, monkeypatch):
    """It starts in development without the toolbar (the image lacks it), serving the pages."""
    monkeypatch.setitem(sys.modules, "flask_debugtoolbar", None)  # import fails as uninstalled
    app = make_app(app_env="development")
    assert "debug_toolbar" not in app.extensions
    assert app.test_client().get("/").status_code == 200
