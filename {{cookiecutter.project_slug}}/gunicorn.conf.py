"""gunicorn configuration: read from the environment, sized to the container, logging to STDOUT."""

import os
import shutil
import sys
import tempfile

# Every worker writes its metrics into files of PROMETHEUS_MULTIPROC_DIR, summed by /metrics.
# prometheus_client reads the variable once, when first imported (with the app's modules, below):
# so it is named first, a temporary folder of this run when unset (removed on exit).
_temporary_metrics = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _temporary_metrics = tempfile.mkdtemp(prefix="metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _temporary_metrics

from {{ cookiecutter.package_name }} import metrics_folder  # noqa: E402
from {{ cookiecutter.package_name }}.gunicorn_settings import load_gunicorn_settings  # noqa: E402
from {{ cookiecutter.package_name }}.logs import logging_config  # noqa: E402
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings  # noqa: E402

try:
    _server = load_gunicorn_settings()
    load_settings()  # the app's own, checked once here: no worker starts to fail on one
except SettingsError as exc:
    sys.exit(f"Error: {exc}")  # one line and exit 1, not gunicorn's traceback of its config

bind = [f"{_server.host}:{_server.port}"]
workers = _server.workers()
worker_class = _server.worker_class
threads = _server.web_threads
timeout = _server.gunicorn_timeout
graceful_timeout = _server.graceful_timeout
keepalive = _server.keepalive
max_requests = _server.max_requests
max_requests_jitter = _server.max_requests_jitter
# gunicorn trusts no peer's X-Forwarded-* headers (by default it trusts 127.0.0.1): which proxies
# are trusted is the app's decision alone (README: Trusted proxies).
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
logger_class = "{{ cookiecutter.package_name }}.gunicorn_logs.GunicornLogger"
logconfig_dict = logging_config(_server.log_level, _server.log_format)
loglevel = _server.log_level.lower()
errorlog = "-"


def on_starting(server) -> None:
    """Empty the workers' metrics folder before the first worker starts (metrics_folder.py)."""
    metrics_folder.start_server(_server.prometheus_multiproc_dir)


def on_exit(server) -> None:
    """Remove the temporary metrics folder, if this run made one."""
    if _temporary_metrics:
        shutil.rmtree(_temporary_metrics, ignore_errors=True)
