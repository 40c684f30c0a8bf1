"""Every error is a JSON body with the right status and no stack trace."""

import pytest

from {{ cookiecutter.package_name }} import create_app
from tests.conftest import writer_of


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/no-such-route", 404), ("delete", "/api/items", 405), ("get", "/api/items/999", 404)],
)
def test_http_errors_are_json(client, method, path, status):
    """It answers HTTP errors with a JSON error object."""
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.is_json
    assert response.get_json()["error"]["status"] == status


def test_method_not_allowed_keeps_allow_header(client):
    """It keeps the Allow header on 405."""
    assert "POST" in client.delete("/api/items").headers["Allow"]


def test_unhandled_exception_is_a_plain_500(capsys, settings_overrides):
    """It hides the exception from the client and logs its traceback."""
    app = create_app(settings_overrides)
    client = app.test_client()

    @app.get("/boom")
    def boom():
        raise RuntimeError("internal detail: password=hunter2")

    response = client.get("/boom")
    assert response.status_code == 500
    assert response.get_json()["error"]["title"] == "Internal Server Error"
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" in capsys.readouterr().out


def test_oversize_body_is_413(settings_overrides):
    """It refuses a body over MAX_CONTENT_LENGTH with 413 JSON."""
    client = writer_of(create_app({**settings_overrides, "max_content_length": 1024}))
    response = client.post("/api/items", json={"name": "x" * 5000})
    assert response.status_code == 413
    assert response.get_json()["error"]["status"] == 413
