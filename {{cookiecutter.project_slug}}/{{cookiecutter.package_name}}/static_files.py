"""Static files with digested names: the templates' URL helper, cache headers, the digest app.

`make assets` builds the bundles into static/, then Flask-Static-Digest copies each under a name
with its content's MD5 and writes gzip and brotli variants and a manifest; static_url_for() in
the templates reads that manifest. A digested file never changes, so browsers keep it a year.
"""

import functools
import re

from flask import Flask
from flask_static_digest import FlaskStaticDigest

IMMUTABLE = "public, max-age=31536000, immutable"
# Flask-Static-Digest's name of a digested file: ``app-<32 hex digits>.js``.
DIGESTED_NAME = re.compile(r"-[0-9a-f]{32}(\.[^/]+)?$")
COMPRESSION = ["gzip", "brotli"]


def caching_digested(serve_static):
    """Wrap the static files' view: let browsers and proxies keep a digested file for a year.

    A wrapper of that one view, not an after_request hook: other requests do not run it.
    """

    @functools.wraps(serve_static)
    def serve(filename: str, **kwargs):
        response = serve_static(filename=filename, **kwargs)
        if DIGESTED_NAME.search(filename) and response.status_code in (200, 206, 304):
            response.headers["Cache-Control"] = IMMUTABLE
        return response

    return serve


def configure(app: Flask) -> None:
    """Set what the digest command writes: gzip and brotli variants of every file."""
    app.config["FLASK_STATIC_DIGEST_COMPRESSION"] = COMPRESSION
    app.config["FLASK_STATIC_DIGEST_BLACKLIST_FILTER"] = []


def init_app(app: Flask) -> None:
    """Read the digest manifest (static_url_for) and cache digested files for a year."""
    configure(app)
    app.extensions["static_digest"] = FlaskStaticDigest(app)
    app.view_functions["static"] = caching_digested(app.view_functions["static"])


def digest_app() -> Flask:
    """Return an app of the package's static folder alone, needing no settings.

    The digest runs where no secret or database exists (the image's build stage):
    ``flask --app "{{ cookiecutter.package_name }}.static_files:digest_app()" digest compile``.
    """
    app = Flask(__package__)
    configure(app)
    return app
