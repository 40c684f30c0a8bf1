"""Benchmark the generated service against reference apps, interleaved; write docs/benchmarks.md.

    python bench/run.py            full run (about 25 minutes on 2 cores)
    python bench/run.py --quick    smoke run (about 3 minutes): 1 round, short loads, no tier-1

Every comparison runs its servers side by side and loads them in turn (A B A B ...), so slow
drift from other work on the machine hits each side alike; ratios are medians of per-round ratios.
Not part of the pass/fail tests: numbers on a shared 2-core machine are noisy by nature.
"""

import argparse
import dataclasses
import json
import os
import pickle
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(BENCH.parent / "tests"))  # combinations: the options

import celery_bench  # noqa: E402
import frontend_bench  # noqa: E402
import wrk  # noqa: E402
from combinations import ALL_ON  # noqa: E402
from report import (  # noqa: E402
    COLLECTOR_ON,
    GRANIAN_UNFROZEN,
    RECYCLING_DIAGNOSTIC,
    SAME_SETTINGS,
    UNPINNED,
    render,
)
from services import (  # noqa: E402
    Granian,
    Gunicorn,
    Nginx,
    Postgres,
    Redis,
    free_port,
    loopback_nginx_config,
    one_worker_served,
    postgres_bin,
    upstream_connections,
    wait_for_200,
)

REPO = BENCH.parent
DEFAULT_OUT = REPO / "docs" / "benchmarks.md"
PACKAGE = "my_service"
# A load that one worker served alone is done again, at most this many times (see Bench.load).
ONE_WORKER_REPEATS = 2
# The tier-1 generation matrix, as the README runs it (pytest's own output kept short).
MATRIX_COMMAND = (
    "-m pytest -n 2 --dist loadgroup tests/test_generation.py tests/test_hooks.py "
    "-q -p no:cacheprovider"
).split()
# A limit no benchmark reaches: the limiter still runs (and its storage is paid for), it just
# never answers 429 to a load generator that is one client.
BENCH_RATELIMIT = "1000000 per minute"
# What the generated nginx adds to each request it passes on (proxy_set_header): sent straight to
# gunicorn, they separate the cost of the headers and ProxyFix from that of the hop itself.
NGINX_HEADERS = (
    "X-Forwarded-For: 127.0.0.1",
    "X-Forwarded-Proto: http",
    "X-Request-ID: 6f1c0e6a2b7d4c5e9a8b3f2d1c0e9a8b",
)
BENCH_APP = "bench_app:create_bench_app()"  # the generated app, /bench/io, optionally no cache
PARTS = (
    "cheap",
    "nginx",
    "data",
    "servers",
    "workers",
    "cold",
    "overhead",
    "celery",
    "frontend",
    "matrix",
)


