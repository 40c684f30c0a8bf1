"""What every page shares: CSRF and the Content-Security-Policy, HTMX, static files, templates."""

from flask import Flask

from . import dev_toolbar, pages, security, static_files


def init_app(app: Flask) -> None:
    """Protect and serve the pages: CSRF and the policy, static files, the shared templates."""
    security.init_app(app)  # CSRF for the pages' forms (routes declaring Access.PAGE)
    static_files.init_app(app)
    pages.init_app(app)
    dev_toolbar.init_app(app)  # development only; it relaxes the policy security set
