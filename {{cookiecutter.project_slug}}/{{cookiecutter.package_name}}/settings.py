"""Read the service's settings from the environment, failing fast on bad values."""

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal
{%- if cookiecutter.use_redis == "yes" %}
from urllib.parse import urlsplit
{%- endif %}

from click import ClickException
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .metrics import MetricsFolder
from .rate_limits import checked_limits, checked_optional_limits

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "replace-me"})
MIN_SECRET_LENGTH = 32
# With a database server selected, production must name it: an SQLite file inside a container
# is lost at restart (and cannot be written on a read-only root filesystem).
DATABASE_URL_REQUIRED_IN_PRODUCTION = {{ "True" if cookiecutter.use_postgres == "yes" else "False" }}
# Database URL schemes read as another: the form some hosting platforms hand out, by SQLAlchemy's.
SCHEME_ALIASES = {{ '{"postgres": "postgresql"}' if cookiecutter.use_postgres == "yes" else "{}" }}
ENV_FILE = Path(".env")
HIDDEN_INPUT_WORDS = ("SECRET", "PASSWORD", "URL", "TOKEN")
RateLimits = Annotated[str, AfterValidator(checked_limits)]
OptionalRateLimits = Annotated[str, AfterValidator(checked_optional_limits)]
# Threads per app-server worker: read by the app server, and by the app to size its database
# pool. 8 serve about twice what 4 do on routes that wait on I/O, and a little less on CPU-heavy
# ones.
WebThreads = Annotated[int, Field(ge=1, le=64)]
DEFAULT_WEB_THREADS = 8


class SettingsError(RuntimeError, ClickException):
    """A setting is missing or invalid; the message names the variable.

    A click error too, so a command (``flask db upgrade``, ``flask routes``) stopped by a bad
    setting prints that one line and exits 1, without a traceback.
    """

    def __init__(self, message: str) -> None:
        ClickException.__init__(self, message)