def log(message: str) -> None:
    """Print progress to stderr with the time."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass
class Plan:
    """How long and how often to load each target."""

    rounds: int
    duration_s: int
    pair_rounds: int  # the nginx, data, app-server and assets comparisons: few targets, more rounds
    matrix_rounds: int
    matrix_duration_s: int
    warmup_s: int
    run_matrix: bool
    pair_duration_s: int = 8  # (8 in runs saved before it was a setting)


FULL = Plan(
    rounds=3,
    duration_s=8,
    # Short loads, many rounds: the two sides of a ratio run seconds apart, so the other work
    # on a shared machine (it comes and goes over seconds) weighs on both alike, and a burst of
    # it that hits a few rounds cannot move the median. 12 x 3 s load each target about as long as
    # 5 x 8 s did (36 s against 40 s).
    pair_rounds=12,
    pair_duration_s=3,
    matrix_rounds=6,  # 15 targets: short loads, many rounds, as the pairs
    matrix_duration_s=3,
    warmup_s=2,
    run_matrix=True,
)
QUICK = Plan(
    rounds=1,
    duration_s=2,
    pair_rounds=1,
    pair_duration_s=2,
    matrix_rounds=1,
    matrix_duration_s=2,
    warmup_s=1,
    run_matrix=False,
)


@dataclass
class Target:
    """One URL to load, with its samples, one per round."""

    name: str
    url: str
    server: Gunicorn | None = None  # when set, its CPU time per request is measured too
    proxy: Nginx | None = None  # when set, the proxy's CPU time per request too
    connections: int = 32
    headers: tuple[str, ...] = ()  # extra request headers
    script: str | None = None  # a wrk Lua script (the write: POST_ITEM)
    cpus: str | None = None  # the CPUs wrk is kept on (taskset's list); None: any
    samples: list = field(default_factory=list)
    repeated: int = 0  # loads done again because one worker got every connection

    def median(self, attr: str) -> float | None:
        """Return the median of one sample attribute over the rounds (None when unmeasured)."""
        values = [getattr(sample, attr) for sample in self.samples]
        values = [value for value in values if value is not None]
        return statistics.median(values) if values else None

    def errors(self) -> int:
        """Return the failed responses over all rounds."""
        return sum(sample.errors for sample in self.samples)


class Bench:
    """The working directory, the servers started so far, and every command run."""

    def __init__(self, plan: Plan, root: Path):
        """Prepare an empty working directory."""
        self.plan, self.root = plan, root
        self.home = root / "home"
        self.home.mkdir()
        self.commands: dict[str, list[str]] = {}
        self.placeholders: dict[str, str] = {}  # path -> $NAME in the commands of the report
        self.prod: dict[str, str] = {}  # the production environment every server starts from
        self.cleanups: list[Callable[[], None]] = []

    def note(self, section: str, text: str) -> None:
        """Remember a command for the report, with machine paths replaced by placeholders."""
        for path, placeholder in self.placeholders.items():
            text = text.replace(str(path), placeholder)
        text = text.replace(str(self.root), "$BENCH_DIR").replace(sys.executable, "python")
        text = text.replace(str(REPO), "$REPO")
        if text not in self.commands.setdefault(section, []):
            self.commands[section].append(text)

    def base_env(self) -> dict:
        """Return a clean environment: nothing inherited that could change a server's settings."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def bake(self, name: str, answers: dict) -> tuple[Path, float]:
        """Bake the template with ``answers`` into a fresh folder; return project, seconds."""
        out = self.root / "bakes" / f"{name}-{secrets.token_hex(3)}"
        args = [f"{key}={value}" for key, value in answers.items()]
        command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(REPO)]
        started = time.perf_counter()
        subprocess.run(
            [*command, *args], env=self.base_env(), check=True, capture_output=True, timeout=120
        )
        seconds = time.perf_counter() - started
        self.note("template", " ".join([*command, *args]).replace(str(out), "$OUT"))
        return out / "my-service", seconds

    def server(
        self,
        name: str,
        project: Path,
        env: dict,
        app: str,
        section: str,
        config: str = "gunicorn.conf.py",
    ) -> Gunicorn:
        """Describe a gunicorn serving the generated app with the project's own gunicorn.conf.py."""
        port = free_port()
        full_env = {**self.base_env(), "PYTHONPATH": str(BENCH), **env, "PORT": str(port)}
        server = Gunicorn(name, ["-c", config, app], project, full_env, port, self.log_path(name))
        words = self.env_words(env)
        self.note(
            section,
            f"(cd {project} && env {words + ' ' if words else ''}PYTHONPATH={BENCH} PORT=$PORT "
            f"python -m gunicorn -c {config} '{app}')   # {name}",
        )
        return server

    def env_words(self, env: dict) -> str:
        """Return ``env`` as env(1) words: what it unsets and changes in the production env."""
        unset = " ".join(f"-u {key}" for key in self.prod if key not in env)
        changed = {key: value for key, value in env.items() if self.prod.get(key) != value}
        settings = " ".join(f"{key}={_quote(value)}" for key, value in changed.items())
        return " ".join(word for word in (unset, settings) if word)

    def granian(
        self, name: str, project: Path, env: dict, section: str, module: str = ""
    ) -> Granian:
        """Describe a granian serving the generated app, started as the image's CMD starts it.

        ``module`` replaces the project's launcher (bench's granian_bench serves bench_app).
        """
        port = free_port()
        full_env = {**self.base_env(), "PYTHONPATH": str(BENCH), **env, "PORT": str(port)}
        module = module or f"{PACKAGE}.granian_server"
        server = Granian(name, [module], project, full_env, port, self.log_path(name))
        words = self.env_words(env)
        self.note(
            section,
            f"(cd {project} && env {words + ' ' if words else ''}PYTHONPATH={BENCH} PORT=$PORT "
            f"python -m {module})   # {name}",
        )
        return server

    def reference(self, name: str, app: str, worker: dict, section: str) -> Gunicorn:
        """Describe a gunicorn serving a reference app with the generated worker settings."""
        port = free_port()
        options = {
            "--workers": worker["workers"],
            "--worker-class": worker["worker_class"],
            "--threads": worker["threads"],
            "--keep-alive": worker["keepalive"],
            "--max-requests": worker["max_requests"],
            "--max-requests-jitter": worker["max_requests_jitter"],
            "--worker-tmp-dir": "/dev/shm",
            "--log-level": "warning",  # no access log, no per-request line at all
            "--bind": f"127.0.0.1:{port}",
        }
        args = [word for option, value in options.items() for word in (option, str(value))]
        args += ["--no-control-socket", app]
        server = Gunicorn(name, args, BENCH, self.base_env(), port, self.log_path(name))
        shown = " ".join(args).replace(str(port), "$PORT")
        self.note(section, f"(cd {BENCH} && python -m gunicorn {shown})   # {name}")
        return server

    def log_path(self, name: str) -> Path:
        """Return the log file of a server."""
        return self.root / "logs" / (re.sub(r"[^a-z0-9]+", "-", name.lower()) + ".log")

    def start(self, *servers) -> None:
        """Start servers (each waits for its first 200) and register their shutdown."""
        for server in servers:
            log(f"start {server.name}")
            server.start()
            self.cleanups.append(server.stop)
            server.settle()

    def stop(self, *servers) -> None:
        """Stop servers started by ``start``, all at once."""
        for server in servers:
            server.signal_quit()
        for server in servers:
            server.stop()
            if server.stop in self.cleanups:
                self.cleanups.remove(server.stop)

    def load(
        self, targets: list[Target], duration_s: int, section: str, rounds: int | None = None
    ) -> None:
        """Warm every target up, then load them in turn, round after round."""
        for target in targets:
            load = (target.connections, target.headers, target.script, target.cpus)
            wrk.run(target.url, self.plan.warmup_s, *load)
            self.note(section, " ".join(wrk.command("$URL", duration_s, *load)))
        for round_number in range(1, (rounds or self.plan.rounds) + 1):
            for target in targets:
                sample = self.load_once(target, duration_s)
                for _ in range(ONE_WORKER_REPEATS):
                    if not sample.one_worker:
                        break
                    target.repeated += 1
                    log(f"round {round_number} {target.name}: one worker got every connection")
                    sample = self.load_once(target, duration_s)
                target.samples.append(sample)
                log(
                    f"round {round_number} {target.name}: {sample.rps:.0f} req/s "
                    f"p50 {sample.p50_ms:.2f} ms p99 {sample.p99_ms:.2f} ms errors {sample.errors}"
                )
                if sample.errors:
                    log(f"wrk's output:\n{sample.text}{server_problems(target.server)}")

    def load_once(self, target: Target, duration_s: int) -> wrk.Sample:
        """Load a target once; return wrk's sample with the server's and the proxy's CPU."""
        server_before = target.server.cpu_s() if target.server else 0.0
        workers_before = target.server.worker_cpu_s() if target.server else {}
        proxy_before = target.proxy.cpu_s() if target.proxy else 0.0
        load = (target.connections, target.headers, target.script, target.cpus)
        sample = wrk.run(target.url, duration_s, *load)
        if target.server:
            sample.one_worker = one_worker_served(workers_before, target.server.worker_cpu_s())
        if sample.requests and target.server:
            cpu = target.server.cpu_s() - server_before
            sample.cpu_ms_per_request = cpu * 1000 / sample.requests
        if sample.requests and target.proxy:
            cpu = target.proxy.cpu_s() - proxy_before
            sample.proxy_cpu_ms_per_request = cpu * 1000 / sample.requests
        return sample

    def close(self) -> None:
        """Stop everything still running, newest first."""
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:
                log(f"cleanup failed: {exc}")
        self.cleanups.clear()


