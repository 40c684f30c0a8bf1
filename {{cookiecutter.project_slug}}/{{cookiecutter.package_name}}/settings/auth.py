"""The settings of users and their API tokens."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .limits import Limits


class AuthSettings(BaseSettings):
    """Users and their API tokens; each maps to an upper-case variable."""

    model_config = SettingsConfigDict(extra="ignore")

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
