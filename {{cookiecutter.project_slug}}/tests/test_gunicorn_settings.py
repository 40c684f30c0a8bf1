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


@pytest.mark.parametrize(
    ("name", "value"), [("KEEPALIVE", "-1"), ("RATELIMIT_DEFAULT", "often"), ("SECRET_KEY", "")]
)
def test_a_bad_setting_stops_gunicorn_before_any_worker_with_one_line(
    run_python, project_dir, name, value
):
    """It exits 1 naming the variable, gunicorn's or the app's, in one line: no traceback."""
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": "sqlite:////data/app.db",
        "SECRET_KEY": "a-real-secret-value-of-good-length",
        name: value,
    }
    config = str(project_dir / "gunicorn.conf.py")
    app = "{{ cookiecutter.package_name }}:create_app()"
    result = run_python("-m", "gunicorn", "--config", config, "--check-config", app, **env)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: Invalid settings: "), line
    assert name in line, line


def test_the_config_pauses_the_collector_while_it_imports_then_freezes(run_python, project_dir):
    """It imports the package with the collector off (no full collection while the config
    loads) and freezes what it imported; then the master, and every worker it forks, collect
    what comes after as usual, and when_ready freezes it before the first fork."""
    script = (
        "import gc, runpy, sys\n"
        "full = gc.get_stats()[2]['collections']\n"
        "config = runpy.run_path(sys.argv[1])\n"
        "imported = gc.get_freeze_count()\n"
        "print(gc.get_stats()[2]['collections'] - full, gc.isenabled(), imported > 10000)\n"
        "config['when_ready'](None)\n"
        "print(gc.isenabled(), gc.get_freeze_count() > imported)\n"
    )
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": "sqlite:////data/app.db",
        "SECRET_KEY": "a-real-secret-value-of-good-length",
    }
    result = run_python("-c", script, str(project_dir / "gunicorn.conf.py"), **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True", "True", "True", "True"]