def server_problems(server, lines: int = 20) -> str:
    """Return the last lines of a server's log that are not 2xx access lines, for a report."""
    if server is None or not server.log_path.exists():
        return ""
    text = server.log_path.read_text(errors="replace").splitlines()
    answered = re.compile(r'"status": 2\d\d\b')
    problems = [line for line in text if not answered.search(line)][-lines:]
    return f"last lines of {server.log_path.name} other than 2xx answers:\n" + "\n".join(problems)


def _quote(value: str) -> str:
    """Quote a shell word when it needs it."""
    return f"'{value}'" if re.search(r"[^\w@%+=:,./-]", value) else value


def worker_settings(project: Path, env: dict) -> dict:
    """Return the worker settings the generated gunicorn.conf.py resolves to in ``env``."""
    code = (
        f"from {PACKAGE}.gunicorn_settings import load_gunicorn_settings as load; s = load(); "
        "import json; "
        "print(json.dumps({'workers': s.workers(), 'worker_class': s.worker_class, "
        "'threads': s.web_threads, 'keepalive': s.keepalive, 'max_requests': s.max_requests, "
        "'max_requests_jitter': s.max_requests_jitter}))"
    )
    return json.loads(project_python(project, env, code))


def project_python(project: Path, env: dict, code: str) -> str:
    """Run Python ``code`` in the project's folder with ``env``; return what it printed."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def create_item(base: str) -> str:
    """Create one item through the API; return its path (the Location header)."""
    body = json.dumps({"name": "bench", "description": "x" * 200}).encode()
    request = urllib.request.Request(
        base + "/api/items", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        location = response.headers["Location"]
    return location if location.startswith("/") else "/" + location.split("/", 3)[3]


def x_cache(url: str) -> str | None:
    """Return the X-Cache header of one GET."""
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
        return response.headers.get("X-Cache")


# ----------------------------------------------------------------------------- the measurements


def measure_bakes(bench: Bench, results: dict) -> dict[str, Path]:
    """Time bakes of the defaults and of all-on, interleaved; keep one of each for the servers."""
    log("template: timing bakes")
    times: dict[str, list[float]] = {"defaults": [], "all-on": []}
    projects = {}
    for _ in range(max(3, bench.plan.rounds)):
        for name, answers in (("defaults", {}), ("all-on", ALL_ON.answers)):
            projects[name], seconds = bench.bake(name, answers)
            times[name].append(seconds)
    results["bake"] = {name: statistics.median(values) for name, values in times.items()}
    return projects


def measure_cheap(bench: Bench, results: dict, projects: dict, prod: dict, worker: dict) -> None:
    """Load /healthz of the references and of the generated service, side by side."""
    section = "cheap"
    freeze_name, freeze_path, results["freezes"] = freeze_toggle_config(bench, projects["all-on"])
    results["freeze_diagnostic"] = freeze_name
    servers = [
        bench.reference("bare WSGI", "reference_apps:bare", worker, section),
        bench.reference("minimal Flask", "reference_apps:create_flask_app()", worker, section),
        bench.server(
            SAME_SETTINGS, projects["all-on"], prod, "reference_apps:create_flask_app()", section
        ),
        bench.server(
            "generated, defaults", projects["defaults"], prod, f"{PACKAGE}:create_app()", section
        ),
        bench.server(
            "generated, all-on", projects["all-on"], prod, f"{PACKAGE}:create_app()", section
        ),
        bench.server(
            freeze_name,
            projects["all-on"],
            prod,
            f"{PACKAGE}:create_app()",
            section,
            config=freeze_path,
        ),
        bench.server(
            "generated, all-on, METRICS_ENABLED=false (diagnostic)",
            projects["all-on"],
            {**prod, "METRICS_ENABLED": "false"},
            f"{PACKAGE}:create_app()",
            section,
        ),
        bench.server(
            RECYCLING_DIAGNOSTIC,
            projects["all-on"],
            {**prod, "MAX_REQUESTS": "1000", "MAX_REQUESTS_JITTER": "100"},
            f"{PACKAGE}:create_app()",
            section,
        ),
    ]
    bench.start(*servers)
    targets = [Target(server.name, server.base + "/healthz", server) for server in servers]
    bench.load(targets, bench.plan.duration_s, section)
    results["cheap"] = targets
    results["memory"] = {server.name: server.worker_memory() for server in servers}
    bench.stop(*servers)


def freeze_toggle_config(bench: Bench, project: Path) -> tuple[str, str, bool]:
    """Write a gunicorn config: the project's own with its gc.freeze() calls in the master
    toggled (each one a `pass`, or one added at the end).

    Return the diagnostic server's name, the config's path, and whether the project freezes.
    """
    own = (project / "gunicorn.conf.py").read_text()
    freezes = "gc.freeze()" in own
    if freezes:
        name = "all-on, without gc.freeze() (diagnostic)"
        text, change = re.sub(r"\bgc\.freeze\(\)", "pass", own), "each gc.freeze() a pass"
    else:
        name = "all-on, gc.freeze() in the master (diagnostic)"
        text, change = own + "\ngc.freeze()\n", "gc.freeze() added at the end"
    path = bench.root / "freeze-toggled.conf.py"
    path.write_text(text)
    bench.note("cheap", f"# $BENCH_DIR/freeze-toggled.conf.py: gunicorn.conf.py, {change}")
    return name, str(path), freezes


def measure_nginx(bench: Bench, results: dict, projects: dict, prod: dict) -> None:
    """Load /healthz straight from gunicorn and through the generated nginx, in turn."""
    section = "nginx"
    # compose.yaml gives gunicorn a keep-alive longer than nginx's upstream keepalive_timeout.
    env = {**prod, "KEEPALIVE": "75"}
    server = bench.server(
        "all-on, direct", projects["all-on"], env, f"{PACKAGE}:create_app()", section
    )
    bench.start(server)
    # The nginx image runs one worker per CPU (auto); a second nginx runs one, as a diagnostic.
    nginxes = []
    for name, workers in (("nginx", "auto"), ("nginx-1", "1")):
        port = free_port()
        config = loopback_nginx_config(projects["all-on"], port, server.port)
        nginx = Nginx(bench.root / name, config, port, workers=workers)
        log(f"start {name}")
        bench.cleanups.append(nginx.stop)
        nginx.start()
        wait_for_200(f"http://127.0.0.1:{port}/healthz", 15.0, nginx.process)
        nginxes.append(nginx)
    bench.note(
        section,
        "envsubst '${NGINX_PORT} ${NGINX_UPSTREAM_HOST} ...' "
        "< nginx/templates/default.conf.template > $BENCH_DIR/nginx/default.conf"
        "   # NGINX_UPSTREAM_HOST=127.0.0.1, ports free loopback",
    )
    bench.note(section, "nginx -p $BENCH_DIR/nginx -c $BENCH_DIR/nginx/nginx.conf -e stderr")
    pinned = pinned_pair(bench, projects["all-on"], env, section)
    if pinned:
        nginxes.append(pinned[1].proxy)
    targets = [
        Target("direct to gunicorn", server.base + "/healthz", server),
        Target("through nginx", f"{nginxes[0].url}/healthz", server, nginxes[0]),
        Target(
            "direct, with the headers nginx adds",
            server.base + "/healthz",
            server,
            headers=NGINX_HEADERS,
        ),
        Target(
            "through nginx, one worker process (diagnostic)",
            f"{nginxes[1].url}/healthz",
            server,
            nginxes[1],
        ),
    ]
    targets += pinned
    bench.load(targets, bench.plan.pair_duration_s, section, bench.plan.pair_rounds)
    results["nginx"] = targets
    for nginx in reversed(nginxes):  # the diagnostic ones first: their idle connections would count
        if nginx is nginxes[0]:
            results["nginx_upstream"] = upstream_reuse(nginx, server)
        nginx.stop()
        bench.cleanups.remove(nginx.stop)
    bench.stop(server, *(pinned[0].server,) if pinned else ())


def split_cpus() -> tuple[str, str] | None:
    """Return the last CPU this process may use and the others, as taskset lists (None: one)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return str(cpus[-1]), ",".join(str(cpu) for cpu in cpus[:-1])


