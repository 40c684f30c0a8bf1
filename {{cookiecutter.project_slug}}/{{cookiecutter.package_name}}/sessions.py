"""Cookie sessions, opened only for requests that carry one: the API's requests skip the signer.

Flask builds a signing serializer for every request to open its cookie session, used or not, and
reads every cookie setting again to save a session nobody touched; the API uses none, and that
work was a tenth of a probe's time in the app. A request that sends a session cookie gets Flask's
own handling, and so does any session a view read or wrote.
"""

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

COOKIE = "HTTP_COOKIE"  # the WSGI environ key of the Cookie header


class LazyCookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, without a signer for requests that send no cookie."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Return an empty session when the request has no session cookie, else Flask's."""
        if app.secret_key and (
            COOKIE not in request.environ or self.get_cookie_name(app) not in request.cookies
        ):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SecureCookieSession, response: Response) -> None:
        """Save as Flask does, unless the session is empty and nothing read or wrote it.

        For such a session Flask's own save only reads the cookie settings, then returns.
        """
        if session or session.modified or session.accessed:
            super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    """Use the lazy cookie sessions."""
    app.session_interface = LazyCookieSessions()
