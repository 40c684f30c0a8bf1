"""granian is configured from the environment, and writes one JSON access line per request."""

import json
import multiprocessing
import os

import pytest
from granian import Granian

from {{ cookiecutter.package_name }}.granian_server import (
    GranianSettings,
    create_logged_app,
    main,
    server,
)
from {{ cookiecutter.package_name }}.platform.logs import access_field
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

FOLDER = "PROMETHEUS_MULTIPROC_DIR"


def test_server_follows_the_settings(monkeypatch):
    """It sizes workers, threads, recycling, the head timeout and shutdown from the environment."""
    for name, value in {
        "WEB_CONCURRENCY": "3",
        "WEB_THREADS": "4",
        "REQUEST_READ_TIMEOUT": "2.5",
        "WORKERS_MAX_RSS": "300",
        "WORKERS_LIFETIME": "3600",
        "GRACEFUL_TIMEOUT": "20",
        "PORT": "8123",
    }.items():
        monkeypatch.setenv(name, value)
    granian = server(load_settings(model=GranianSettings))
    assert (granian.workers, granian.blocking_threads, granian.bind_port) == (3, 4, 8123)
    assert granian.http1_settings is not None
    assert granian.http1_settings.header_read_timeout == 2500
    assert granian.workers_rss == 300 * 1024 * 1024
    assert granian.workers_lifetime == 3600
    assert granian.workers_kill_timeout == 20
    assert granian.log_access is False  # the app's own access line replaces granian's


def test_recycling_can_be_turned_off_and_short_lifetimes_are_raised_to_granians_minimum():
    """It passes 0 as never, and a lifetime under 60 s as granian's minimum of 60 s."""
    never = server(GranianSettings(workers_max_rss=0, workers_lifetime=0))
    assert (never.workers_rss, never.workers_lifetime) == (None, None)
    assert server(GranianSettings(workers_lifetime=5)).workers_lifetime == 60


def test_workers_default_to_the_available_cpus(monkeypatch):
    """It runs one worker per CPU this process may use when WEB_CONCURRENCY is unset."""
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.setattr("{{ cookiecutter.package_name }}.settings.server.available_cpus", lambda: 3)
    assert server(GranianSettings()).workers == 3


@pytest.mark.parametrize(
    ("name", "value"), [("WORKERS_MAX_RSS", "-1"), ("WORKERS_LIFETIME", "soon"), ("PORT", "0")]
)
def test_a_bad_setting_stops_the_start_naming_it(monkeypatch, capsys, name, value):
    """It exits 1 before serving, naming the bad variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError):
        load_settings(model=GranianSettings)
    assert main() == 1
    assert f"{name}='{value}'" in capsys.readouterr().err


def test_a_bad_app_setting_stops_the_start_before_any_worker(monkeypatch, capsys):
    """It checks the app's settings too, and exits 1 with one line naming the variable."""
    monkeypatch.setenv("RATELIMIT_DEFAULT", "often")
    assert main() == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("Error: Invalid settings: ") and "RATELIMIT_DEFAULT='often'" in line


def test_the_launcher_prepares_the_metrics_folder_then_serves(monkeypatch, tmp_path):
    """It empties the workers' metrics folder before granian starts, then serves until stopped.

    The folder was named before this process imported prometheus_client: its workers start as
    the interpreter's default, no start method is forced.
    """
    (tmp_path / "stale.db").write_text("a previous run's metrics")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    served = []

    def serve(self) -> None:
        served.append((list(tmp_path.iterdir()), multiprocessing.get_start_method()))

    monkeypatch.setattr(Granian, "serve", serve)
    try:
        assert main() == 0
    finally:
        multiprocessing.set_start_method(None, force=True)  # this process's default again
    assert served == [([], multiprocessing.get_context().get_start_method())]  # the default


def test_the_launcher_makes_a_temporary_metrics_folder_when_none_is_set(monkeypatch):
    """It names a folder of its own for the workers when PROMETHEUS_MULTIPROC_DIR is unset, and
    removes it when granian stops. Named after prometheus_client's import here, the folder is
    found by workers that start as new interpreters."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # unset, and restored after the test
    served = []

    def serve(self) -> None:
        folder = os.environ[FOLDER]
        served.append((folder, os.path.isdir(folder), multiprocessing.get_start_method()))

    monkeypatch.setattr(Granian, "serve", serve)
    try:
        assert main() == 0
    finally:
        multiprocessing.set_start_method(None, force=True)
    ((folder, existed, start_method),) = served
    assert existed and start_method == "spawn" and not os.path.exists(folder)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "61"])
def test_request_read_timeout_must_be_positive_seconds_within_granians_bound(monkeypatch, value):
    """It refuses a REQUEST_READ_TIMEOUT that is not a number of seconds from above 0 to 60."""
    monkeypatch.setenv("REQUEST_READ_TIMEOUT", value)
    with pytest.raises(SettingsError, match="REQUEST_READ_TIMEOUT"):
        load_settings(model=GranianSettings)


def access_lines(text: str) -> list[dict]:
    """Return the JSON access lines in ``text``."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == "granian.access"]


def test_each_answer_writes_one_access_line_with_the_request_id(capsys, settings_overrides):
    """It logs method, path, status, size and the request id of each answer, errors included,
    and the fields the app added (a field of the line's own keeps the line's value)."""
    app = create_logged_app(settings_overrides)

    @app.before_request
    def add_fields() -> None:
        access_field("user_id", 7)
        access_field("status", 999)

    client = app.test_client()
    response = client.get("/healthz", headers={"X-Request-ID": "access-1"})
    client.get("/no-such-page")
    ok, missing = access_lines(capsys.readouterr().out)
    assert (ok["method"], ok["path"], ok["status"]) == ("GET", "/healthz", 200)
    assert (ok["request_id"], ok["remote_addr"]) == ("access-1", "127.0.0.1")
    assert ok["bytes"] == len(response.data)
    assert ok["duration_ms"] >= 0
    assert (missing["status"], missing["path"]) == (404, "/no-such-page")
    assert ok["user_id"] == missing["user_id"] == 7


def test_gunicorns_settings_are_not_read(monkeypatch):
    """It neither reads nor checks gunicorn's own variables: a bad value changes nothing."""
    for name in ("WORKER_CLASS", "GUNICORN_TIMEOUT", "KEEPALIVE", "MAX_REQUESTS"):
        monkeypatch.setenv(name, "nonsense")
    settings = load_settings(model=GranianSettings)
    gunicorns = {"worker_class", "gunicorn_timeout", "keepalive", "max_requests"}
    assert not gunicorns & set(GranianSettings.model_fields)
    assert server(settings).workers == settings.workers()
