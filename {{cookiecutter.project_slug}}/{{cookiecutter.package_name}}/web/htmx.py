"""What the pages need to know of HTMX's requests."""

from flask import request


def is_htmx() -> bool:
    """Say whether HTMX sent this request (it then wants a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"
