"""Trust the reverse proxies in front of the app (TRUSTED_PROXIES; nginx is one) and no others.

Each trusted hop appends to X-Forwarded-For; the app takes the client's address, scheme and host
from the values those hops set, so a client cannot choose them, as long as it can only reach the
app through the proxies (gunicorn listens only where they can reach it).
"""

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    """Honour X-Forwarded-For/Proto/Host/Port from TRUSTED_PROXIES hops; none when it is 0."""
    hops = app.extensions["settings"].trusted_proxies
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
