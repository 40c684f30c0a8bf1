"""Static files with digested names: the templates' URL helper, cache headers, the digest app.

`make assets` builds the bundles into static/, then Flask-Static-Digest copies each under a name
holding its content's MD5 and writes the manifest that static_url_for() in the templates reads.
A digested file never changes: browsers keep it a year.
"""

import re

from flask import Flask, Response, request
from flask_static_digest import FlaskStaticDigest

IMMUTABLE = "public, max-age=31536000, immutable"
DIGESTED_NAME = re.compile(r"-[0-9a-f]{32}(\.[^/]+)?$")  # app-<32 hex digits>.js


def cache_digested(response: Response) -> Response:
    """Let browsers and proxies keep a digested static file for a year."""
    digested = request.endpoint == "static" and DIGESTED_NAME.search(request.path)
    if digested and response.status_code in (200, 206, 304):
        response.headers["Cache-Control"] = IMMUTABLE
    return response


def init_app(app: Flask) -> None:
    """Read the digest manifest (static_url_for); cache digested files a year."""
    app.extensions["static_digest"] = FlaskStaticDigest(app)
    app.after_request(cache_digested)


def digest_app() -> Flask:
    """Return an app of the package's static folder alone, for `flask digest compile` where no
    secret or database exists (the image's build stage; the Makefile's DIGEST)."""
    app = Flask("{{ cookiecutter.package_name }}")
{%- if cookiecutter.use_nginx == "no" %}
    app.config["FLASK_STATIC_DIGEST_COMPRESSION"] = []  # no proxy here to send a gzip variant
{%- endif %}
    FlaskStaticDigest(app)  # completes the config the digest command reads
    return app
