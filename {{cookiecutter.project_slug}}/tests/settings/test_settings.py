"""Settings come from the environment and refuse missing, placeholder or invalid values."""

from typing import get_args

import pytest
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.settings import (
    DATABASE_URL_REQUIRED_IN_PRODUCTION,
    Settings,
    SettingsError,
    load_settings,
)

from .test_configuration_reference import own_fields, settings_classes

REAL_SECRET = "a-real-secret-value-of-good-length"
SERVER_URL = "sqlite:////data/app.db"  # any URL: production needs one set
# No type, choice, URL, DSN, path, address or limit of any setting accepts this value.
BAD_VALUE = "not a value!"
FIELDS = [
    (cls, name, field) for cls in settings_classes() for name, field in own_fields(cls).items()
]
EVERY_FIELD = [pytest.param(*f, id=f"{f[0].__name__}.{f[1].upper()}") for f in FIELDS]
EVERY_NUMBER = [
    pytest.param(*f, id=f"{f[0].__name__}.{f[1].upper()}")
    for f in FIELDS
    if {f[2].annotation, *get_args(f[2].annotation)} & {int, float}
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Start each test from an empty environment in an empty directory."""
    for name in ("APP_ENV", "SECRET_KEY", "DATABASE_URL", "LOG_FORMAT", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "missing or a placeholder"),
        ("change-me", "missing or a placeholder"),
        ("  CHANGE-ME ", "missing or a placeholder"),
        ("short-but-not-a-placeholder", "shorter than 32 characters"),
        ("x" * 31, "shorter than 32 characters"),
    ],
)
def test_production_refuses_missing_placeholder_or_weak_secret(monkeypatch, secret, problem):
    """It refuses to start in production without a long, real SECRET_KEY, naming it."""
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", SERVER_URL)
    monkeypatch.setenv("SECRET_KEY", secret)
    with pytest.raises(SettingsError, match=f"SECRET_KEY is {problem}") as caught:
        load_settings(Settings)
    assert secret.strip() == "" or secret not in str(caught.value)


def test_production_accepts_real_secret(monkeypatch):
    """It starts in production with a real SECRET_KEY."""
    monkeypatch.setenv("SECRET_KEY", REAL_SECRET)
    monkeypatch.setenv("DATABASE_URL", SERVER_URL)
    settings = load_settings(Settings)
    assert settings.app_env == "production"
    assert settings.secret_key.get_secret_value() == REAL_SECRET


def test_production_without_database_url(monkeypatch):
    """It refuses production without DATABASE_URL when a database server was chosen.

    Without a server option, the image names its SQLite file itself, so the default may stand.
    """
    monkeypatch.setenv("SECRET_KEY", REAL_SECRET)
    if DATABASE_URL_REQUIRED_IN_PRODUCTION:
        with pytest.raises(SettingsError, match="DATABASE_URL is not set"):
            load_settings(Settings)
    else:
        assert load_settings(Settings).database_url.startswith("sqlite:")
    monkeypatch.setenv("APP_ENV", "development")
    assert load_settings(Settings).database_url.startswith("sqlite:")


def test_development_makes_an_ephemeral_secret(monkeypatch):
    """It invents a random secret in development so a bare checkout runs."""
    monkeypatch.setenv("APP_ENV", "development")
    assert len(load_settings(Settings).secret_key) > 40


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_POOL_SIZE", "many"),
        ("CACHE_TTL_SECONDS", "-1"),
        ("APP_ENV", "staging"),
        ("RATELIMIT_DEFAULT", "lots per minute"),
        ("RATELIMIT_WRITE", "0 per minute"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch, name, value):
    """It fails with a message naming the bad variable and its value."""
    monkeypatch.setenv("SECRET_KEY", REAL_SECRET)
    monkeypatch.setenv("DATABASE_URL", SERVER_URL)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}='{value}'"):
        load_settings(Settings)


def test_a_refused_web_threads_is_named_alone(monkeypatch):
    """It names WEB_THREADS, not DATABASE_POOL_SIZE, whose default it gives."""
    monkeypatch.setenv("WEB_THREADS", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings, {"app_env": "test"})
    assert "WEB_THREADS=" in str(caught.value) and "DATABASE_POOL_SIZE" not in str(caught.value)


@pytest.mark.parametrize(("cls", "name", "field"), EVERY_FIELD)
def test_every_setting_refuses_a_bad_value_in_one_line_naming_it(monkeypatch, cls, name, field):
    """Each field of each settings class refuses a bad value when its class loads, in one line
    naming the variable and showing the value, unless the field is a secret (SecretStr)."""
    monkeypatch.setenv("SECRET_KEY", REAL_SECRET)
    monkeypatch.setenv("DATABASE_URL", SERVER_URL)
    monkeypatch.setenv(name.upper(), BAD_VALUE)
    with pytest.raises(SettingsError) as caught:
        load_settings(cls)
    message = str(caught.value)
    assert "\n" not in message and name.upper() in message, message
    if SecretStr in (field.annotation, *get_args(field.annotation)):
        assert BAD_VALUE not in message, message
    else:
        assert f"{name.upper()}={BAD_VALUE!r}: " in message, message


@pytest.mark.parametrize(("cls", "name", "field"), EVERY_NUMBER)
def test_every_number_is_bounded_both_ways_and_refuses_one_past_each_bound(
    monkeypatch, cls, name, field
):
    """Each number has a lowest and a highest value (a number too large for its use, such as a
    timeout no socket takes, is refused at start instead of failing later), and one past either
    is refused in one line naming the variable."""
    schema = cls.model_json_schema()["properties"][name]
    schema = next((s for s in schema.get("anyOf", []) if s["type"] != "null"), schema)
    below = schema.get("minimum", schema.get("exclusiveMinimum", 1) + 1) - 1
    above = schema.get("maximum", schema.get("exclusiveMaximum", -1) - 1) + 1
    assert {"minimum", "exclusiveMinimum"} & schema.keys(), f"{name.upper()} needs ge= or gt="
    assert {"maximum", "exclusiveMaximum"} & schema.keys(), f"{name.upper()} needs le= or lt="
    monkeypatch.setenv("SECRET_KEY", REAL_SECRET)
    monkeypatch.setenv("DATABASE_URL", SERVER_URL)
    for value in (below, above):
        monkeypatch.setenv(name.upper(), str(value))
        with pytest.raises(SettingsError) as caught:
            load_settings(cls)
        message = str(caught.value)
        assert "\n" not in message and f"{name.upper()}='{value}': " in message, message


def test_a_refused_url_is_shown_without_its_password(monkeypatch):
    """It shows a refused DATABASE_URL with its password masked: the address stays readable."""
    monkeypatch.setenv("SECRET_KEY", REAL_SECRET)
    monkeypatch.setenv("DATABASE_URL", "mysql://app:pw@1/x@db.example:3306/app")
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings)
    assert "DATABASE_URL='mysql://app:***@db.example:3306/app': " in str(caught.value)
    assert "pw@1" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://app:pw-1@db.example:3306/app", "the driver of mysql:// is not installed"),
        ("mssql+pyodbc://app:pw-1@db/app", "the driver of mssql+pyodbc:// is not installed"),
        ("mongodb://app:pw-1@db/app", "SQLAlchemy knows no database or driver mongodb://"),
        ("sqlite+no:///app.db", "SQLAlchemy knows no database or driver sqlite+no://"),
    ],
)
def test_a_database_url_that_cannot_be_loaded_is_refused_in_one_line(monkeypatch, url, problem):
    """It refuses, naming DATABASE_URL, a URL whose database or driver is not installed here,
    rather than let every worker fail on it at start; the URL's password is not echoed."""
    monkeypatch.setenv("SECRET_KEY", REAL_SECRET)
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings)
    message = str(caught.value)
    shown = url.replace("pw-1", "***")
    assert message.startswith(f"Invalid settings: DATABASE_URL={shown!r}: {problem}"), message
    assert "\n" not in message and "pw-1" not in message


