"""Static files with digested names: the templates' URL helper, cache headers, the digest app.

`make assets` builds the bundles into static/, then Flask-Static-Digest copies each under a name
with its content's MD5 and writes a gzip variant and a manifest; static_url_for() in the
templates reads that manifest. A digested file never changes, so browsers keep it a year.

The gzip variants are for a proxy that serves static files itself and sends one, with
Content-Encoding and Vary: Accept-Encoding, to a client that accepts gzip. The app picks no
variant: asked for ``app.css.gz`` by name, Flask would send it as CSS in gzip whatever the client
accepts, so it answers 404 for such names.
"""

import functools
import re

from flask import Flask, abort
from flask_static_digest import FlaskStaticDigest

IMMUTABLE = "public, max-age=31536000, immutable"
# Flask-Static-Digest's name of a digested file: ``app-<32 hex digits>.js``.
DIGESTED_NAME = re.compile(r"-[0-9a-f]{32}(\.[^/]+)?$")
COMPRESSION = ["gzip"]
# Names of compressed variants: never served by the app (see above).
COMPRESSED_SUFFIXES = (".gz", ".br")


def caching_digested(serve_static):
    """Wrap the static files' view: let browsers and proxies keep a digested file for a year,
    and answer 404 for a compressed variant's name.

    A wrapper of that one view, not an after_request hook: other requests do not run it.
    """

    @functools.wraps(serve_static)
    def serve(filename: str, **kwargs):
        if filename.endswith(COMPRESSED_SUFFIXES):
            abort(404)
        response = serve_static(filename=filename, **kwargs)
        if DIGESTED_NAME.search(filename) and response.status_code in (200, 206, 304):
            response.headers["Cache-Control"] = IMMUTABLE
        return response

    return serve


def configure(app: Flask) -> None:
    """Set what the digest command writes: a gzip variant of every file."""
    app.config["FLASK_STATIC_DIGEST_COMPRESSION"] = COMPRESSION
    app.config["FLASK_STATIC_DIGEST_BLACKLIST_FILTER"] = []


def init_app(app: Flask) -> None:
    """Read the digest manifest (static_url_for); cache digested files a year, send no variant."""
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