def pinned_pair(bench: Bench, project: Path, env: dict, section: str) -> list[Target]:
    """Start a gunicorn kept on a CPU of its own, and an nginx in front of it on the others;
    return the targets that load it direct and through that nginx, wrk on the others too.

    With every process free to run anywhere, nginx and wrk run on gunicorn's CPUs between its
    requests (their caches, their scheduling), which gunicorn's CPU time per request counts;
    kept apart, the two targets compare only the work gunicorn does per request.
    """
    split = split_cpus()
    if split is None:
        log("nginx: one CPU, no pinned pair")
        return []
    app_cpu, others = split
    name = "all-on, direct, on a CPU of its own"
    server = bench.server(name, project, env, f"{PACKAGE}:create_app()", section)
    server.cpus = app_cpu
    bench.start(server)
    port = free_port()
    nginx = Nginx(
        bench.root / "nginx-pinned",
        loopback_nginx_config(project, port, server.port),
        port,
        workers=str(len(others.split(","))),
    )
    nginx.cpus = others
    log("start nginx-pinned")
    bench.cleanups.append(nginx.stop)
    nginx.start()
    wait_for_200(f"{nginx.url}/healthz", 15.0, nginx.process)
    bench.note(section, f"taskset -c {app_cpu} python -m gunicorn ...   # {name}")
    bench.note(section, f"taskset -c {others} nginx -p $BENCH_DIR/nginx-pinned ...")
    return [
        Target(
            f"direct to gunicorn (gunicorn alone on CPU {app_cpu}, wrk on CPU {others})",
            server.base + "/healthz",
            server,
            cpus=others,
        ),
        Target(
            f"through nginx (gunicorn alone on CPU {app_cpu}, wrk and nginx on CPU {others})",
            f"{nginx.url}/healthz",
            server,
            nginx,
            cpus=others,
        ),
    ]