{%- if cookiecutter.use_postgres == "yes" %}


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_a_postgres_url_uses_psycopg(monkeypatch, scheme):
    """It reads postgres:// (Heroku's, Render's, Fly's form) and postgresql:// as psycopg 3
    URLs, password kept."""
    monkeypatch.setenv("SECRET_KEY", REAL_SECRET)
    from sqlalchemy.engine import make_url

    monkeypatch.setenv("DATABASE_URL", f"{scheme}://app:p%40ss@db.example:5432/app")
    url = make_url(load_settings(Settings).database_url)
    assert url.get_dialect().driver == "psycopg"
    assert (url.password, url.host, url.port, url.database) == ("p@ss", "db.example", 5432, "app")
{%- endif %}


def test_env_file_is_read_unless_the_process_says_production(monkeypatch, tmp_path):
    """It reads .env, its APP_ENV included, unless the process environment says production."""
    (tmp_path / ".env").write_text("APP_ENV=development\nLOG_LEVEL=DEBUG\n")
    settings = load_settings(Settings)
    assert (settings.app_env, settings.log_level) == ("development", "DEBUG")
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", REAL_SECRET)
    monkeypatch.setenv("DATABASE_URL", SERVER_URL)
    settings = load_settings(Settings)
    assert (settings.app_env, settings.log_level) == ("production", "INFO")


def test_the_process_environment_wins_over_the_env_file(monkeypatch, tmp_path):
    """It takes a variable from the process environment over the same one in .env."""
    (tmp_path / ".env").write_text("APP_ENV=development\nLOG_LEVEL=DEBUG\n")
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    settings = load_settings(Settings)
    assert (settings.app_env, settings.log_level) == ("test", "WARNING")


@pytest.mark.parametrize(
    "command",
    [
        ("routes",),
{%- if cookiecutter.use_postgres == "yes" %}
        ("db", "upgrade"),
{%- endif %}
    ],
)
def test_a_bad_setting_stops_a_flask_command_with_one_line_naming_it(run_python, command):
    """It exits 1 with one line on STDERR naming the variable: no traceback to read through."""
    result = run_python(
        "-m", "flask", "--app", "{{ cookiecutter.package_name }}", *command, APP_ENV="development", LOG_LEVEL="LOUD"
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: Invalid settings: LOG_LEVEL='LOUD': Input should be"), line
