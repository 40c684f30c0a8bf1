"""Trust the reverse proxies in front of the app (TRUSTED_PROXIES; nginx is one) and no others.

The client's address, scheme and host are those the trusted hops set, so a client cannot choose
them as long as it reaches the app only through the proxies.
"""

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    """Honour X-Forwarded-For/Proto/Host/Port from TRUSTED_PROXIES hops; none when it is 0."""
    hops = app.extensions["settings"].trusted_proxies
    proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    # Flask's documented way to add WSGI middleware; to mypy, wsgi_app is a method.
    app.wsgi_app = proxied  # type: ignore[method-assign]
