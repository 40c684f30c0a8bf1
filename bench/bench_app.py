"""The generated app plus what only the benchmark needs: an I/O-bound route, an optional no-cache.

gunicorn serves it from the baked project's directory with the project's own gunicorn.conf.py:
``gunicorn -c gunicorn.conf.py 'bench_app:create_bench_app()'`` with this folder on PYTHONPATH.
"""

import os
import time

from flask import Blueprint, Flask, jsonify
from my_service import create_app
from my_service.caching import cache

IO_WAIT_S = 0.010

bp = Blueprint("bench", __name__)


@bp.get("/bench/io")
def io_wait():
    """Wait 10 ms as if on a slow dependency, then answer like /healthz."""
    time.sleep(IO_WAIT_S)
    return jsonify(status="ok")


def create_bench_app() -> Flask:
    """Build the generated app, add /bench/io, and drop the read cache when BENCH_CACHE=off."""
    app = create_app()
    app.register_blueprint(bp)
    if os.environ.get("BENCH_CACHE") == "off":
        # Every GET /api/items/<id> then reads PostgreSQL: the cache-miss path, measured alone.
        cache.init_app(app, config={"CACHE_TYPE": "NullCache", "CACHE_NO_NULL_WARNING": True})
    return app
