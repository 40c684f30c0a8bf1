"""What every page shares: CSRF and the Content-Security-Policy, HTMX, static files, templates,
errors shown as pages."""

from flask import Flask

from . import dev_toolbar, error_pages, pages, security, static_files


def init_app(app: Flask) -> None:
    """Protect and serve the pages: CSRF and the policy, static files, the shared templates."""
    security.init_app(app)  # CSRF for the pages' forms (routes declaring Access.PAGE)
    static_files.init_app(app)
    pages.init_app(app)
    error_pages.init_app(app)  # a browser's page request that fails gets a page, not JSON
    dev_toolbar.init_app(app)  # development only; it relaxes the policy security set
