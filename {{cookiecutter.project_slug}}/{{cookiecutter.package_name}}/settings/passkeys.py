"""The settings of passkeys: the site (origins and relying party id) the browser signs for."""

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DOMAIN_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
# Browsers treat these origins as secure contexts over plain HTTP (a local trial, the tests).
LOCAL_HOSTS = frozenset({"localhost"})


def checked_origins(value: str) -> str:
    """Return comma-separated origins like ``https://example.com``; raise ValueError otherwise."""
    for origin in origins_of(value):
        scheme, _, rest = origin.partition("://")
        host = host_of(origin)
        if scheme not in {"http", "https"} or not host or "/" in rest or is_ip_address(host):
            raise ValueError(
                f"{origin!r} is not an origin: expected a scheme and a domain name, such as "
                "https://example.com or http://localhost:8000 (no path, no IP address)"
            )
    return value


def checked_rp_id(value: str) -> str:
    """Return a relying party id: empty, or a domain name such as ``example.com``, lower case;
    raise ValueError otherwise."""
    value = value.strip().lower()
    if value and (not DOMAIN_NAME.fullmatch(value) or is_ip_address(value)):
        raise ValueError("expected a domain name such as example.com (no scheme, port or address)")
    return value


def origins_of(value: str) -> list[str]:
    """Return the origins a comma-separated setting names, without blanks or a trailing slash."""
    return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]


def host_of(origin: str) -> str:
    """Return an origin's host name, without its scheme and port."""
    rest = origin.partition("://")[2]
    return rest.rsplit(":", 1)[0] if rest.rsplit(":", 1)[-1].isdigit() else rest


def is_ip_address(host: str) -> bool:
    """Say whether ``host`` is an IP address (no passkey belongs to one)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class PasskeySettings(BaseSettings):
    """Passkeys (WebAuthn) on the pages; each maps to an upper-case variable."""

    model_config = SettingsConfigDict(extra="ignore")

    passkey_origins: Annotated[str, AfterValidator(checked_origins)] = Field(
        "",
        description="the pages' origins, comma-separated (`https://a.example`); empty: no passkeys",
    )
    passkey_rp_id: Annotated[str, AfterValidator(checked_rp_id)] = Field(
        "", description="the domain passkeys belong to; empty: the first origin's host name"
    )
    passkey_challenge_seconds: int = Field(
        300, ge=30, le=900, description="seconds a passkey ceremony may take, from its challenge"
    )

    @model_validator(mode="after")
    def _passkeys_fit_the_origins(self) -> "PasskeySettings":
        """Refuse a relying party id the origins are not within, and, in production, an origin
        over plain HTTP (but localhost's): a browser would refuse every passkey there."""
        origins = origins_of(self.passkey_origins)
        if not origins:
            return self
        self.passkey_rp_id = self.passkey_rp_id or host_of(origins[0]).lower()
        outside = [o for o in origins if not within(host_of(o).lower(), self.passkey_rp_id)]
        if outside:
            raise ValueError(
                f"PASSKEY_RP_ID ({self.passkey_rp_id}) must be the host of every origin in "
                f"PASSKEY_ORIGINS, or a domain above it; {', '.join(outside)} is not"
            )
        # Settings declares APP_ENV; this class alone (its tests) counts as production.
        production = getattr(self, "app_env", "production") == "production"
        plain = [o for o in origins if o.startswith("http:") and host_of(o) not in LOCAL_HOSTS]
        if production and plain:
            raise ValueError(
                f"PASSKEY_ORIGINS has {', '.join(plain)}: production serves passkeys over "
                "https:// only (browsers refuse them on plain HTTP, but for localhost)"
            )
        return self


def within(host: str, domain: str) -> bool:
    """Say whether ``host`` is ``domain`` or a name under it."""
    return host == domain or host.endswith(f".{domain}")