def measure_frontend(bench: Bench, results: dict, projects: dict, prod: dict) -> None:
    """Load a digested asset through nginx and from gunicorn, and the page, in turn."""
    section = "frontend"
    project = projects["all-on"]
    static, asset = frontend_bench.digested_asset(project)
    bench.note(section, "(cd $ALL_ON && make assets)   # npm ci, esbuild, the digest")
    env = {**prod, "KEEPALIVE": "75"}
    server = bench.server("all-on", project, env, f"{PACKAGE}:create_app()", section)
    port = free_port()
    config = loopback_nginx_config(project, port, server.port, NGINX_STATIC_ROOT=str(static))
    bench.start(server)
    nginx = Nginx(bench.root / "nginx-frontend", config, port, workers="auto")
    bench.cleanups.append(nginx.stop)
    nginx.start()
    entry = f"http://127.0.0.1:{port}"
    wait_for_200(f"{entry}/static/{asset}", 15.0, nginx.process)
    bench.note(
        section,
        "envsubst ... < nginx/templates/default.conf.template   "
        "# NGINX_STATIC_ROOT=$ALL_ON/my_service/static, upstream on loopback",
    )
    path = f"/static/{asset}"
    gzip = frontend_bench.GZIP
    targets = [
        Target("asset through nginx", entry + path, proxy=nginx, headers=gzip),
        Target("asset from gunicorn", server.base + path, server, headers=gzip),
        Target("page through nginx", entry + "/", server, nginx),
        Target("page from gunicorn", server.base + "/", server),
    ]
    loads = [frontend_bench.load_average()]
    bench.load(targets, bench.plan.pair_duration_s, section, bench.plan.pair_rounds)
    loads.append(frontend_bench.load_average())
    results["frontend"] = {
        "targets": targets,
        "asset": asset,
        "plain_bytes": (static / asset).stat().st_size,
        "gzip_bytes": (static / f"{asset}.gz").stat().st_size,
        "rounds": bench.plan.pair_rounds,
        "loads": loads,
    }
    nginx.stop()
    bench.cleanups.remove(nginx.stop)
    bench.stop(server)


def upstream_reuse(nginx: Nginx, server: Gunicorn) -> dict:
    """Load through nginx once more, counting the connections it opens to gunicorn meanwhile."""
    samples: list = []
    url = f"{nginx.url}/healthz"
    seen = upstream_connections(lambda: samples.append(wrk.run(url, 5)), server.port)
    log(f"nginx: {samples[0].requests} requests over {len(seen)} upstream connections")
    return {"requests": samples[0].requests, "connections": len(seen)}


def measure_data(bench: Bench, results: dict, projects: dict, prod: dict) -> None:
    """Load item reads from PostgreSQL (no cache) and Redis (cache hits), each vs /healthz."""
    section = "data"
    project = projects["all-on"]
    db_env = {key: value for key, value in prod.items() if key != "REDIS_URL"}
    db_env["BENCH_CACHE"] = "off"
    # With use_celery an item stays pending (never cached) until a task runs: run it at once.
    eager = {**prod, "CELERY_TASK_ALWAYS_EAGER": "true"}
    redis_server = bench.server("Redis cache", project, eager, f"{PACKAGE}:create_app()", section)
    db_server = bench.server(
        "PostgreSQL, no cache", project, db_env, "bench_app:create_bench_app()", section
    )
    # The pool the template kept before it followed the threads: 5 connections for 8 threads.
    small_pool = bench.server(
        "PostgreSQL, no cache, pool of 5",
        project,
        {**db_env, "DATABASE_POOL_SIZE": "5"},
        "bench_app:create_bench_app()",
        section,
    )
    # The same two servers with their workers on any CPU: what keeping each to one CPU is worth.
    unpinned = {"WORKER_CPU_AFFINITY": "off"}
    redis_unpinned = bench.server(
        f"Redis cache, {UNPINNED}",
        project,
        {**eager, **unpinned},
        f"{PACKAGE}:create_app()",
        section,
    )
    db_unpinned = bench.server(
        f"PostgreSQL, no cache, {UNPINNED}",
        project,
        {**db_env, **unpinned},
        "bench_app:create_bench_app()",
        section,
    )
    bench.start(redis_server, db_server, small_pool, redis_unpinned, db_unpinned)
    item = create_item(redis_server.base)
    x_cache(redis_server.base + item)  # the first read fills the cache
    if x_cache(redis_server.base + item) != "hit":
        raise RuntimeError("the Redis-backed server does not answer X-Cache: hit")
    if x_cache(redis_unpinned.base + item) != "hit":
        raise RuntimeError("the unpinned Redis-backed server does not answer X-Cache: hit")
    for server in (db_server, db_unpinned):
        if x_cache(server.base + item) != "miss" or x_cache(server.base + item) != "miss":
            raise RuntimeError(f"the cache-off server {server.name} answered from a cache")
    targets = [
        Target("Redis server: /healthz", redis_server.base + "/healthz", redis_server),
        Target(f"Redis server: GET {item} (cache hit)", redis_server.base + item, redis_server),
        Target("DB server: /healthz", db_server.base + "/healthz", db_server),
        Target(f"DB server: GET {item} (PostgreSQL)", db_server.base + item, db_server),
        Target(
            f"DB server, DATABASE_POOL_SIZE=5 (the former default; diagnostic): GET {item}",
            small_pool.base + item,
            small_pool,
        ),
        Target(
            f"Redis server, {UNPINNED}: /healthz", redis_unpinned.base + "/healthz", redis_unpinned
        ),
        Target(
            f"Redis server, {UNPINNED}: GET {item} (cache hit)",
            redis_unpinned.base + item,
            redis_unpinned,
        ),
        Target(f"DB server, {UNPINNED}: /healthz", db_unpinned.base + "/healthz", db_unpinned),
        Target(
            f"DB server, {UNPINNED}: GET {item} (PostgreSQL)", db_unpinned.base + item, db_unpinned
        ),
    ]
    bench.load(targets, bench.plan.pair_duration_s, section, bench.plan.pair_rounds)
    results["data"] = targets
    results["item"] = item
    bench.stop(redis_server, db_server, small_pool, redis_unpinned, db_unpinned)


