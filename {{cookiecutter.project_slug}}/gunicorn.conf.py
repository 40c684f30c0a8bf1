"""gunicorn's configuration: from the environment, sized to the container, logging to STDOUT."""

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# Each worker writes its metrics into files of PROMETHEUS_MULTIPROC_DIR, summed by /metrics.
# prometheus_client reads it when first imported (with the app's modules, below): so it is named
# first, a temporary folder of this run when unset (removed on exit).
temporary_metrics = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if temporary_metrics:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-")
metrics_folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

from gunicorn.arbiter import Arbiter  # noqa: E402
from gunicorn.workers.base import Worker  # noqa: E402
from prometheus_client import multiprocess  # noqa: E402

from {{ cookiecutter.package_name }}.platform.logs import ACCESS_FIELDS, logging_config  # noqa: E402
from {{ cookiecutter.package_name }}.settings import Settings, SettingsError, load_settings  # noqa: E402
from {{ cookiecutter.package_name }}.settings.gunicorn import GunicornSettings  # noqa: E402

try:
    settings = load_settings(model=GunicornSettings)
    load_settings(Settings)  # the app's own, checked once here: no worker starts to fail on one
except SettingsError as exc:
    if temporary_metrics:
        metrics_folder.rmdir()  # still empty: on_exit never runs for a config that fails
    sys.exit(f"Error: {exc}")  # one line and exit 1, not gunicorn's traceback of its config

bind = [f"{settings.host}:{settings.port}"]
workers = settings.workers()
worker_class = settings.worker_class
threads = settings.web_threads
timeout = settings.gunicorn_timeout
graceful_timeout = settings.graceful_timeout
keepalive = settings.keepalive
max_requests = settings.max_requests
max_requests_jitter = settings.max_requests_jitter
# gunicorn trusts no peer's X-Forwarded-* headers (by default it trusts 127.0.0.1): which proxies
# are trusted is the app's decision alone (docs/operations.md: Trusted proxies).
forwarded_allow_ips = ""
{%- if cookiecutter.use_nginx == "yes" %}
# nginx refuses request lines and headers past its own buffers (8 KiB each) in JSON; with
# gunicorn's tighter defaults lifted, nothing nginx passes on is refused again here in HTML.
limit_request_line = 0
limit_request_fields = 32768
limit_request_field_size = 0
{%- endif %}
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  (RAM, not disk)
control_socket_disable = True
loglevel = settings.log_level.lower()
access_log_format = "%(m)s %(U)s %(s)s"  # the access line's message: method, path, status


class AccessFields(logging.Filter):
    """Add the answer's details to gunicorn's access line as fields, from its format's atoms."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Copy the request id, method, path, status, duration, client and size of one answer,
        and the fields the app added (platform/logs.py's access_field)."""
        # The mapping gunicorn formats access_log_format with: its values are strings and numbers,
        # and the WSGI environ's, each under "{key}e".
        atoms: dict[str, Any] = record.args if isinstance(record.args, dict) else {}
        added = atoms.get("{" + ACCESS_FIELDS + "}e")
        for name, value in added.items() if isinstance(added, dict) else ():
            setattr(record, name, value)  # the fields below are set after: they keep theirs
        record.request_id = atoms.get("{x-request-id}o")  # the response's header, as sent
        record.method, record.path = atoms["m"], atoms["U"]
        record.status = int(atoms["s"])
        record.duration_ms = atoms["D"] / 1000
        record.remote_addr, record.bytes = atoms["h"], atoms["B"]
        return True


logconfig_dict = logging_config(
    settings.log_level, settings.log_format, "gunicorn.error", "gunicorn.access"
)
logconfig_dict["loggers"]["gunicorn.access"]["filters"] = [AccessFields()]


def on_starting(server: Arbiter) -> None:
    """Empty the metrics folder: an earlier run's files would add to this run's sums."""
    for leftover in metrics_folder.glob("*.db"):
        leftover.unlink()


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Let prometheus_client drop a dead worker's live gauges (its multiprocess mode's cleanup)."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Arbiter) -> None:
    """Remove the temporary metrics folder, if this run made one."""
    if temporary_metrics:
        shutil.rmtree(metrics_folder, ignore_errors=True)
