"""gunicorn configuration: read from the environment, sized to the container, logging to STDOUT."""

import gc
import os
import sys

# Importing the package builds every module of the app: many objects that live as long as the
# process. The collector would scan them again and again as they pile up, and after. So it waits
# while they are made, and then sets them aside for good (a few hundred objects of garbage made
# while importing are kept with them); it collects what is made after, in the master and the
# workers. About a tenth of the start-up CPU.
gc.disable()
from {{ cookiecutter.package_name }} import cpu_pinning, metrics_folder  # noqa: E402
from {{ cookiecutter.package_name }}.gunicorn_settings import load_gunicorn_settings  # noqa: E402
from {{ cookiecutter.package_name }}.logs import logging_config  # noqa: E402
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings  # noqa: E402

gc.freeze()
gc.enable()

try:
    _server = load_gunicorn_settings()
    load_settings()  # the app's own, checked once here: no worker starts to fail on one
except SettingsError as exc:
    sys.exit(f"Error: {exc}")  # one line and exit 1, not gunicorn's traceback of its config

bind = [f"{_server.host}:{_server.port}"]
workers = _server.workers()
# gunicorn's own workers, answering its refusals in JSON and bounding slow clients (workers.py).
worker_class = {
    "gthread": "{{ cookiecutter.package_name }}.workers.ThreadWorker",
    "sync": "{{ cookiecutter.package_name }}.workers.SyncWorker",
}[_server.worker_class]
threads = _server.web_threads
timeout = _server.gunicorn_timeout
graceful_timeout = _server.graceful_timeout
keepalive = _server.keepalive
max_requests = _server.max_requests
max_requests_jitter = _server.max_requests_jitter
# gunicorn trusts no peer's X-Forwarded-* headers (by default it trusts 127.0.0.1): which proxies
# are trusted is the app's decision alone (README: Trusted proxies).
forwarded_allow_ips = ""
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  (RAM, not disk)
control_socket_disable = True
logger_class = "{{ cookiecutter.package_name }}.gunicorn_logs.GunicornLogger"
logconfig_dict = logging_config(_server.log_level, _server.log_format)
loglevel = _server.log_level.lower()
errorlog = "-"


def on_starting(server) -> None:
    """Empty the workers' metrics folder before the first worker starts (metrics_folder.py)."""
    metrics_folder.start_server(_server.prometheus_multiproc_dir)


def pre_fork(server, worker) -> None:
    """Choose the CPU the new worker keeps to (None: any): the one the fewest live workers keep to.

    Workers keep to CPUs only while they cover every CPU (cpu_pinning.py). That is asked again at
    each fork, of the master's worker count now: TTIN and TTOU change it at run time.
    """
    cpus = cpu_pinning.cpus_to_pin(_server.worker_cpu_affinity, server.num_workers)
    taken = (getattr(live, "cpu", None) for live in server.WORKERS.values())
    worker.cpu = cpu_pinning.least_used(cpus, taken) if cpus else None


def post_fork(server, worker) -> None:
    """Keep the new worker on the CPU pre_fork chose, before it starts its threads."""
    if worker.cpu is not None:
        cpu_pinning.pin(os.getpid(), worker.cpu)


def child_exit(server, worker) -> None:
    """Drop the live metrics of a worker that exited (its counts stay in the sums)."""
    metrics_folder.worker_exited(worker.pid)


def on_exit(server) -> None:
    """Remove the temporary metrics folder, if the server made one."""
    metrics_folder.stop_server()


def when_ready(server) -> None:
    """Freeze what the master made before workers fork, so they share it instead of copying.

    The imports are frozen already (above); this sets aside what came after them. A full
    collection in a worker would otherwise write to every inherited object it scans, and so copy
    the memory pages they sit on into that worker (Python's gc.freeze documentation).
    """
    gc.freeze()