def measure_servers(bench: Bench, results: dict, projects: dict, prod: dict) -> None:
    """Load each kind of endpoint of the all-on bake on gunicorn and on granian, in turn.

    /healthz, a cached read and a write on servers with production settings; a PostgreSQL
    read on a second pair without a cache (bench_app.py, as the data part).
    """
    section = "servers"
    granian_project, _ = bench.bake("all-on-granian", {**ALL_ON.answers, "app_server": "granian"})
    bench.placeholders[str(granian_project)] = "$ALL_ON_GRANIAN"
    env = {**prod, "RATELIMIT_WRITE": BENCH_RATELIMIT}  # writes are loaded too
    db_env = {key: value for key, value in env.items() if key != "REDIS_URL"}
    db_env["BENCH_CACHE"] = "off"
    app = f"{PACKAGE}:create_app()"
    pairs = {
        "": (
            bench.server("gunicorn", projects["all-on"], env, app, section),
            bench.granian("granian", granian_project, env, section),
        ),
        "no cache": (
            bench.server("gunicorn, no cache", projects["all-on"], db_env, BENCH_APP, section),
            bench.granian(
                "granian, no cache", granian_project, db_env, section, module="granian_bench"
            ),
        ),
    }
    # The launcher without its gc.freeze() before the workers fork: what the freeze saves.
    unfrozen = bench.granian(
        GRANIAN_UNFROZEN, granian_project, {**env, "BENCH_FREEZE": "off"}, section, "granian_bench"
    )
    servers = [server for pair in pairs.values() for server in pair] + [unfrozen]
    bench.start(*servers)
    item = processed_item(bench, projects["all-on"], env)
    for server in (*pairs[""], unfrozen):
        x_cache(server.base + item)  # the first read fills the cache (all share Redis)
        if x_cache(server.base + item) != "hit":
            raise RuntimeError(f"{server.name} does not answer X-Cache: hit")
    for server in pairs["no cache"]:
        if x_cache(server.base + item) != "miss":
            raise RuntimeError(f"{server.name} answered from a cache")
    loads = [
        ("/healthz", "", None),
        (item, "", None),
        (f"{item} (PostgreSQL)", "no cache", None),
        ("POST /api/items", "", str(BENCH / "post_item.lua")),
    ]
    targets, diagnostic = [], []
    for label, pair, script in loads:
        path = "/api/items" if script else label.split(" ")[0]
        targets += [
            Target(
                f"{server.name.split(',')[0]}: {label}", server.base + path, server, script=script
            )
            for server in pairs[pair]
        ]
        if pair == "":  # granian's loads: its memory after them is what is compared
            diagnostic.append(
                Target(f"{unfrozen.name}: {label}", unfrozen.base + path, unfrozen, script=script)
            )
    targets += diagnostic  # last: the report reads the pairs before them by position
    bench.load(targets, bench.plan.pair_duration_s, section, bench.plan.pair_rounds)
    results["servers"] = targets
    results["servers_memory"] = {server.name: server.worker_memory() for server in servers}
    bench.stop(*servers)


def processed_item(bench: Bench, project: Path, env: dict) -> str:
    """Create one item whose example task has run (so reads cache it); return its path."""
    eager = {**bench.base_env(), **env, "CELERY_TASK_ALWAYS_EAGER": "true"}
    code = (
        f"from {PACKAGE} import create_app; client = create_app().test_client(); "
        "answer = client.post('/api/items', json={'name': 'bench', 'description': 'x' * 200}); "
        "print(answer.headers['Location'])"
    )
    location = project_python(project, eager, code).strip().splitlines()[-1]
    return location if location.startswith("/") else "/" + location.split("/", 3)[3]


def worker_configs(cores: int) -> list[tuple[str, dict]]:
    """Return the worker configurations to compare: sync and gthread, sized from the cores."""
    many = 2 * cores + 1
    configs = [(f"sync, {cores} workers", "sync", cores, 1)]
    configs += [
        (f"gthread, {cores} workers x {threads} threads", "gthread", cores, threads)
        for threads in (4, 8, 16)
    ]
    configs.append((f"sync, {many} workers (2*cores+1)", "sync", many, 1))
    # WEB_THREADS=1 for sync: gunicorn silently runs sync workers with threads > 1 as gthread.
    return [
        (name, {"WORKER_CLASS": kind, "WEB_CONCURRENCY": str(workers), "WEB_THREADS": str(threads)})
        for name, kind, workers, threads in configs
    ]


def measure_workers(bench: Bench, results: dict, projects: dict, prod: dict) -> None:
    """Load three kinds of endpoint on each worker configuration, interleaved per endpoint."""
    section = "workers"
    env = {key: value for key, value in prod.items() if key != "REDIS_URL"}
    env["BENCH_CACHE"] = "off"
    servers = [
        bench.server(
            name, projects["all-on"], {**env, **config}, "bench_app:create_bench_app()", section
        )
        for name, config in worker_configs(len(os.sched_getaffinity(0)))
    ]
    bench.start(*servers)
    item = create_item(servers[0].base)
    results["workers"] = {}
    for label, path in (
        ("cheap (/healthz)", "/healthz"),
        ("PostgreSQL read", item),
        ("10 ms I/O wait", "/bench/io"),
    ):
        targets = [Target(server.name, server.base + path, server) for server in servers]
        log(f"workers: {label}")
        bench.load(targets, bench.plan.matrix_duration_s, section, bench.plan.matrix_rounds)
        results["workers"][label] = targets
    bench.stop(*servers)


def measure_cold_start(bench: Bench, results: dict, projects: dict, prod: dict, worker) -> None:
    """Time process start to the first 200 of /healthz, servers one at a time, interleaved."""
    section = "cold"
    servers = {
        "minimal Flask": lambda: bench.reference(
            "minimal Flask", "reference_apps:create_flask_app()", worker, section
        ),
        "generated, defaults": lambda: bench.server(
            "generated, defaults", projects["defaults"], prod, f"{PACKAGE}:create_app()", section
        ),
        "generated, all-on": lambda: bench.server(
            "generated, all-on", projects["all-on"], prod, f"{PACKAGE}:create_app()", section
        ),
    }
    collector_on = collector_on_config(bench, projects["all-on"])
    if collector_on:
        servers[COLLECTOR_ON] = lambda: bench.server(
            COLLECTOR_ON,
            projects["all-on"],
            prod,
            f"{PACKAGE}:create_app()",
            section,
            config=collector_on,
        )
    wall: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(max(3, bench.plan.rounds)):
        for name, make in servers.items():
            server = make()
            wall[name].append(server.start())
            cpu[name].append(server.cpu_s())  # master and workers, until the first 200
            server.settle()  # stopping a master while it still spawns can strand a worker
            server.stop()
            log(f"cold start {name}: {wall[name][-1]:.3f} s, {cpu[name][-1]:.2f} CPU s")
    results["cold"] = {name: statistics.median(values) for name, values in wall.items()}
    results["cold_cpu"] = {name: statistics.median(values) for name, values in cpu.items()}


