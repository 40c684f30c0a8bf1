"""Cookie sessions, opened only for requests that carry one: the API's requests skip the signer.

Flask builds a signing serializer for every request to open its cookie session, used or not; the
API uses none, and that work was a tenth of a probe's time in the app. A request that sends a
session cookie gets Flask's own handling.
"""

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class LazyCookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, without a signer for requests that send no cookie."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Return an empty session when the request has no session cookie, else Flask's."""
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    """Use the lazy cookie sessions."""
    app.session_interface = LazyCookieSessions()
