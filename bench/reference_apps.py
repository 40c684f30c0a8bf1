"""Reference WSGI apps: the ceiling of gunicorn, and the least a Flask app can do."""

import json

from flask import Flask

BODY = json.dumps({"status": "ok"}, separators=(",", ":")).encode() + b"\n"  # as Flask sends it


def bare(environ, start_response):
    """Answer every request with the same small JSON body, straight from WSGI."""
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]


def create_flask_app() -> Flask:
    """Build a Flask app whose only route returns the JSON /healthz returns; no logging."""
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        """Answer 200 with a small JSON body."""
        return {"status": "ok"}

    return app