# The lines of the generated gunicorn.conf.py that pause the collector while it imports, then
# set the imported objects aside (gc.freeze) before turning it on again.
PAUSE = re.compile(r"^gc\.(disable|freeze|enable)\(\)\n", re.MULTILINE)


def collector_on_config(bench: Bench, project: Path) -> str | None:
    """Write the project's own gunicorn config without its pause of the garbage collector while
    it imports the package, and return its path (None when the config does not pause it)."""
    own = (project / "gunicorn.conf.py").read_text()
    if not PAUSE.search(own):
        return None
    path = bench.root / "collector-on.conf.py"
    path.write_text(PAUSE.sub("", own))
    bench.note("cold", "# $BENCH_DIR/collector-on.conf.py: gunicorn.conf.py, no top-level gc calls")
    return str(path)


def measure_overhead(bench: Bench, results: dict, projects: dict, prod: dict) -> None:
    """Price each concern of the generated app per request, in process (bench/overhead.py)."""
    log("overhead: CPU per request of each concern, in process")
    # Metrics in a shared folder, as under gunicorn (gunicorn.conf.py makes one when unset).
    folder = tempfile.mkdtemp(prefix="metrics-", dir=bench.root)
    env = {**bench.base_env(), **prod, "PYTHONPATH": str(projects["all-on"])}
    env["PROMETHEUS_MULTIPROC_DIR"] = folder
    result = subprocess.run(
        [sys.executable, str(BENCH / "overhead.py")],
        cwd=projects["all-on"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    results["overhead"] = json.loads(result.stdout.strip().splitlines()[-1])
    bench.note(
        "overhead",
        f"(cd $ALL_ON && env PYTHONPATH=. PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) "
        f"python {BENCH}/overhead.py)",
    )


def measure_celery(bench: Bench, results: dict, projects: dict, prod: dict) -> None:
    """Time the example task: a backlog drained by the worker, then paced items' latency."""
    section = "celery"
    project = projects["all-on"]
    env = {**prod, "RATELIMIT_WRITE": BENCH_RATELIMIT}  # items are created by the thousand
    server = bench.server("all-on, enqueuing", project, env, f"{PACKAGE}:create_app()", section)
    bench.start(server)
    command = celery_bench.worker_command(project)
    worker = celery_bench.Worker(
        command, project, {**bench.base_env(), **prod}, bench.log_path("celery worker")
    )
    bench.cleanups.append(worker.stop)
    bench.note(section, f"(cd $ALL_ON && {' '.join(command)})   # compose.yaml's worker command")
    burst, paced = (200, 100) if bench.plan is QUICK else (1000, 300)
    log(f"celery: {burst} queued tasks drained, then {paced} paced ones, per round")
    dsn = prod["DATABASE_URL"].replace("+psycopg", "")
    results["celery"] = celery_bench.measure(
        worker, server.base, dsn, burst, paced, bench.plan.rounds
    )
    results["celery"]["concurrency"] = celery_concurrency(project, {**bench.base_env(), **prod})
    log(f"celery: {results['celery']['rate']:.0f} tasks/s, {results['celery']['latency']}")
    bench.cleanups.remove(worker.stop)
    bench.stop(server)


def celery_concurrency(project: Path, env: dict) -> int:
    """Return the worker's concurrency (processes) the generated settings resolve to in ``env``."""
    code = f"from {PACKAGE}.settings import load_settings; "
    code += "print(load_settings().celery_worker_concurrency)"
    return int(project_python(project, env, code))


def measure_matrix(bench: Bench, results: dict) -> None:
    """Run the tier-1 generation matrix once and time it."""
    log("tier-1 matrix: " + " ".join(MATRIX_COMMAND))
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *MATRIX_COMMAND],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HOME": str(bench.home)},
    )
    seconds = time.perf_counter() - started
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    results["matrix"] = {"seconds": seconds, "returncode": result.returncode, "summary": summary}
    bench.note("template", "python " + " ".join(MATRIX_COMMAND[:-3]))
    log(f"tier-1 matrix: {seconds:.1f} s, {summary}")


def measure_docker(results: dict) -> None:
    """Record whether a Docker engine is reachable; this suite never starts one."""
    if not os.environ.get("DOCKER_HOST") or shutil.which("docker") is None:
        results["docker"] = "not measured here: no engine (DOCKER_HOST unset)"
        return
    probe = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        results["docker"] = "not measured here: no engine answers at DOCKER_HOST"
        return
    results["docker"] = (
        f"engine {probe.stdout.strip()} reachable; image size and container start are measured "
        "by the tier-3 tests (tests/tier3), not by this suite"
    )


# ----------------------------------------------------------------------------- the report


def fmt_rps(target: Target) -> str:
    """Format the median req/s."""
    return f"{target.median('rps'):,.0f}"


