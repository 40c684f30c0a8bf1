"""Read the service's settings from the environment (and .env), failing fast on bad values."""

import os
import re
import secrets
from typing import Annotated, Any, Literal, TypeVar, get_args

from click import ClickException
from pydantic import AfterValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

{% if cookiecutter.use_auth == "yes" -%}
from .auth import AuthSettings
{% endif -%}
from .database import checked_database_url
from .limits import Limits, OptionalLimits
{%- if cookiecutter.use_auth == "yes" %}
from .mail import MailSettings
{%- endif %}
from .metrics import MetricsFolder
{%- if cookiecutter.use_auth == "yes" and cookiecutter.use_frontend == "yes" %}
from .passkeys import PasskeySettings
{%- endif %}
{%- if cookiecutter.use_redis == "yes" %}
from .redis import RedisUrl
{%- endif %}
{%- if cookiecutter.use_opentelemetry == "yes" %}
from .sentry import SentryDsn
{%- endif %}
{%- if cookiecutter.use_auth == "yes" and cookiecutter.use_frontend == "yes" %}
from .sso import SsoSettings
{%- endif %}

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "replace-me"})
MIN_SECRET_LENGTH = 32
# With a database server chosen, production must name it: an SQLite file in a container is lost.
DATABASE_URL_REQUIRED_IN_PRODUCTION = {{ "True" if cookiecutter.use_postgres == "yes" else "False" }}
# A URL's password (scheme://user:PASSWORD@host), up to the last "@": masked in a refusal.
URL_PASSWORD = re.compile(r"(://[^:/@]*:).*@")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# 8 threads serve about twice what 4 do on routes that wait on I/O, a little less on CPU-heavy ones.
WebThreads = Annotated[int, Field(ge=1, le=64, description="threads per worker: requests at once")]
DEFAULT_WEB_THREADS = 8
PoolSize = Annotated[int, Field(ge=1, le=100, description="per worker; unset: one per thread")]
Model = TypeVar("Model", bound=BaseSettings)


class SettingsError(ClickException):
    """A setting is missing or invalid: a command stops with this one line, and exit status 1."""


class LogSettings(BaseSettings):
    """How to log, read by the app and its server alike; each maps to an upper-case variable."""

    model_config = SettingsConfigDict(extra="ignore")

    log_level: LogLevel = Field("INFO", description="the least severe level logged")
    log_format: Literal["json", "text"] = Field("json", description="JSON lines, or plain text")


class Settings(LogSettings{% if cookiecutter.use_auth == "yes" %}, AuthSettings, MailSettings{% endif %}{% if cookiecutter.use_auth == "yes" and cookiecutter.use_frontend == "yes" %}, PasskeySettings, SsoSettings{% endif %}):
    """Every setting of the app, one flat table (docs/configuration.md)."""

    app_env: Literal["development", "test", "production"] = Field(
        "production",
        description="`production` refuses a weak secret; exported `production`/`test` skips `.env`",
    )
    secret_key: SecretStr = Field(
        "", validate_default=True, description="32+ random characters; required in production"
    )
    database_url: Annotated[str, AfterValidator(checked_database_url)] = Field(
        "sqlite:///{{ cookiecutter.package_name }}.db", description="SQLAlchemy URL (relative SQLite: `instance/`)"
    )
    web_threads: WebThreads = DEFAULT_WEB_THREADS
    database_pool_size: PoolSize = Field(default_factory=lambda data: data["web_threads"])
    database_connect_timeout: int = Field(3, ge=1, le=60, description="seconds to reach the server")
    database_statement_timeout: float = Field(20, ge=0, le=3600, description="seconds; 0: no limit")
{%- if cookiecutter.use_redis == "yes" %}
    redis_url: RedisUrl = Field(None, description="unset: no cache, limits in each worker's memory")
    redis_timeout: float = Field(1.0, gt=0, le=30, description="seconds per Redis connect or call")
    redis_retry_interval: float = Field(
        10.0, ge=0, le=3600, description="seconds a worker skips Redis after a failure"
    )
{%- endif %}
{%- if cookiecutter.use_celery == "yes" %}
    celery_task_time_limit: int = Field(
        30, ge=10, le=3600, description="seconds a task may run (warned 5 s earlier)"
    )
    celery_worker_concurrency: int = Field(2, ge=1, le=64, description="tasks per worker at once")
    celery_task_always_eager: bool = Field(False, description="run tasks in the calling process")
    celery_visibility_timeout: int = Field(
        90, ge=2, le=86400, description="seconds before a dead worker's task is redelivered"
    )
    celery_requeue_after: int = Field(
        300, ge=1, le=86400, description="seconds an item may be pending before it is re-queued"
    )
    celery_requeue_interval: float = Field(
        60, ge=1, le=86400, description="seconds between the scheduler's re-queue passes"
    )
{%- endif %}
{%- if cookiecutter.use_frontend == "yes" %}
    session_cookie_secure: bool | None = Field(
        None, description="send the session cookie over HTTPS only; unset: in production"
    )
    pending_poll_seconds: int = Field(
        300, ge=0, le=3600, description="how long a page asks about its pending items; 0: never"
    )
{%- endif %}
{%- if cookiecutter.use_nginx == "yes" %}
    trusted_proxies: int = Field(1, ge=0, le=10, description="proxies whose `X-Forwarded-*` count")
{%- endif %}
    health_check_timeout: float = Field(2.0, gt=0, le=30, description="seconds `/readyz` may wait")
    ratelimit_write: Limits = Field("60 per minute", description="per client, on each write route")
    ratelimit_default: OptionalLimits = Field("", description="per client, elsewhere; empty: none")
    cache_ttl_seconds: int = Field(
        60, ge=0, le=86400, description="seconds a cached read is kept; 0: none"
    )
    max_content_length: int = Field(
        1_048_576, ge=1024, le=10**10, description="largest request body in bytes"
    )
{%- if cookiecutter.use_opentelemetry == "yes" %}
    sentry_dsn: SentryDsn = Field(
        "", description="Sentry's DSN: error reports sent there; empty: none"
    )
{%- endif %}
    metrics_enabled: bool = Field(True, description="serve `/metrics` and count requests")
    prometheus_multiproc_dir: MetricsFolder = Field(None, description="unset: a temporary folder")

    @model_validator(mode="after")
    def _ready_for_production(self) -> "Settings":
        """Refuse a weak SECRET_KEY, or a default DATABASE_URL, in production; elsewhere invent
        a random secret, so a bare checkout runs."""
        secret = self.secret_key.get_secret_value()
        weak = secret.strip().lower() in PLACEHOLDER_SECRETS
        if self.app_env == "production" and (weak or len(secret) < MIN_SECRET_LENGTH):
            problem = "missing or a placeholder" if weak else "shorter than 32 characters"
            raise ValueError(
                f"SECRET_KEY is {problem}; set it to a long random value "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        if weak:
            self.secret_key = SecretStr(secrets.token_urlsafe(48))
        unset = "database_url" not in self.model_fields_set
        if self.app_env == "production" and DATABASE_URL_REQUIRED_IN_PRODUCTION and unset:
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
                f"CELERY_VISIBILITY_TIMEOUT ({self.celery_visibility_timeout}) must be longer than "
                f"CELERY_TASK_TIME_LIMIT ({self.celery_task_time_limit}), or a task runs twice"
            )
        return self
{%- endif %}

