"""Single sign-on's provider, through Authlib's Flask client: the provider's discovery document
and keys (JWKS) fetched and cached as Authlib does, the Authorization Code flow with PKCE,
``state`` and ``nonce``, and the ID token verified (signature, issuer, audience, expiry, nonce).

auth/sso_pages.py makes one only when OIDC_ISSUER names a provider, so that a process serving no
single sign-on never loads Authlib and requests.
"""

import logging

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, request
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

from ..settings import Settings
from . import sso

TIMEOUT = 10  # seconds for each request to the provider (discovery, keys, token)


class Provider:
    """The provider OIDC_ISSUER names, as the pages use it."""

    def __init__(self, app: Flask, settings: Settings) -> None:
        """Register the provider's client with ``app``."""
        # Authlib logs the PKCE verifier at DEBUG (LOG_LEVEL=DEBUG, `make dev`): no secret is.
        logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLogger().level))
        self.issuer = settings.oidc_issuer
        self.client = OAuth(app).register(
            "sso",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value(),
            server_metadata_url=self.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={
                "scope": settings.oidc_scopes,
                "code_challenge_method": "S256",  # PKCE
                "default_timeout": TIMEOUT,
            },
        )

    def redirect_to(self, redirect_uri: str) -> ResponseReturnValue:
        """Return the redirect to the provider's authorization endpoint, the flow's state kept
        in this session; raise sso.Refused when its discovery document does not come."""
        try:
            answer: ResponseReturnValue = self.client.authorize_redirect(redirect_uri)
        except (requests.RequestException, OAuthError, ValueError) as exc:
            raise sso.Refused(type(exc).__name__, sso.UNREACHABLE) from None
        return answer

    def claims(self) -> sso.Claims:
        """Return the claims of the ID token the provider's answer gets, verified by Authlib
        (the state this session holds, the code exchanged with the PKCE verifier, the token's
        signature by the provider's keys, its audience, expiry and nonce), its issuer pinned to
        OIDC_ISSUER (Authlib would take the discovery document's); raise sso.Refused."""
        if "error" in request.args:  # cancelled, or refused by the provider (RFC 6749 4.1.2.1)
            error = request.args["error"][:40]  # RFC 6749's codes are letters and "_": only those
            code = "".join(c for c in error if (c.isascii() and c.isalpha()) or c == "_")
            raise sso.Refused(f"provider:{code}", sso.CANCELLED)
        try:
            token = self.client.authorize_access_token(
                claims_options={"iss": {"essential": True, "values": [self.issuer]}}
            )
        except requests.RequestException:
            raise sso.Refused("unreachable", sso.UNREACHABLE) from None
        except (OAuthError, JoseError, ValueError) as exc:  # state, token or claims refused
            raise sso.Refused(type(exc).__name__, sso.FAILED) from None
        userinfo = token.get("userinfo")
        if userinfo is None:  # no ID token: nothing says who signed in
            raise sso.Refused("no_id_token", sso.FAILED)
        return sso.claims_of(self.issuer, dict(userinfo))
