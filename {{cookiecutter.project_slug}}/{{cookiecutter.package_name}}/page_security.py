"""Security of the pages: CSRF tokens on every form and HTMX request, cookies, and the CSP.

The JSON API stays exempt from CSRF: it takes no cookies, so a forged cross-site request holds
no credentials. The Content-Security-Policy is defined here only (no proxy adds one): scripts and
styles come from this origin, never inline, and nothing is evaluated.
"""

from flask import Flask, current_app, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from . import api, pages
from .errors import json_error

csrf = CSRFProtect()
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Why every form fails when production pages are served over plain HTTP: shown and logged.
SECURE_COOKIE_OVER_HTTP = (
    "This page came over plain HTTP, but the session cookie holding its CSRF token is sent over "
    "HTTPS only (SESSION_COOKIE_SECURE), so the browser sent none back: serve the pages over "
    "HTTPS, or set SESSION_COOKIE_SECURE=false (plain HTTP on a trusted network only)."
)


def _protect_from_forgery() -> None:
    """Check the CSRF token of a request whose method can change state (POST, PUT, PATCH, DELETE).

    flask-wtf's own hook looks up the route's exemptions before the method: every GET, probes
    included, paid for that lookup, about as much as the rest of a probe's hooks together. This
    hook asks for the method first, then lets flask-wtf check exemptions and token as before.
    """
    config = current_app.config
    if config["WTF_CSRF_ENABLED"] and request.method in config["WTF_CSRF_METHODS"]:
        csrf.protect(apply_exemptions=True)


def _refuse_forgery(exc: CSRFError):
    """Answer a failed CSRF check with a 400 saying what to do.

    A request over plain HTTP without the session cookie, which is HTTPS-only, fails because of
    that setting (a browser neither keeps nor sends such a cookie over HTTP): say so, and log it.
    """
    config = current_app.config
    cookie = current_app.session_interface.get_cookie_name(current_app)
    if config["SESSION_COOKIE_SECURE"] and not request.is_secure and cookie not in request.cookies:
        current_app.logger.warning("CSRF check failed: %s", SECURE_COOKIE_OVER_HTTP)
        return json_error(400, exc.name, SECURE_COOKIE_OVER_HTTP)
    return json_error(400, exc.name, f"{exc.description} Reload the page and retry.")


@pages.bp.after_request  # the pages' answers only: other requests do not run it
def _set_policy(response):
    """Give every answer of the pages the Content-Security-Policy."""
    response.headers.setdefault(
        "Content-Security-Policy", current_app.config["CONTENT_SECURITY_POLICY"]
    )
    return response


def init_app(app: Flask) -> None:
    """Protect forms with CSRF tokens (not the API), harden the cookie, send the policy."""
    secure = app.extensions["settings"].session_cookie_secure
    if secure is None:
        secure = app.extensions["settings"].app_env == "production"
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session cookie
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by _protect_from_forgery instead
        CONTENT_SECURITY_POLICY=CONTENT_SECURITY_POLICY,
    )
    csrf.init_app(app)
    csrf.exempt(api.bp)
    app.before_request(_protect_from_forgery)
    app.register_error_handler(CSRFError, _refuse_forgery)
