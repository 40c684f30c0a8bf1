"""Flask-DebugToolbar on the pages, in development only (the dev group, not the image).

It runs inline scripts and styles, which the pages' policy then allows.
"""

from flask import Flask

from ..platform.routes import Access, declare


def init_app(app: Flask) -> None:
    """Show the toolbar on the pages when APP_ENV=development and the toolbar is installed."""
    if app.extensions["settings"].app_env != "development":
        return
    try:
        from flask_debugtoolbar import DebugToolbarExtension
    except ImportError:
        app.logger.info("Flask-DebugToolbar is not installed (make install adds it): no toolbar")
        return
    app.config.update(DEBUG_TB_ENABLED=True, DEBUG_TB_INTERCEPT_REDIRECTS=False)
    policy = app.config["CONTENT_SECURITY_POLICY"]
    for directive in ("script-src", "style-src"):
        policy = policy.replace(f"{directive} 'self'", f"{directive} 'self' 'unsafe-inline'")
    app.config["CONTENT_SECURITY_POLICY"] = policy
    routes = set(app.view_functions)
    app.extensions["debug_toolbar"] = DebugToolbarExtension(app)
    declare(app, set(app.view_functions) - routes, Access.PAGE)  # the toolbar's own pages
