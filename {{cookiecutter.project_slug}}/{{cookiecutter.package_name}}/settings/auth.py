"""The settings of users and their API tokens."""

from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .limits import Limits

MIN_KEY_LENGTH = 32  # as SECRET_KEY's in production


def checked_fallbacks(value: SecretStr) -> SecretStr:
    """Refuse a key of SECRET_KEY_FALLBACKS shorter than SECRET_KEY may be: it would still let
    its holder sign links."""
    keys = [key.strip() for key in value.get_secret_value().split(",") if key.strip()]
    if any(len(key) < MIN_KEY_LENGTH for key in keys):
        raise ValueError(f"each key must be {MIN_KEY_LENGTH} characters or more")
    return value


Fallbacks = Annotated[SecretStr, AfterValidator(checked_fallbacks)]


class AuthSettings(BaseSettings):
    """Users and their API tokens; each maps to an upper-case variable."""

    model_config = SettingsConfigDict(extra="ignore")

    secret_key_fallbacks: Fallbacks = Field(
        "",
        validate_default=True,
        description="earlier SECRET_KEYs, comma-separated: still read, never used to sign",
    )
    auth_token_lifetime: int = Field(
        86400, ge=300, le=2_592_000, description="seconds an API token lives"
    )
    auth_private_reads: bool = Field(
        False,
        description="reading the items needs a token{% if cookiecutter.use_frontend == "yes" %} (on the pages: a sign-in){% endif %} too",
    )
    ratelimit_sign_in: Limits = Field(
        "10 per minute;100 per hour", description="sign-in attempts per client address"
    )
    auth_reset_lifetime: int = Field(
        3600, ge=300, le=86400, description="seconds a password reset link works (used once)"
    )
    auth_sign_up: bool = Field(False, description="anyone may sign up (`POST /api/auth/sign-up`)")
    auth_verify_lifetime: int = Field(
        86400, ge=300, le=604_800, description="seconds an address verification link works"
    )
    ratelimit_mail_account: Limits = Field(
        "3 per hour;10 per day",
        description="mails per inbox (resets, sign-ups; +tags count as the address), known or not",
    )
    auth_require_second_factor: bool = Field(
        False,
        description="a password sign-in without a second factor gets only the factor's set-up",
    )
    ratelimit_sign_in_account: Limits = Field(
        "5 per minute;20 per hour",
        description="password checks per account, from any address (a success clears its count)",
    )
    audit_retention_days: int = Field(
        365,
        ge=1,
        le=36_500,
        description="days the audit trail keeps an event (`flask audit prune`)",
    )
