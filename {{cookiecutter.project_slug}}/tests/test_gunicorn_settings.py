"""gunicorn's own settings: read from the environment, in gunicorn bakes only."""

import pytest

from {{ cookiecutter.package_name }}.gunicorn_settings import GunicornSettings
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings


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