def write_outputs(bench, results: dict, out: Path) -> None:
    """Write the markdown report (never into generated files: this machine is not the owner's)."""
    text = render(bench, results, results["plan"], results["elapsed_s"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"wrote {out}")


def detached(value):
    """Return results without their live servers (processes cannot be pickled)."""
    if isinstance(value, Target):
        return dataclasses.replace(value, server=None, proxy=None)
    if isinstance(value, list):
        return [detached(item) for item in value]
    if isinstance(value, dict):
        return {key: detached(item) for key, item in value.items()}
    return value


def render_saved(saved: Path, out: Path) -> int:
    """Re-render the report of a run saved with --save."""
    data = pickle.loads(saved.read_bytes())  # a file this script wrote
    write_outputs(types.SimpleNamespace(commands=data["commands"]), data["results"], out)
    return 0


def splice_section(out: Path, lines: list[str]) -> None:
    """Replace one "## " section of an existing report with ``lines`` (added before Template)."""
    text = out.read_text() if out.is_file() else "# Benchmarks\n"
    title = lines[1]
    start = text.find(f"\n{title}\n")
    if start < 0:
        start = end = text.find("\n## Template\n") if "\n## Template\n" in text else len(text)
    else:
        following = text.find("\n## ", start + len(title) + 2)
        end = following if following >= 0 else len(text)
    out.write_text(text[:start].rstrip("\n") + "\n" + "\n".join(lines) + "\n" + text[end:])
    log(f"wrote its section into {out}")


def note_setup(bench: Bench) -> None:
    """Record how PostgreSQL, Redis and the production environment were set up."""
    pg = f"runuser -u pgtest -- {postgres_bin()}/"
    for command in (
        f"{pg}initdb -D $BENCH_DIR/pg/data -U app --auth=trust --no-sync --encoding=UTF8 "
        "--locale=C",
        f"{pg}postgres -D $BENCH_DIR/pg/data -p $PG_PORT -k $BENCH_DIR/pg "
        "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off &",
        "runuser -u pgtest -- redis-server --port $REDIS_PORT --bind 127.0.0.1 "
        "--dir $BENCH_DIR/redis --save '' --appendonly no --databases 64 &",
        "export APP_ENV=production SECRET_KEY=$(python -c 'import secrets; "
        "print(secrets.token_urlsafe(48))') HOST=127.0.0.1 "
        "DATABASE_URL=postgresql+psycopg://app@127.0.0.1:$PG_PORT/postgres "
        f"REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 RATELIMIT_DEFAULT='{BENCH_RATELIMIT}'",
        f"(cd $ALL_ON && python -m flask --app '{PACKAGE}:create_app()' db upgrade)",
    ):
        bench.note("setup", command)


def ensure_pg_user() -> None:
    """Create the unprivileged user PostgreSQL runs as, when we are root and it is missing."""
    if os.geteuid() != 0:
        return
    if subprocess.run(["id", "pgtest"], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "-m", "pgtest"], check=True, timeout=30)


def main() -> int:
    """Run every measurement, then write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run: 1 round, no tier-1")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only these parts: " + " ".join(PARTS),
    )
    parser.add_argument("--rounds", type=int, help="rounds per comparison (full: 3, quick: 1)")
    parser.add_argument("--duration", type=int, help="seconds per load (full: 8; pairs, matrix: 3)")
    parser.add_argument("--save", type=Path, help="also pickle the results here (for --render)")
    parser.add_argument("--render", type=Path, help="only re-render a --save'd run's report")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = dataclasses.replace(
            plan, rounds=args.rounds, pair_rounds=args.rounds, matrix_rounds=args.rounds
        )
    if args.duration:
        plan = dataclasses.replace(
            plan,
            duration_s=args.duration,
            pair_duration_s=args.duration,
            matrix_duration_s=args.duration,
        )
    if args.render:
        return render_saved(args.render, args.out)
    parts = set(args.only or PARTS)
    for tool in ("wrk", "nginx", "redis-server", "envsubst"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (apt-get install wrk nginx redis-server)")
    ensure_pg_user()

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    root.chmod(0o755)  # PostgreSQL runs as another user and needs to reach its folder
    bench = Bench(plan, root)
    (root / "logs").mkdir()
    results: dict = {"started": datetime.now(UTC), "plan": plan, "load_start": os.getloadavg()[0]}
    try:
        projects = measure_bakes(bench, results)
        postgres, redis = Postgres(root / "pg"), Redis(root / "redis")
        log("start PostgreSQL and Redis")
        bench.cleanups += [postgres.stop, redis.stop]
        postgres.init().start()
        redis.start()
        bench.placeholders = {
            str(projects["defaults"]): "$DEFAULTS",
            str(projects["all-on"]): "$ALL_ON",
        }
        prod = bench.prod = {
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "HOST": "127.0.0.1",
            "DATABASE_URL": postgres.url("postgres"),
            "REDIS_URL": redis.url(0),
            "RATELIMIT_DEFAULT": BENCH_RATELIMIT,
        }
        env = {**bench.base_env(), **prod}
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", f"{PACKAGE}:create_app()", "db", "upgrade"],
            cwd=projects["all-on"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        note_setup(bench)
        worker = worker_settings(projects["all-on"], env)
        results["worker"] = worker
        for part, run in (
            ("cheap", lambda: measure_cheap(bench, results, projects, prod, worker)),
            ("nginx", lambda: measure_nginx(bench, results, projects, prod)),
            ("data", lambda: measure_data(bench, results, projects, prod)),
            ("servers", lambda: measure_servers(bench, results, projects, prod)),
            ("workers", lambda: measure_workers(bench, results, projects, prod)),
            ("cold", lambda: measure_cold_start(bench, results, projects, prod, worker)),
            ("overhead", lambda: measure_overhead(bench, results, projects, prod)),
            ("celery", lambda: measure_celery(bench, results, projects, prod)),
            ("frontend", lambda: measure_frontend(bench, results, projects, prod)),
        ):
            if part in parts:
                run()
        bench.close()
        if plan.run_matrix and "matrix" in parts:
            measure_matrix(bench, results)
        measure_docker(results)
        results["load_end"] = os.getloadavg()[0]
        results["elapsed_s"] = time.perf_counter() - started
        if args.save:
            saved = {"results": detached(results), "commands": bench.commands}
            args.save.write_bytes(pickle.dumps(saved))
        if parts == {"frontend"}:  # its section alone, into the report already there
            lines = frontend_bench.section(results["frontend"], bench.commands["frontend"])
            splice_section(args.out, lines)
        else:
            write_outputs(bench, results, args.out)
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