{%- if cookiecutter.use_auth == "yes" %}

    def secret_keys(self) -> list[str]:
        """Return the keys a signature or a ciphertext may have been made with, the oldest
        first: SECRET_KEY_FALLBACKS, then SECRET_KEY, the one that signs and encrypts."""
        fallbacks = self.secret_key_fallbacks.get_secret_value().split(",")
        return [*filter(None, map(str.strip, fallbacks)), self.secret_key.get_secret_value()]
{%- endif %}

    def flask_config(self) -> dict[str, object]:
        """Return the Flask config keys derived from these settings."""
        return {
{%- if cookiecutter.use_frontend == "yes" %}
            # The pages' session cookie is signed with it. (Given a secret key, Flask opens a
            # session on every request: a bake without pages gives it none.)
            "SECRET_KEY": self.secret_key.get_secret_value(),
{%- endif %}
{%- if cookiecutter.use_frontend == "yes" and cookiecutter.use_auth == "yes" %}
            "SECRET_KEY_FALLBACKS": self.secret_keys()[:-1],  # sessions signed before a rotation
{%- endif %}
            "MAX_CONTENT_LENGTH": self.max_content_length,
            "TESTING": self.app_env == "test",
        }


def shown(model: type[BaseSettings], name: str, value: object) -> str:
    """Return a refused value as a refusal prints it: a secret (a SecretStr field) hidden, the
    password of a URL masked, anything else as given."""
    field = model.model_fields.get(name)
    if field is not None and SecretStr in (field.annotation, *get_args(field.annotation)):
        return "'<hidden>'"
    return repr(URL_PASSWORD.sub(r"\1***@", value) if isinstance(value, str) else value)


def load_settings(model: type[Model], overrides: dict[str, Any] | None = None) -> Model:
    """Load ``model`` from the environment, then .env (unless the process environment says
    APP_ENV=production, as the image does, or test, as the tests do); raise SettingsError
    naming each bad variable."""
    without_env_file = os.environ.get("APP_ENV", "").strip().lower() in {"production", "test"}
    try:
        return model(_env_file=None if without_env_file else ".env", **(overrides or {}))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if error["type"] == "default_factory_not_called":
                continue  # a default taken from a setting refused: that one is named
            name = ".".join(str(part) for part in error["loc"])
            detail = error["msg"].removeprefix("Value error, ")
            given = shown(model, name, error["input"])
            problems.append(f"{name.upper()}={given}: {detail}" if name else detail)
        raise SettingsError("Invalid settings: " + "; ".join(problems)) from None
