"""The settings of single sign-on: the OpenID Connect provider the pages offer a sign-in with."""

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Plain HTTP is taken for these hosts only: a provider on the same machine (a trial, the tests).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def checked_issuer(value: str) -> str:
    """Return a provider's issuer URL, or an empty one; raise ValueError. It is kept as given,
    trailing slash included: the ID tokens' ``iss`` must be the very same string."""
    value = value.strip()
    parts = urlsplit(value)
    secure = parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    )
    if value and (not secure or not parts.hostname or parts.query or parts.fragment):
        raise ValueError(
            "an issuer is the provider's https:// URL, as its discovery document names it, "
            "e.g. https://accounts.google.com (http:// only for localhost)"
        )
    return value


def checked_credential(value: str) -> str:
    """Return a client id or secret as a provider makes them: visible ASCII characters, no
    spaces (a pasted line's quotes or blanks would fail at the provider only); raise ValueError."""
    if not all("!" <= character <= "~" for character in value):
        raise ValueError("expected the provider's value as given: visible ASCII, no spaces")
    return value


def checked_secret(value: SecretStr) -> SecretStr:
    """Return a client secret fit to send (as checked_credential); raise ValueError."""
    checked_credential(value.get_secret_value())
    return value


def checked_name(value: str) -> str:
    """Return a button's name: letters, digits, spaces and . - ' & ( ); raise ValueError."""
    if not all(character.isalnum() or character in " .-'&()" for character in value):
        raise ValueError("a name has letters, digits, spaces and . - ' & ( ) only, e.g. Google")
    return value


def checked_scopes(value: str) -> str:
    """Return space-separated scopes that ask for an ID token (openid); raise ValueError."""
    scopes = value.split()
    if "openid" not in scopes:
        raise ValueError("the scopes must include openid, e.g. 'openid email profile'")
    return " ".join(scopes)


class SsoSettings(BaseSettings):
    """Single sign-on with an OpenID Connect provider; each maps to an upper-case variable."""

    model_config = SettingsConfigDict(extra="ignore")

    oidc_issuer: Annotated[str, AfterValidator(checked_issuer)] = Field(
        "", description="the provider's issuer URL (discovery under it); empty: no single sign-on"
    )
    oidc_client_id: Annotated[str, AfterValidator(checked_credential)] = Field(
        "", max_length=255, description="this service's client id at the provider"
    )
    oidc_client_secret: Annotated[SecretStr, AfterValidator(checked_secret)] = Field(
        "", validate_default=True, description="this service's client secret at the provider"
    )
    oidc_name: Annotated[str, AfterValidator(checked_name)] = Field(
        "your provider",
        min_length=1,
        max_length=40,
        description="the provider's name on the button",
    )
    oidc_scopes: Annotated[str, AfterValidator(checked_scopes)] = Field(
        "openid email profile", description="the scopes asked for, space-separated"
    )
    oidc_sign_up: bool = Field(
        False, description="a provider's user without an account here gets one at first sign-in"
    )

    @model_validator(mode="after")
    def _client_named(self) -> "SsoSettings":
        """Refuse an issuer without the client's id and secret, or without PUBLIC_URL (the
        redirect URI the provider knows is made of it)."""
        if not self.oidc_issuer:
            return self
        missing = [
            name
            for name, value in (
                ("OIDC_CLIENT_ID", self.oidc_client_id),
                ("OIDC_CLIENT_SECRET", self.oidc_client_secret.get_secret_value()),
                # Settings declares PUBLIC_URL (MailSettings); this class alone has none.
                ("PUBLIC_URL", getattr(self, "public_url", "set")),
            )
            if not value.strip()
        ]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} not set; OIDC_ISSUER needs the client's id and secret "
                "at the provider, and PUBLIC_URL for the redirect URI "
                "(PUBLIC_URL/sign-in/sso/callback)"
            )
        return self
