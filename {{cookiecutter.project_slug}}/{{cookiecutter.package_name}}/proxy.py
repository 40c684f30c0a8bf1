"""Trust exactly one reverse proxy (the generated nginx) for client address, scheme and host."""

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    """Wrap the WSGI app so X-Forwarded-For/Proto/Host/Port from one hop are honoured."""
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)
