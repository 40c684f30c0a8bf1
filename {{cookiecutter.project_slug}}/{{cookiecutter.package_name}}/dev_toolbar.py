"""Flask-DebugToolbar on the pages, in development only.

It is a development requirement (requirements-dev.txt): production never imports it, and the
image does not contain it. The toolbar runs inline scripts and styles, so in development only the
pages' Content-Security-Policy allows them.
"""

import logging

from flask import Flask

log = logging.getLogger(__name__)
INLINE = "'self' 'unsafe-inline'"


def init_app(app: Flask) -> None:
    """Show the toolbar on the pages when APP_ENV=development and the toolbar is installed."""
    if app.extensions["settings"].app_env != "development":
        return
    try:
        from flask_debugtoolbar import DebugToolbarExtension
    except ImportError:
        log.info("Flask-DebugToolbar is not installed (requirements-dev.txt): no toolbar")
        return
    app.config.update(DEBUG_TB_ENABLED=True, DEBUG_TB_INTERCEPT_REDIRECTS=False)
    policy = app.config["CONTENT_SECURITY_POLICY"]
    app.config["CONTENT_SECURITY_POLICY"] = policy.replace(
        "script-src 'self'", f"script-src {INLINE}"
    ).replace("style-src 'self'", f"style-src {INLINE}")
    app.extensions["debug_toolbar"] = DebugToolbarExtension(app)
