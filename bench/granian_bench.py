"""Serve bench_app.py's app with the project's own granian launcher and settings.

Run from the baked project's directory with this folder on PYTHONPATH:
``python -m granian_bench``, as the image runs ``python -m <package>.granian_server``.
"""

import sys

from bench_app import create_bench_app
from my_service import granian_server, metrics_folder
from my_service.granian_access import with_access_log
from my_service.settings import load_settings


def create_logged_bench_app():
    """Build the benchmark's app, writing one access line per request as the project's does."""
    return with_access_log(create_bench_app())


def main() -> int:
    """Serve the benchmark's app with the generated granian configuration until stopped."""
    settings = load_settings(model=granian_server.GranianSettings)
    server = granian_server.server(settings)
    server.target = "granian_bench:create_logged_bench_app"  # the only change: the app
    metrics_folder.start_server(settings.prometheus_multiproc_dir)
    try:
        server.serve()
    finally:
        metrics_folder.stop_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
