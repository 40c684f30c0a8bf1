"""The per-core table of docs/benchmarks.md: what each endpoint costs per core, on each server.

bench/report.py renders it from the `servers` part, with the machine it was measured on. It stays
in the template's own docs: the generated README gives owners guidance, not this machine's figures.
"""

import os
import platform

# Each endpoint the table shows (the label run.py's servers part gives it): its row's first and
# last cells.
ENDPOINTS = {
    "/healthz": (
        "`/healthz` (no I/O)",
        "`WEB_CONCURRENCY` (one worker per core, each kept to its core: "
        "`WORKER_CPU_AFFINITY`); the app server",
    ),
    "cached read": (
        "`GET /api/items/<id>`, cached in Redis",
        "`REDIS_URL` (without it each worker caches in its memory), `CACHE_TTL_SECONDS`; one "
        "Redis call per hit: the rate limiter's count and the cached JSON body together "
        "(`RATELIMIT_DEFAULT`); a worker kept to one core wakes no other around that call "
        "(`WORKER_CPU_AFFINITY`)",
    ),
    "PostgreSQL": (
        "`GET /api/items/<id>` from PostgreSQL",
        "one SELECT sent by psycopg outside a transaction (one round trip); `WEB_THREADS` "
        "(threads wait on the database in parallel, each with its pooled connection: "
        "`DATABASE_POOL_SIZE` follows it); PostgreSQL's own CPU, not counted here",
    ),
    "POST": (
        "`POST /api/items` (a write)",
        "the commit in PostgreSQL; `RATELIMIT_WRITE` (60 per minute per client by default); "
        "the background task it enqueues, if any",
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
    """Return the table's lines, from the servers part's targets."""
    cells: dict[str, dict[str, str]] = {kind: {} for kind in ENDPOINTS}
    for target in servers:
        server = target.name.split(":", 1)[0]
        cells[_kind(target.name)][server] = _per_core(target)
    rows = [
        f"| {label} | {cells[kind].get('gunicorn', '-')} | {cells[kind].get('granian', '-')} "
        f"| {knobs} |"
        for kind, (label, knobs) in ENDPOINTS.items()
    ]
    return [
        _machine_line(started, load),
        "",
        "| endpoint | gunicorn: requests/s per core | granian: requests/s per core "
        "| what moves it |",
        "|---|---:|---:|---|",
        *rows,
    ]
