"""The generated README's performance table: what each endpoint costs per core, on each server.

bench/run.py renders it from the `servers` part and writes it twice, between the same markers:
into docs/benchmarks.md and into the template's README, so a test can check they agree.
"""

import os
import platform
import re
from pathlib import Path

START = "<!-- performance table: written by bench/run.py -->"
END = "<!-- end of performance table -->"
BLOCK = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
# Each endpoint the table shows (the label run.py's servers part gives it): its row's first and
# last cells, and the option a bake needs for the row to apply (the README guards it with Jinja).
ENDPOINTS = {
    "/healthz": (
        "`/healthz` (no I/O)",
        "`WEB_CONCURRENCY` (one worker per core, each kept to its core: "
        "`WORKER_CPU_AFFINITY`); the app server",
        None,
    ),
    "cached read": (
        "`GET /api/items/<id>`, cached in Redis",
        "`REDIS_URL` (without it each worker caches in its memory), `CACHE_TTL_SECONDS`; one "
        "Redis call per hit: the rate limiter's count and the cached JSON body together "
        "(`RATELIMIT_DEFAULT`); a worker kept to one core wakes no other around that call "
        "(`WORKER_CPU_AFFINITY`)",
        "use_redis",
    ),
    "PostgreSQL": (
        "`GET /api/items/<id>` from PostgreSQL",
        "one SELECT sent by psycopg outside a transaction (one round trip); `WEB_THREADS` "
        "(threads wait on the database in parallel, each with its pooled connection: "
        "`DATABASE_POOL_SIZE` follows it); PostgreSQL's own CPU, not counted here",
        "use_postgres",
    ),
    "POST": (
        "`POST /api/items` (a write)",
        "the commit in PostgreSQL; `RATELIMIT_WRITE` (60 per minute per client by default); "
        "the background task it enqueues, if any",
        "use_postgres",
    ),
}


def _kind(name: str) -> str:
    """Return which ENDPOINTS row a target of the servers part measures."""
    label = name.split(": ", 1)[1]
    if label == "/healthz":
        return "/healthz"
    if "PostgreSQL" in label:
        return "PostgreSQL"
    return "POST" if label.startswith("POST") else "cached read"


def _per_core(target) -> str:
    """Return requests per second per core of server CPU, and the p99 of the load."""
    cpu_ms = target.median("cpu_ms_per_request")
    if not cpu_ms:
        return "-"
    return f"{1000 / cpu_ms:,.0f} (p99 {target.median('p99_ms'):.0f} ms)"


def _machine_line(started, load: tuple[float, float]) -> str:
    """Return the line saying when and where the numbers were measured."""
    return (
        f"Measured by the template's `bench/run.py` on {started:%Y-%m-%d}: {_cpus()} CPUs, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, load "
        f"average {load[0]:.1f} at the start and {load[1]:.1f} at the end (the benchmark's own "
        "servers and load generator count in it). Each server ran 2 workers, loaded by wrk "
        "with 32 connections (saturated); wrk and the database servers ran on the same CPUs. "
        "Per core: 1 s over the app server's CPU time per request, so the database servers' "
        "own CPU is not in it."
    )


def _cpus() -> int:
    """Return the CPUs this process may use."""
    return len(os.sched_getaffinity(0))


def table(servers: list, started, load: tuple[float, float]) -> list[str]:
    """Return the table's lines, markers included, from the servers part's targets."""
    cells: dict[str, dict[str, str]] = {kind: {} for kind in ENDPOINTS}
    for target in servers:
        server = target.name.split(":", 1)[0]
        cells[_kind(target.name)][server] = _per_core(target)
    rows = [
        f"| {label} | {cells[kind].get('gunicorn', '-')} | {cells[kind].get('granian', '-')} "
        f"| {knobs} |"
        for kind, (label, knobs, _) in ENDPOINTS.items()
    ]
    return [
        START,
        _machine_line(started, load),
        "",
        "| endpoint | gunicorn: requests/s per core | granian: requests/s per core "
        "| what moves it |",
        "|---|---:|---:|---|",
        *rows,
        END,
    ]


def with_guards(lines: list[str]) -> list[str]:
    """Return the table for the template's README: each row needing an option guarded by it."""
    options = {f"| {label} |": option for label, _, option in ENDPOINTS.values() if option}
    out = []
    for line in lines:
        option = next((o for start, o in options.items() if line.startswith(start)), None)
        out += (
            [f'{{%- if cookiecutter.{option} == "yes" %}}', line, "{%- endif %}"]
            if option
            else [line]
        )
    return out


def replace_block(text: str, lines: list[str]) -> str:
    """Return ``text`` with the block between the markers replaced by ``lines``."""
    if not BLOCK.search(text):
        raise ValueError(f"no block between {START!r} and {END!r}")
    return BLOCK.sub(lambda _: "\n".join(lines), text, count=1)


def block(text: str) -> str | None:
    """Return the block between the markers, markers included, or None."""
    match = BLOCK.search(text)
    return match.group(0) if match else None


def write_readme(readme: Path, lines: list[str]) -> None:
    """Write the table into the template's README between its markers."""
    readme.write_text(replace_block(readme.read_text(), lines))
