"""The reference: the least a Flask app can do to answer /healthz."""

from flask import Flask


def create_flask_app() -> Flask:
    """Build a Flask app whose only route returns the JSON /healthz returns; no logging."""
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        """Answer 200 with a small JSON body."""
        return {"status": "ok"}

    return app
