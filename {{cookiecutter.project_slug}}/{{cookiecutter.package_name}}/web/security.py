"""Security of the pages: CSRF tokens on every form and HTMX request, cookies, and the CSP.

Only pages (routes declaring Access.PAGE) check CSRF tokens: the JSON APIs take no cookies, so a
forged cross-site request to them holds no credentials. The policy, set here only, allows
scripts and styles from this origin, never inline.
"""

import functools
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, make_response, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError

from ..extensions import csrf
from ..platform.errors import Answer, json_error
from ..platform.routes import Access, declared

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
# Why a form posted from another site fails, whatever the scheme: shown, not logged (a forgery
# gets it too, and it tells the operator of nothing to fix).
CROSS_SITE_POST = (
    "This form was sent from another site, and the browser sends the session cookie holding the "
    "CSRF token only with this site's own requests (SameSite=Lax): send the form from this "
    "site's pages."
)


def from_another_site() -> bool:
    """Say whether the browser tells this request came from another site: by Sec-Fetch-Site
    (sent over HTTPS), else by an Origin naming another host ("null" tells nothing)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site:
        return fetch_site == "cross-site"
    try:
        origin = urlsplit(request.headers.get("Origin", "")).hostname
    except ValueError:  # not a URL ("http://[", say): it tells nothing either
        return False
    return origin is not None and origin != urlsplit(request.host_url).hostname


def refuse_forgery(exc: CSRFError) -> Answer:
    """Answer a failed CSRF check with 400, saying why when the session cookie did not come:
    withheld from another site's post (SameSite), or HTTPS-only on a page served over HTTP."""
    detail = f"{exc.description} Reload the page and retry."
    if current_app.config["SESSION_COOKIE_NAME"] not in request.cookies:
        if from_another_site():
            detail = CROSS_SITE_POST
        elif current_app.config["SESSION_COOKIE_SECURE"] and not request.is_secure:
            current_app.logger.warning("CSRF check failed: %s", SECURE_COOKIE_OVER_HTTP)
            detail = SECURE_COOKIE_OVER_HTTP
    return json_error(400, exc.name, detail)


def send_policy(response: Response) -> Response:
    """Give an answer the Content-Security-Policy (each blueprint of pages sends it after its
    requests)."""
    response.headers["Content-Security-Policy"] = current_app.config["CONTENT_SECURITY_POLICY"]
    return response


def no_store(response: Response) -> Response:
    """Have no cache keep an answer (pages showing a secret or other people's data send it
    after their requests)."""
    response.headers["Cache-Control"] = "no-store"
    return response


def keeps_its_link_secret(
    view: Callable[..., ResponseReturnValue],
) -> Callable[..., ResponseReturnValue]:
    """Mark the answers of a page whose address or form carries a token (a mailed link's):
    no Referer names its address to the sites it links to or loads from, and no cache keeps
    it (OWASP's forgot-password guidance)."""

    @functools.wraps(view)
    def answer(*args: object, **kwargs: object) -> Response:
        response = make_response(view(*args, **kwargs))
        response.headers["Referrer-Policy"] = "no-referrer"
        return no_store(response)

    return answer


def init_app(app: Flask) -> None:
    """Protect the pages' forms with CSRF tokens, harden the cookie."""
    settings = app.extensions["settings"]
    secure = settings.session_cookie_secure
    app.config.update(
        SESSION_COOKIE_SAMESITE="Lax",  # HttpOnly is Flask's default
        SESSION_COOKIE_SECURE=settings.app_env == "production" if secure is None else secure,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session cookie
        WTF_CSRF_CHECK_DEFAULT=False,  # protect_pages checks the pages' requests only
        CONTENT_SECURITY_POLICY=CONTENT_SECURITY_POLICY,
    )
    csrf.init_app(app)
    app.before_request(protect_pages)
    app.register_error_handler(CSRFError, refuse_forgery)


def protect_pages() -> None:
    """Check the CSRF token of a request to a page (its route declares Access.PAGE), unless
    WTF_CSRF_ENABLED is off; Flask-WTF checks only the methods that change something."""
    endpoint = request.endpoint
    if not endpoint or not current_app.config["WTF_CSRF_ENABLED"]:
        return
    if declared(current_app, endpoint) is Access.PAGE:
        csrf.protect()
