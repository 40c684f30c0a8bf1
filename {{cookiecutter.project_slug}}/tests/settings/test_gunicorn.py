"""gunicorn's own settings and config: read from the environment, in gunicorn bakes only."""

import json
import runpy
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.http.wsgi import Response

from {{ cookiecutter.package_name }}.platform.logs import ACCESS_FIELDS
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings
from {{ cookiecutter.package_name }}.settings.gunicorn import GunicornSettings

# What the config needs to load as in production: no .env is read where run_python runs it.
CONFIG_ENV = {
    "APP_ENV": "production",
    "DATABASE_URL": "sqlite:////data/app.db",
    "SECRET_KEY": "a-real-secret-value-of-good-length",
}


def test_sync_workers_get_one_thread(monkeypatch):
    """It runs sync workers single-threaded: with threads gunicorn would silently use gthread."""
    monkeypatch.setenv("WORKER_CLASS", "sync")
    monkeypatch.setenv("WEB_THREADS", "8")
    assert load_settings(model=GunicornSettings).web_threads == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_CLASS", "gevent"),
        ("GUNICORN_TIMEOUT", "0"),
        ("KEEPALIVE", "-1"),
        ("MAX_REQUESTS", "many"),
        ("MAX_REQUESTS_JITTER", "-5"),
    ],
)
def test_a_bad_gunicorn_setting_names_the_variable(monkeypatch, name, value):
    """It fails at start-up naming the bad variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}='{value}'"):
        load_settings(model=GunicornSettings)


def test_granians_settings_are_not_read(monkeypatch):
    """It neither reads nor checks granian's own variables."""
    monkeypatch.setenv("WORKERS_MAX_RSS", "-1")
    monkeypatch.setenv("WORKERS_LIFETIME", "soon")
    settings = load_settings(model=GunicornSettings)
    assert not {"workers_max_rss", "workers_lifetime"} & set(type(settings).model_fields)


@pytest.mark.parametrize(
    ("name", "value"), [("KEEPALIVE", "-1"), ("RATELIMIT_DEFAULT", "often"), ("SECRET_KEY", "")]
)
def test_a_bad_setting_stops_gunicorn_before_any_worker_with_one_line(
    run_python, project_dir, tmp_path, name, value
):
    """It exits 1 naming the variable, gunicorn's or the app's, in one line: no traceback, and
    no temporary metrics folder left behind."""
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    env = {**CONFIG_ENV, name: value, "TMPDIR": str(temporary)}
    config = str(project_dir / "gunicorn.conf.py")
    app = "{{ cookiecutter.package_name }}:create_app()"
    result = run_python("-m", "gunicorn", "--config", config, "--check-config", app, **env)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: Invalid settings: "), line
    assert name in line, line
    assert not list(temporary.iterdir())


def test_an_access_line_carries_the_answers_fields(capsys, monkeypatch, project_dir, tmp_path):
    """It writes gunicorn's stock access line as JSON: request id, method, path, status, size,
    and the fields the app added (a field of the line's own keeps the line's value)."""
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = Config()
    settings = runpy.run_path(str(project_dir / "gunicorn.conf.py"))
    for name in ("logconfig_dict", "access_log_format"):
        config.set(name, settings[name])
    answer = Response(None, None, config)
    answer.status, answer.headers, answer.sent = "201 CREATED", [("X-Request-ID", "id-1")], 42
    environ: dict[str, object] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/items"}
    environ |= {"REMOTE_ADDR": "127.0.0.1"}
    environ |= {"RAW_URI": "/api/items", "SERVER_PROTOCOL": "HTTP/1.1"}
    environ[ACCESS_FIELDS] = {"user_id": 7, "status": 999}  # as platform/logs.py's access_field
    request = SimpleNamespace(headers=[("X-Request-ID", "id-1")])
    capsys.readouterr()
    Logger(config).access(answer, request, environ, timedelta(milliseconds=3))
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert (line["logger"], line["message"], line["request_id"]) == (
        "gunicorn.access",
        "POST /api/items 201",
        "id-1",
    )
    assert (line["status"], line["bytes"], line["remote_addr"]) == (201, 42, "127.0.0.1")
    assert line["duration_ms"] == 3
    assert line["user_id"] == 7
