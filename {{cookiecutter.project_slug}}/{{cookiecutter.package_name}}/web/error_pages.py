"""Errors as pages for people: a browser's page request that fails (a bad link, a form sent after
its session ended, a limit, an outage) gets a small page in the site's style with the same words
and status, a way back, and for a 429 the wait in words. The API, HTMX requests and every client
that prefers JSON keep the JSON error body."""

from flask import Flask, Response, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from ..platform.errors import Detail, Header, show_as_page
from ..platform.routes import Access, declared
from .htmx import is_htmx
from .security import send_policy


def endpoint_of_path() -> str | None:
    """Return the endpoint of the route the request's path reached, also when its method was
    not allowed (a 405: matched again with one of the route's methods); None for no route."""
    if request.endpoint is not None:
        return request.endpoint
    allowed = getattr(request.routing_exception, "valid_methods", None)
    if not allowed:
        return None
    try:
        endpoint, _ = current_app.url_map.bind_to_environ(request.environ).match(method=allowed[0])
    except HTTPException:
        return None
    return str(endpoint)


def wants_a_page() -> bool:
    """Say whether the request is a browser's page request: it prefers HTML to JSON (a browser's
    navigation says so, a script's fetch does not), HTMX did not send it, and its path reached no
    route (a bad link) or a page's (the API's routes answer JSON whatever is asked)."""
    if is_htmx():
        return False
    if request.accept_mimetypes.best_match(("application/json", "text/html")) != "text/html":
        return False
    endpoint = endpoint_of_path()
    return endpoint is None or declared(current_app, endpoint) is Access.PAGE


def wait_in_words(seconds: str | None) -> str | None:
    """Return a Retry-After of seconds as words ("2 minutes"); None when it is not a number."""
    if seconds is None or not (seconds.isascii() and seconds.isdigit()):
        return None
    wait = int(seconds)
    if wait < 60:
        return f"{wait} second{'s' if wait != 1 else ''}"
    minutes = -(-wait // 60)  # rounded up: never sooner than the limit allows
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def error_page(
    status: int, title: str, detail: Detail, headers: tuple[Header, ...]
) -> Response | None:
    """Render the error as a page when the request is a browser's page request, else None."""
    if not wants_a_page():
        return None
    retry_after = dict(headers).get("Retry-After") if status in (429, 503) else None
    try:
        html = render_template(
            "error.html",
            status=status,
            error_title=title,
            sentences=[detail] if isinstance(detail, str) else [],
            fields=detail if isinstance(detail, list) else [],
            wait=wait_in_words(retry_after),
        )
    except Exception:  # a page that cannot be drawn must not hide the error: JSON, logged
        current_app.logger.exception("the error page could not be rendered")
        return None
    page = Response(html, status=status, mimetype="text/html")
    # Kept by no cache, and naming its address to no one: it may answer a page whose address
    # carries a mailed link's token (security.keeps_its_link_secret, which an error skips).
    page.headers["Cache-Control"] = "no-store"
    page.headers["Referrer-Policy"] = "no-referrer"
    return send_policy(page)


def init_app(app: Flask) -> None:
    """Show the errors of browsers' page requests as pages."""
    show_as_page(app, error_page)
