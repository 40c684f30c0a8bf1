"""gunicorn's own settings: read from the environment, in gunicorn bakes only."""

import os
import textwrap

import pytest

from {{ cookiecutter.package_name }}.gunicorn_settings import GunicornSettings
from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings

from .test_cpu_pinning import needs_two_cpus

# What the config needs to load as in production: no .env is read where run_python runs it.
CONFIG_ENV = {
    "APP_ENV": "production",
    "DATABASE_URL": "sqlite:////data/app.db",
    "SECRET_KEY": "a-real-secret-value-of-good-length",
}


def test_sync_workers_get_one_thread(monkeypatch):
    """It runs sync workers single-threaded: with threads gunicorn would silently use gthread."""
    monkeypatch.setenv("WORKER_CLASS", "sync")
    monkeypatch.setenv("WEB_THREADS", "8")
    assert load_settings(model=GunicornSettings).web_threads == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_CLASS", "gevent"),
        ("GUNICORN_TIMEOUT", "0"),
        ("KEEPALIVE", "-1"),
        ("MAX_REQUESTS", "many"),
        ("MAX_REQUESTS_JITTER", "-5"),
    ],
)
def test_a_bad_gunicorn_setting_names_the_variable(monkeypatch, name, value):
    """It fails at start-up naming the bad variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}='{value}'"):
        load_settings(model=GunicornSettings)


def test_granians_settings_are_not_read(monkeypatch):
    """It neither reads nor checks granian's own variables."""
    monkeypatch.setenv("WORKERS_MAX_RSS", "-1")
    monkeypatch.setenv("WORKERS_LIFETIME", "soon")
    settings = load_settings(model=GunicornSettings)
    assert not {"workers_max_rss", "workers_lifetime"} & set(type(settings).model_fields)


@pytest.mark.parametrize(
    ("name", "value"), [("KEEPALIVE", "-1"), ("RATELIMIT_DEFAULT", "often"), ("SECRET_KEY", "")]
)
def test_a_bad_setting_stops_gunicorn_before_any_worker_with_one_line(
    run_python, project_dir, name, value
):
    """It exits 1 naming the variable, gunicorn's or the app's, in one line: no traceback."""
    env = {**CONFIG_ENV, name: value}
    config = str(project_dir / "gunicorn.conf.py")
    app = "{{ cookiecutter.package_name }}:create_app()"
    result = run_python("-m", "gunicorn", "--config", config, "--check-config", app, **env)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: Invalid settings: "), line
    assert name in line, line


def test_the_config_pauses_the_collector_while_it_imports_then_freezes(run_python, project_dir):
    """It imports the package with the collector off (no full collection while the config
    loads) and freezes what it imported; then the master, and every worker it forks, collect
    what comes after as usual, and when_ready freezes it before the first fork."""
    script = (
        "import gc, runpy, sys\n"
        "full = gc.get_stats()[2]['collections']\n"
        "config = runpy.run_path(sys.argv[1])\n"
        "imported = gc.get_freeze_count()\n"
        "print(gc.get_stats()[2]['collections'] - full, gc.isenabled(), imported > 10000)\n"
        "config['when_ready'](None)\n"
        "print(gc.isenabled(), gc.get_freeze_count() > imported)\n"
    )
    env = CONFIG_ENV
    result = run_python("-c", script, str(project_dir / "gunicorn.conf.py"), **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True", "True", "True", "True"]


@needs_two_cpus
def test_the_config_keeps_each_worker_on_a_cpu_of_its_own(run_python, project_dir):
    """Its pre_fork (in the master) chooses the CPU the fewest live workers keep to, and its
    post_fork (in the new worker) pins it there: two workers on two CPUs, and a worker started
    after one died takes the CPU that one kept to. Forked here as gunicorn's master forks."""
    script = textwrap.dedent(
        """
        import os, runpy, signal, sys, time, types
        from {{ cookiecutter.package_name }}.cpu_pinning import pinned_cpu

        config = runpy.run_path(sys.argv[1])
        master = types.SimpleNamespace(WORKERS={}, num_workers=config["workers"])

        def spawn():
            worker = types.SimpleNamespace()
            config["pre_fork"](master, worker)
            pid = os.fork()
            if pid == 0:
                config["post_fork"](master, worker)
                signal.pause()  # the test's master ends it
                os._exit(0)
            master.WORKERS[pid] = worker
            return pid

        def wait_pinned(pid):
            for _ in range(100):  # bounded: 10 s for the worker to pin itself
                if pinned_cpu(pid) is not None:
                    return pinned_cpu(pid)
                time.sleep(0.1)
            return None

        first, second = spawn(), spawn()
        print(wait_pinned(first), wait_pinned(second))
        os.kill(first, signal.SIGKILL)
        os.waitpid(first, 0)
        del master.WORKERS[first]
        third = spawn()
        print(wait_pinned(third))
        for pid in (second, third):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        """
    )
    cpus = sorted(os.sched_getaffinity(0))[:2]
    env = {**CONFIG_ENV, "WEB_CONCURRENCY": str(len(os.sched_getaffinity(0)))}
    result = run_python("-c", script, str(project_dir / "gunicorn.conf.py"), **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{cpus[0]} {cpus[1]}", str(cpus[0])]


# Prints the CPU pre_fork chooses for a new worker while the master runs each count of workers
# given as arguments, as TTIN and TTOU leave it (None: the worker may run on any CPU).
CHOSEN_FOR_COUNTS = """
import runpy, sys, types
config = runpy.run_path(sys.argv[1])
for count in sys.argv[2:]:
    worker = types.SimpleNamespace()
    config["pre_fork"](types.SimpleNamespace(WORKERS={}, num_workers=int(count)), worker)
    print(worker.cpu)
"""


@needs_two_cpus
def test_a_worker_started_after_ttin_or_ttou_follows_the_count_then(run_python, project_dir):
    """It pins a new worker only while the master's workers cover every CPU, counted at its
    fork: started with fewer, TTIN up to one per CPU pins the next one; TTOU below unpins."""
    count = len(os.sched_getaffinity(0))
    counts = [str(count - 1), str(count), str(count + 1), str(count - 1)]
    env = {**CONFIG_ENV, "WEB_CONCURRENCY": str(count - 1)}
    result = run_python(
        "-c", CHOSEN_FOR_COUNTS, str(project_dir / "gunicorn.conf.py"), *counts, **env
    )
    assert result.returncode == 0, result.stderr
    first = str(min(os.sched_getaffinity(0)))
    assert result.stdout.split() == ["None", first, first, "None"]


def test_workers_are_not_pinned_with_affinity_off(run_python, project_dir):
    """With WORKER_CPU_AFFINITY=off the config chooses no CPU for any worker, however many."""
    count = len(os.sched_getaffinity(0))
    counts = [str(count), str(count * 2)]
    env = {**CONFIG_ENV, "WORKER_CPU_AFFINITY": "off", "WEB_CONCURRENCY": str(count)}
    result = run_python(
        "-c", CHOSEN_FOR_COUNTS, str(project_dir / "gunicorn.conf.py"), *counts, **env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "None"]
