"""Where a request's CPU goes: the default bake's WSGI app and the references, side by side.

    python bench/breakdown.py                 writes docs/benchmarks-breakdown.md (3000 requests)
    python bench/breakdown.py --requests 500  quicker
    python bench/breakdown.py --print         prints the page instead

It bakes and serves the default answers as run.py does (PostgreSQL, Redis, the migrated schema,
an item created and cached through HTTP), then builds the service's app in this process with the
served instance's settings, and the two references of reference_apps.py with the same ones. Each
target is called as a WSGI server calls it, ``app(environ, start_response)`` with the body read
and closed, in one thread:

- first unprofiled: the CPU time of this process per request (``time.process_time``), which
  leaves out the app server and the network: what the Flask app itself costs;
- then under cProfile: the own time of each function, summed by where its code lives (a module
  of the service, a library, the standard library, C calls), and the service's own functions by
  cumulative time. The profiler slows every Python call, so read its figures as shares;
- and the access line gunicorn writes after each answer, priced the same two ways: the logger
  gunicorn makes from the bake's gunicorn.conf.py, called as a worker calls it.

Run it alone (it measures CPU time: other processes' load slows it less than wall time, but a
busy machine still makes it noisy).
"""

import argparse
import contextlib
import cProfile
import importlib
import os
import pstats
import runpy
import statistics
import sys
import time
import types
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from run import git, machine, start_servers
from serve import REPO, cached_item, create_item, deploy
from werkzeug.test import EnvironBuilder

BENCH = Path(__file__).resolve().parent
PAGE = REPO / "docs" / "benchmarks-breakdown.md"
DEFAULTS: dict[str, str] = {}  # cookiecutter.json's first choices: the default bake
WARM_UP = 200  # requests before each measurement: pools filled, caches and imports warm
ROUNDS = 5  # each CPU figure is measured this many times, service and reference in turn
TOP_GROUPS, TOP_FUNCTIONS = 14, 12


