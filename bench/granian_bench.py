"""Serve bench_app.py's app with the project's own granian launcher and settings.

Run from the baked project's directory with this folder on PYTHONPATH:
``python -m granian_bench``, as the image runs ``python -m <package>.granian_server``.
With BENCH_FREEZE=off the launcher's gc.freeze() before the workers fork is skipped (a
diagnostic: what the freeze saves each worker).
"""

import gc
import os
import sys

from bench_app import create_bench_app
from my_service import granian_server
from my_service.granian_access import with_access_log


def create_logged_bench_app():
    """Build the benchmark's app, writing one access line per request as the project's does."""
    return with_access_log(create_bench_app())


def main() -> int:
    """Run the project's launcher (settings, metrics folder, freeze) on the benchmark's app."""
    if os.environ.get("BENCH_FREEZE") == "off":
        gc.freeze = lambda: None  # only in this process: the launcher's call does nothing
    project_server = granian_server.server

    def bench_server(settings: granian_server.GranianSettings):
        """Return the project's granian server, serving the benchmark's app instead."""
        server = project_server(settings)
        server.target = "granian_bench:create_logged_bench_app"  # the only change: the app
        return server

    granian_server.server = bench_server
    return granian_server.main()


if __name__ == "__main__":
    sys.exit(main())
