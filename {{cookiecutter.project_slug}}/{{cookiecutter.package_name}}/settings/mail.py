"""The settings of outbound mail: the server, the sender, the timeout (checked, not connected)."""

from email.utils import parseaddr
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SCHEMES = ("smtp", "smtps")  # STARTTLS when the server offers it; TLS from the first byte


def checked_mail_url(value: str | None) -> str | None:
    """Return a MAIL_URL smtplib can use, or None for an empty one; raise ValueError."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in SCHEMES:
        raise ValueError(
            "a mail URL starts with smtp:// (STARTTLS when the server offers it) or smtps:// "
            "(TLS from the start), e.g. smtps://user:password@mail.example.com"
        )
    try:
        parts.port  # noqa: B018  (urlsplit checks the port only when it is read)
    except ValueError:
        raise ValueError("the port of a mail URL is a number from 0 to 65535") from None
    if not parts.hostname:
        raise ValueError("a mail URL names a host, e.g. smtp://mailpit:1025")
    return value


def checked_sender(value: str) -> str:
    """Return a MAIL_FROM that names an address, or an empty one; raise ValueError."""
    if value and "@" not in parseaddr(value)[1]:
        raise ValueError("a sender is an address, e.g. My Service <no-reply@example.com>")
    return value


def checked_public_url(value: str) -> str:
    """Return an http(s):// address without a trailing slash, or an empty one; raise ValueError."""
    parts = urlsplit(value)
    if value and (parts.scheme not in ("http", "https") or not parts.hostname or parts.query):
        raise ValueError("a public URL is the service's address, e.g. https://app.example.com")
    return value.rstrip("/")


MailUrl = Annotated[str | None, AfterValidator(checked_mail_url)]
Sender = Annotated[str, AfterValidator(checked_sender)]
PublicUrl = Annotated[str, AfterValidator(checked_public_url)]


class MailSettings(BaseSettings):
    """Outbound mail; each maps to an upper-case variable."""

    model_config = SettingsConfigDict(extra="ignore")

    mail_url: MailUrl = Field(
        None, description="`smtp://` or `smtps://` server, with user and password; unset: no mail"
    )
    mail_from: Sender = Field("", description="the sender: `Name <no-reply@example.com>`")
    public_url: PublicUrl = Field(
        "", description="the service's address, e.g. `https://app.example.com`: links in mail"
    )
    mail_timeout: float = Field(
        10, gt=0, le=60, description="seconds to reach the mail server, and for each reply"
    )

    @model_validator(mode="after")
    def _sender_named(self) -> "MailSettings":
        """Refuse a MAIL_URL without a sender (servers refuse such mail) or a PUBLIC_URL."""
        if self.mail_url and not self.mail_from:
            raise ValueError(
                "MAIL_FROM is not set; MAIL_URL needs a sender, e.g. no-reply@example.com"
            )
        if self.mail_url and not self.public_url:
            raise ValueError(
                "PUBLIC_URL is not set; MAIL_URL needs it for the links in mail, e.g. "
                "https://app.example.com"
            )
        return self