def call(app, environ: dict) -> int:
    """Call ``app`` as a WSGI server does; return the status code."""
    status = []

    def start_response(line, headers, exc_info=None):
        status.append(line)
        return lambda data: None

    body = app(environ, start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close:
            close()
    return int(status[0].split()[0])


def environs(path: str, count: int) -> list[dict]:
    """Return ``count`` fresh WSGI environs of a GET of ``path`` from a loopback client."""
    builder = EnvironBuilder(path=path, headers={"Accept": "application/json"})
    base = builder.get_environ()
    base.update(REMOTE_ADDR="127.0.0.1", REMOTE_PORT="40000")
    return [dict(base) for _ in range(count)]


def cpu_per_request(app, path: str, count: int, expected: int) -> float:
    """Return the process CPU microseconds per request of ``count`` unprofiled calls."""
    for environ in environs(path, WARM_UP):
        status = call(app, environ)
    if status != expected:
        raise RuntimeError(f"{path} answered {status}, not {expected}")
    batch = environs(path, count)
    started = time.process_time()
    for environ in batch:
        call(app, environ)
    return (time.process_time() - started) / count * 1e6


def group_of(filename: str, own: Path | None) -> str:
    """Return where a profiled function's code lives: a module under ``own`` (the service's),
    this bench's calling loop, a library's top package, the standard library's module, or C
    calls."""
    if filename.startswith(("~", "<")):
        return "C calls (builtins, C extensions)"
    path = Path(filename)
    if own is not None and path.is_relative_to(own):
        return "service: " + str(path.relative_to(own).with_suffix(""))
    if path.is_relative_to(BENCH):
        return "this bench's calling loop"
    parts = path.parts
    if "site-packages" in parts:
        top = parts[parts.index("site-packages") + 1]
        return "library: " + top.removesuffix(".py")
    return "stdlib: " + (path.parent.name if path.stem == "__init__" else path.stem)


def profile_calls(once: Callable[[], object], count: int, package_dir: Path | None) -> dict:
    """Profile ``count`` calls of ``once``; return µs per call by group and the service's own
    functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        once()
    profiler.disable()
    stats = pstats.Stats(profiler)
    groups: dict[str, float] = defaultdict(float)
    own: list[tuple[float, str]] = []
    for (filename, line, name), (_, _, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        groups[group_of(filename, package_dir)] += tottime
        if package_dir and Path(filename).is_relative_to(package_dir):
            where = Path(filename).relative_to(package_dir)
            own.append((cumtime, f"{where}:{line} {name}"))
    total = sum(groups.values())
    return {
        "profiled_us": total / count * 1e6,
        "groups": sorted(
            ((name, t / count * 1e6, t / total) for name, t in groups.items()),
            key=lambda row: -row[1],
        ),
        "service_functions": [(name, t / count * 1e6) for t, name in sorted(own, reverse=True)],
    }


def profile(app, path: str, count: int, package_dir: Path | None) -> dict:
    """Profile ``count`` requests of ``path`` (see profile_calls)."""
    batch = iter(environs(path, count))
    return profile_calls(lambda: call(app, next(batch)), count, package_dir)


def app_of(bake: Path, env: dict[str, str]):
    """Build the bake's app in this process with the served instance's settings."""
    os.environ.update(env)
    sys.path.insert(0, str(bake))
    package = next(p.parent.name for p in bake.glob("*/__init__.py") if p.parent.name != "tests")
    return importlib.import_module(package).create_app(), bake / package


def access_logger(bake: Path, stream: TextIO):
    """Return the logger gunicorn makes from the bake's gunicorn.conf.py (its access line's
    format, filter and JSON formatter), writing to ``stream`` instead of standard output."""
    from gunicorn.config import Config

    config = Config()
    for name, value in runpy.run_path(str(bake / "gunicorn.conf.py")).items():
        if name in config.settings:
            config.set(name, value)
    with contextlib.redirect_stdout(stream):
        return config.logger_class(config)  # its handlers take sys.stdout now: ``stream``


def access_line(bake: Path, app, count: int, package_dir: Path) -> tuple[list[float], dict]:
    """Return the CPU microseconds per access line of a /healthz answer in each round, as
    gunicorn writes it after each request (its logger's ``access``, with the answer's status
    and headers), and its profile."""
    # Left open: the logging configuration keeps writing to it until the process ends.
    devnull = open(os.devnull, "w")
    logger = access_logger(bake, devnull)
    environ = environs("/healthz", 1)[0]
    environ.update(RAW_URI="/healthz", SERVER_PROTOCOL="HTTP/1.1")
    sent = []

    def start_response(status, headers, exc_info=None):
        sent.append((status, headers))
        return lambda data: None

    body = b"".join(app(dict(environ), start_response))
    status, headers = sent[0]
    answer = types.SimpleNamespace(status=status, headers=headers, sent=len(body))
    request = types.SimpleNamespace(
        headers=[(k[5:], v) for k, v in environ.items() if k[:5] == "HTTP_"]
    )
    took = timedelta(microseconds=900)
    for _ in range(WARM_UP):
        logger.access(answer, request, environ, took)
    cpu = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(count):
            logger.access(answer, request, environ, took)
        cpu.append((time.process_time() - started) / count * 1e6)
    profiled = profile_calls(
        lambda: logger.access(answer, request, environ, took), count, package_dir
    )
    return cpu, profiled


def reference(factory: str):
    """Build a reference app of reference_apps.py (it reads the same environment)."""
    sys.path.insert(0, str(BENCH))
    return getattr(importlib.import_module("reference_apps"), factory)()


def spread(values: list[float]) -> str:
    """Return the median of ``values`` and their range, as "median (lowest to highest)"."""
    return f"{statistics.median(values):.0f} ({min(values):.0f} to {max(values):.0f})"


def report(rows: list[dict], access: tuple[list[float], dict], count: int, facts: dict) -> str:
    """Render the figures as Markdown."""
    lines = [
        "# Where a request's CPU goes",
        "",
        "Written by `python bench/breakdown.py` (its docstring says how it measures): the WSGI",
        "app, and the access line gunicorn writes after each answer; not the rest of the app",
        "server's work (parsing, sockets, threads), which docs/benchmarks.md prices served.",
        "",
        f"- Run: {facts['started']}, the default bake of the checkout at {facts['commit']}"
        + (" (with uncommitted changes)" if facts["uncommitted"] else "")
        + ".",
        f"- Machine: {facts['cpus']} CPUs, Python {facts['python']}, {facts['postgres']},"
        f" {facts['redis']}; load average {facts['load']} at the start.",
        "",
        f"CPU of this process per request, unprofiled: the median of {ROUNDS} rounds of {count}"
        " requests (the lowest and highest round), service and reference in turn:",
        "",
        "| target | service µs | reference µs | reference ÷ service |",
        "|---|---|---|---|",
    ]
    for row in rows:
        ratios = [
            ref / ours for ours, ref in zip(row["service_us"], row["reference_us"], strict=True)
        ]
        lines.append(
            f"| {row['name']} | {spread(row['service_us'])} | {spread(row['reference_us'])} "
            f"| {statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f}) |"
        )
    lines += [
        f"| the access line of a /healthz answer (gunicorn.conf.py) | {spread(access[0])} | none"
        " | |",
        "",
        "The references run under plain gunicorn, which writes no access line.",
    ]
    sections = [(row["name"], row["service_profile"], row["reference_profile"]) for row in rows] + [
        ("the access line", access[1], None)
    ]
    for name, ours, theirs_profile in sections:
        lines += ["", f"### {name}: own time by where the code lives (under cProfile)", ""]
        lines += ["| where | service µs | share | reference µs |", "|---|---|---|---|"]
        theirs = {where: us for where, us, _ in (theirs_profile or {"groups": []})["groups"]}
        for where, us, share in ours["groups"][:TOP_GROUPS]:
            lines.append(f"| {where} | {us:.1f} | {share:.0%} | {theirs.get(where, 0):.1f} |")
        total = f"{theirs_profile['profiled_us']:.0f}" if theirs_profile else "none"
        lines.append(f"| all | {ours['profiled_us']:.0f} | 100% | {total} |")
        lines += ["", "The service's own functions by cumulative time per request:", ""]
        lines += ["| function | µs |", "|---|---|"]
        for function, us in ours["service_functions"][:TOP_FUNCTIONS]:
            lines.append(f"| `{function}` | {us:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--print", action="store_true", help="print the page, write nothing")
    args = parser.parse_args()
    found = machine()
    facts = {
        "started": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "commit": git("rev-parse", "--short=10", "HEAD"),
        "uncommitted": bool(git("status", "--porcelain", "--", "{{cookiecutter.project_slug}}")),
        "load": ", ".join(f"{load:.2f}" for load in found["load_average_at_start"]),
        **found,
    }
    with contextlib.ExitStack() as stack:
        servers = start_servers(stack)
        deployment = deploy(servers, REPO, "default", DEFAULTS)
        stack.callback(deployment.stop)
        cached = cached_item(deployment)
        missing = create_item(deployment.service.url) + 1_000_000
        service, package_dir = app_of(deployment.bake, dict(deployment.service.env))
        flask_ref, read_ref = reference("create_flask_app"), reference("create_read_app")
        targets = [
            ("/healthz", "/healthz", 200, flask_ref),
            ("read of a missing id", f"/api/items/{missing}", 404, read_ref),
            ("cached read", f"/api/items/{cached}", 200, read_ref),
        ]
        rows = [{"name": name, "service_us": [], "reference_us": []} for name, *_ in targets]
        for turn in range(ROUNDS):
            for row, (_, path, status, ref) in zip(rows, targets, strict=True):
                pair = [("service_us", service), ("reference_us", ref)]
                for key, app in pair if turn % 2 == 0 else pair[::-1]:
                    row[key].append(cpu_per_request(app, path, args.requests, status))
        for row, (_, path, _, ref) in zip(rows, targets, strict=True):
            row["service_profile"] = profile(service, path, args.requests, package_dir)
            row["reference_profile"] = profile(ref, path, args.requests, None)
        # Last: the access logger takes over the logging configuration (as in a worker).
        access = access_line(deployment.bake, service, args.requests, deployment.bake)
    page = report(rows, access, args.requests, facts)
    if args.print:
        print(page)
    else:
        PAGE.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