class LogSettings(BaseSettings):
    """How to log, read by the app and by gunicorn alike; each maps to an upper-case variable."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"


class Settings(LogSettings):
    """Every setting of the app, one flat table; each maps to an upper-case variable."""

    app_env: Literal["development", "test", "production"] = "production"
    secret_key: str = ""
    # An SQLAlchemy URL whose database and driver are installed here, else refused at start.
{%- if cookiecutter.use_postgres == "yes" %}
    # postgres:// (the form Heroku, Render and Fly hand out) is read as postgresql://, whose
    # driver is psycopg 3 (SQLAlchemy's default), as postgresql+psycopg:// names it.
{%- endif %}
    database_url: str = "sqlite:///{{ cookiecutter.package_name }}.db"
    # Connections a worker keeps open; unset: one per thread (WEB_THREADS). A pool smaller than
    # the threads using it closes each connection beyond it on its return, so under load every
    # such request would connect anew.
    database_pool_size: int | None = Field(None, ge=1, le=100)
    database_connect_timeout: int = Field(3, ge=1, le=60)
    # Seconds a database server lets one statement run before cancelling it (0: no limit).
    database_statement_timeout: float = Field(20, ge=0, le=3600)
{%- if cookiecutter.use_redis == "yes" %}
    # Keeps the cache and the rate limits' counts; unset: each worker's memory. A soft
    # dependency: while it fails, reads miss the cache and limits are counted in memory.
    redis_url: str | None = None
    # Seconds a Redis connect or command may take (socket timeouts of every client).
    redis_timeout: float = Field(1.0, gt=0, le=30)
    # Seconds the cache is skipped after it failed, before one request tries it again.
    redis_retry_interval: float = Field(10.0, ge=0, le=3600)
{%- endif %}
{%- if cookiecutter.use_celery == "yes" %}
    # Seconds a task may run before the worker kills it (it is warned 5 s earlier, to clean up).
    celery_task_time_limit: int = Field(30, ge=10, le=3600)
    celery_worker_concurrency: int = Field(2, ge=1, le=64)
    # Run tasks at once in the calling process (tests); without REDIS_URL they always do.
    celery_task_always_eager: bool = False
    # Seconds after which Redis gives an unacknowledged task (its worker died) to a worker again.
    celery_visibility_timeout: int = Field(90, ge=2, le=86400)
    # The scheduler sends the task of items pending longer than this again (seconds), this often.
    celery_requeue_after: int = Field(300, ge=1, le=86400)
    celery_requeue_interval: float = Field(60, ge=1, le=86400)
{%- endif %}
{%- if cookiecutter.use_frontend == "yes" %}
    # Send the session cookie (it holds the pages' CSRF token) over HTTPS only; unset: in
    # production. Set false only to serve production pages over plain HTTP on a trusted network.
    session_cookie_secure: bool | None = None
    # Seconds a page keeps asking about its pending items (less and less often) before it stops
    # and offers a button to ask again; 0: it never asks on its own.
    pending_poll_seconds: int = Field(300, ge=0, le=3600)
{%- endif %}
{%- if cookiecutter.use_nginx == "yes" %}
    # Proxies in front of the app whose X-Forwarded-* it trusts: nginx, one hop.
    trusted_proxies: int = Field(1, ge=0, le=10)
{%- endif %}
    web_threads: WebThreads = DEFAULT_WEB_THREADS
    health_check_timeout: float = Field(2.0, gt=0, le=30)
    # Per client, on each write route, e.g. "60 per minute" or "5/second;60/minute".
    ratelimit_write: RateLimits = "60 per minute"
    # Per client, on every other route but probes, /metrics and static files; empty: no limit.
    ratelimit_default: OptionalRateLimits = ""
    cache_ttl_seconds: int = Field(60, ge=0, le=86400)
    max_content_length: int = Field(1_048_576, ge=1024)
    metrics_enabled: bool = True
    # The folder where every server process writes its metrics (README: Metrics).
    prometheus_multiproc_dir: MetricsFolder = None

    @field_validator("database_url")
    @classmethod
    def _loadable_database_url(cls, value: str) -> str:
        """Refuse a DATABASE_URL whose database or driver cannot be loaded here; read a scheme of
        SCHEME_ALIASES as SQLAlchemy's. Checked before any connection is tried."""
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL (e.g. sqlite:///app.db)") from None
        backend = url.get_backend_name()
        if backend in SCHEME_ALIASES:
            url = url.set(drivername=url.drivername.replace(backend, SCHEME_ALIASES[backend], 1))
            value = url.render_as_string(hide_password=False)
        scheme = f"{url.drivername}://"
        try:
            url.get_dialect().import_dbapi()
        except NoSuchModuleError:
            raise ValueError(f"SQLAlchemy knows no database or driver {scheme}") from None
        except ImportError as exc:
            raise ValueError(f"the driver of {scheme} is not installed ({exc})") from None
        return value

{%- if cookiecutter.use_redis == "yes" %}

    @field_validator("redis_url")
    @classmethod
    def _usable_redis_url(cls, value: str | None) -> str | None:
        """Refuse a REDIS_URL redis-py cannot use; read an empty one as unset."""
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("not a Redis URL (e.g. redis://localhost:6379/0)")
        try:
            parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
        except ValueError:
            raise ValueError("the port of a Redis URL is a number") from None
        database = parts.path.strip("/")
        if parts.scheme != "unix" and database and not database.isdigit():
            raise ValueError("the database of a Redis URL is a number (e.g. redis://localhost/0)")
        return value
{%- endif %}

    @model_validator(mode="after")
    def _one_connection_per_thread(self) -> "Settings":
        """Size the database pool to the worker's threads when DATABASE_POOL_SIZE is unset."""
        if self.database_pool_size is None:
            self.database_pool_size = self.web_threads
        return self

    @model_validator(mode="after")
    def _require_secret_in_production(self) -> "Settings":
        """Refuse a missing, placeholder or short SECRET_KEY outside development and tests."""
        weak = self.secret_key.strip().lower() in PLACEHOLDER_SECRETS
        if self.app_env == "production" and (weak or len(self.secret_key) < MIN_SECRET_LENGTH):
            problem = "missing or a placeholder" if weak else "shorter than 32 characters"
            raise ValueError(
                f"SECRET_KEY is {problem}; set it to a long random value "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        if weak:
            self.secret_key = secrets.token_urlsafe(48)
        return self

    @model_validator(mode="after")
    def _require_database_url_in_production(self) -> "Settings":
        """Refuse to fall back to an SQLite file in production when a server was chosen."""
        if (
            DATABASE_URL_REQUIRED_IN_PRODUCTION
            and self.app_env == "production"
            and "database_url" not in self.model_fields_set
        ):
            raise ValueError(
                "DATABASE_URL is not set; production needs the URL of the database server "
                "(an SQLite file in a container is lost when it restarts)"
            )
        return self

{%- if cookiecutter.use_celery == "yes" %}

    @model_validator(mode="after")
    def _outlast_a_running_task(self) -> "Settings":
        """Refuse a visibility timeout a running task could outlast: it would run twice at once."""
        if self.celery_visibility_timeout <= self.celery_task_time_limit:
            raise ValueError(
                f"CELERY_VISIBILITY_TIMEOUT ({self.celery_visibility_timeout}) must be longer "
                f"than CELERY_TASK_TIME_LIMIT ({self.celery_task_time_limit}), or a task still "
                "running is given to another worker"
            )
        return self
{%- endif %}

    def flask_config(self) -> dict:
        """Return the Flask config keys derived from these settings."""
        return {
            "SECRET_KEY": self.secret_key,
            "MAX_CONTENT_LENGTH": self.max_content_length,
            "TESTING": self.app_env == "test",
        }


def _env_file() -> Path | None:
    """Return .env when it exists, unless the process environment says APP_ENV=production.

    The image sets APP_ENV=production and holds no .env; a native run reads .env, its APP_ENV
    included. Variables of the process environment win over those of .env.
    """
    if os.environ.get("APP_ENV", "").strip().lower() == "production" or not ENV_FILE.is_file():
        return None
    return ENV_FILE


def load_settings(overrides: dict | None = None, model: type[BaseSettings] = Settings):
    """Load settings from the environment and .env (see _env_file); raise SettingsError."""
    try:
        return model(_env_file=_env_file(), **(overrides or {}))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            given = error.get("input")
            if any(word in name for word in HIDDEN_INPUT_WORDS):
                given = "<hidden>"
            detail = error["msg"].removeprefix("Value error, ")
            if name:
                problems.append(f"{name}={given!r}: {detail}")
            else:
                problems.append(detail)
        raise SettingsError("Invalid settings: " + "; ".join(problems)) from None
