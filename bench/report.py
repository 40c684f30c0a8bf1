"""Render the benchmark results as the markdown of docs/benchmarks.md."""

import math
import os
import platform
import statistics

import diagnostics
import frontend_bench
import performance

COLLECTOR_ON = "all-on, the collector on while gunicorn.conf.py imports (diagnostic)"
RECYCLING_DIAGNOSTIC = "all-on, MAX_REQUESTS=1000 (diagnostic)"
GRANIAN_UNFROZEN = "granian, without gc.freeze() (diagnostic)"
# The minimal Flask app under the all-on project's own gunicorn.conf.py: the same gunicorn
# settings as the generated service, its JSON access line per request included.
SAME_SETTINGS = "minimal Flask, the generated gunicorn.conf.py"
STORAGE_CALLS = "the limiter's in-memory counter call alone"
# results["data"]'s targets, in run.measure_data's order (the later ones absent from older runs).
REDIS_HEALTHZ, CACHE_HIT, DB_HEALTHZ, DB_READ, SMALL_POOL_READ = range(5)
UNPINNED_REDIS_HEALTHZ, UNPINNED_CACHE_HIT, UNPINNED_DB_HEALTHZ, UNPINNED_DB_READ = range(5, 9)
# The diagnostic servers whose workers may run on any CPU (cpu_pinning.py in the template).
UNPINNED = "WORKER_CPU_AFFINITY=off (diagnostic)"

TARGETS = {
    "cheap": 0.90,
    "nginx_cpu": 1.10,  # gunicorn's CPU per request behind nginx over direct: at most
    "db": 0.55,
    "redis": 0.70,
    "cold_s": 1.0,
    "rss_mib": 45.0,
    "bake_s": 1.0,
    "granian": 1.5,  # the same service on granian over gunicorn, req/s; p99 no worse
}


def _num(value, digits: int = 2, suffix: str = "") -> str:
    """Format a number, or a dash when missing."""
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def _extra(item: dict, variant: str, base: float, what: str) -> str:
    """Say in brackets what a diagnostic variant cost over the base, when it was measured."""
    if variant not in item:
        return ""
    more = item[variant] - base
    return f" ({what}: {_micros(more)}{' more' if more >= 10 else ''})"


def _against(value: float | None, target: float) -> str:
    """Format a ratio beside its target: two decimals, three when two would read as the target."""
    if value is None:
        return "-"
    digits = 3 if round(value, 2) == target and value != target else 2
    return f"{value:.{digits}f}x"


def _met(ok: bool | None) -> str:
    """Say whether a target was met."""
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _round_ratios(a, b) -> list[float]:
    """Return a's req/s over b's in each round, both measured in that round."""
    return [x.rps / y.rps for x, y in zip(a.samples, b.samples, strict=True) if y.rps > 0]


def _ratio(a, b) -> float:
    """Return the median over rounds of a's req/s over b's."""
    ratios = _round_ratios(a, b)
    return statistics.median(ratios) if ratios else 0.0


def _rounds(a, b) -> str:
    """Say how far the per-round ratios of a's req/s over b's spread: the noise around a ratio."""
    ratios = _round_ratios(a, b)
    if len(ratios) < 2:
        return ""
    spread = f" (rounds {min(ratios):.2f} to {max(ratios):.2f}"
    if len(ratios) >= 4:
        low, _, high = statistics.quantiles(ratios, n=4)
        spread += f", the middle half {low:.2f} to {high:.2f}"
    return spread + ")"


def _loaded_targets(results: dict) -> list:
    """Return every target loaded round after round, in every part of the run."""
    targets = [t for key in ("cheap", "nginx", "data", "servers") for t in results.get(key) or []]
    targets += [t for group in (results.get("workers") or {}).values() for t in group]
    return targets + list((results.get("frontend") or {}).get("targets", []))


def _repeats_note(results: dict) -> str:
    """Say how many loads were done again because one worker got every connection."""
    targets = _loaded_targets(results)
    repeated = sum(getattr(target, "repeated", 0) for target in targets)
    loads = sum(len(target.samples) for target in targets)
    return (
        "- wrk opens its 32 connections at once, and gunicorn keeps a kept-alive connection on "
        "the worker that accepted it: when one worker wins every accept, the others idle for "
        "the whole load, which then measures that race, not the endpoint (half the req/s on "
        "2 workers). A load in which one worker spent over 90% of the workers' CPU is done "
        f"again, at most twice: {repeated} time(s) for the {loads} loads kept in this run."
    )


def _target_row(measure: str, a, b, target: float) -> str:
    """Return a target row: a's req/s over b's (median of the rounds, and their spread)."""
    value = _ratio(a, b)
    return (
        f"| {measure} | {_against(value, target)}{_rounds(a, b)} | >= {target:.2f}x "
        f"| {_met(value >= target)} |"
    )


def _cpu_ratio(a, b) -> str:
    """Return b's server CPU per request over a's, formatted: a's cost as a share of b's rate."""
    cpu_a, cpu_b = a.median("cpu_ms_per_request"), b.median("cpu_ms_per_request")
    return f"{cpu_b / cpu_a:.2f}x" if cpu_a and cpu_b else "-"


def _load_table(targets, baseline=None, baseline_label: str = "") -> list[str]:
    """Return a markdown table of loaded targets, with a ratio column when given a baseline."""
    head = "| target | req/s | p50 ms | p99 ms | server CPU ms/request | errors |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if baseline is not None:
        head += f" ratio to {baseline_label} |"
        rule += "---:|"
    lines = [head, rule]
    for target in targets:
        row = (
            f"| {target.name} | {target.median('rps'):,.0f} | {_num(target.median('p50_ms'))} "
            f"| {_num(target.median('p99_ms'))} | {_num(target.median('cpu_ms_per_request'), 3)} "
            f"| {target.errors()} |"
        )
        if baseline is not None:
            row += f" {_ratio(target, baseline):.2f}x |"
        lines.append(row)
    return lines


def _pinning(data: list, read: int, unpinned: int) -> str:
    """Say what keeping each worker to one CPU was worth for a read, when it was measured."""
    if len(data) <= unpinned:
        return ""
    return (
        " Each worker keeps to one CPU (`WORKER_CPU_AFFINITY=auto`): its threads pass the GIL "
        "to one another without waking another CPU around each round trip; this run "
        f"{_ratio(data[read], data[unpinned]):.2f}x the req/s of the same read with the workers "
        "on any CPU."
    )


def _shortfalls(results: dict) -> list[str]:
    """Return, for each missed target, the measured reason and what would close the gap."""
    cheap = {target.name: target for target in results.get("cheap") or []}
    overhead = results.get("overhead") or {}
    health, item = overhead.get("healthz", {}), overhead.get("item", {})
    data = results.get("data")
    out = []
    flask = cheap.get(SAME_SETTINGS) or cheap.get("minimal Flask")
    if cheap and health and _ratio(cheap["generated, all-on"], flask) < TARGETS["cheap"]:
        out.append(_healthz_shortfall(cheap, health))
    if data and item and _ratio(data[DB_READ], data[DB_HEALTHZ]) < TARGETS["db"]:
        read = item["PostgreSQL read"]
        limiter = read - item["PostgreSQL read, without the rate limiter hooks"]
        pre_ping = item["PostgreSQL read, with pool_pre_ping (the former default)"] - read
        pool = ""
        if len(data) > SMALL_POOL_READ:
            per_thread, small = data[DB_READ], data[SMALL_POOL_READ]
            pool = (
                f" (this run: {_ratio(per_thread, small):.2f}x its req/s, p99 "
                f"{_num(per_thread.median('p99_ms'))} against {_num(small.median('p99_ms'))} ms)"
            )
        out.append(
            "- **PostgreSQL read.** Each worker's pool keeps a connection per thread: with the "
            "template's former 5 for 8 threads it closed each connection beyond the 5 on its "
            "return, so under load requests connected anew, a new PostgreSQL server process "
            f"each{pool}. In process a read costs {read:.0f} µs of CPU against /healthz's "
            f"{health['generated']:.0f}: psycopg sends one SELECT on an autocommit connection from "
            "the pool (one round trip; the read used to open a transaction: BEGIN, SELECT and "
            "ROLLBACK) and the route's own Flask work. The rate limiter's hooks (counting in "
            f"memory; the counter call alone {_num(item.get(STORAGE_CALLS), 1)} µs) measured "
            f"{_micros(limiter)} in this run, but these rows are noisy, as the thread's CPU per "
            "read moves with PostgreSQL's own share of the same 2 cores (the server CPU column "
            "above counts gunicorn only): by hand (2026-11-23), two pairs timed side by side "
            "gave the hooks +59 and -85 µs, and two identical apps differed by 126 µs. "
            "`pool_pre_ping` is gone (it cost "
            f"{_micros(pre_ping)} plus a round trip): the pool looks at each connection's socket "
            "instead, and the pool's gauges are sampled each second rather than written at "
            "every checkout and return. A returned connection is rolled back only when it is "
            "inside a transaction"
            + _extra(
                item, diagnostics.RESET_ALL, read, "the pool's own reset, rolling back every one"
            )
            + "."
            + _through_sqlalchemy(item, read)
            + _pinning(data, DB_READ, UNPINNED_DB_READ)
            + " Would help: a connection kept per thread (no checkout from the pool, but up to "
            "twice the connections per worker), or PostgreSQL on its own cores."
        )
    if data and item and _ratio(data[CACHE_HIT], data[REDIS_HEALTHZ]) < TARGETS["redis"]:
        hit = item["Redis cache hit"]
        no_limit = item["Redis cache hit, without the rate limiter hooks"]
        out.append(
            f"- **Redis cache hit.** Without the limiter's hooks a hit costs {no_limit:.0f} µs "
            f"in process, against /healthz's {health['generated']:.0f}; with them {hit:.0f} µs. "
            "A hit makes one Redis round trip: the limit's script counts the hit, answers when "
            "its window ends (all the X-RateLimit-* headers need) and returns the cached entry"
            + _extra(
                item,
                diagnostics.STOCK_COUNTER,
                hit,
                "limits' stock calls and a read apart, three round trips",
            )
            + ". The call goes straight to the thread's connection"
            + _extra(
                item, diagnostics.CLIENT_CALL, hit, "through its redis-py client's own evalsha"
            )
            + ". Each thread keeps its connection"
            + _extra(
                item,
                diagnostics.POOLED,
                hit,
                "a pooled redis-py client, a connection taken and given back per call",
            )
            + ". hiredis parses the replies in C"
            + _extra(item, diagnostics.PYTHON_PARSER, hit, "redis-py's own Python parser")
            + ". Under load each round trip also costs the worker a wait for Redis and a thread "
            "switch, which this in-process price does not show."
            + _pinning(data, CACHE_HIT, UNPINNED_CACHE_HIT)
            + " Would help: limiting reads at nginx, or not limiting reads."
        )
    nginx = results.get("nginx")
    if nginx and (_nginx_target_ratio(nginx) or 0) > TARGETS["nginx_cpu"]:
        out.append(_nginx_shortfall(nginx, results.get("nginx_upstream") or {}))
    out += _servers_shortfalls(results.get("servers") or [])
    bake = results.get("bake") or {}
    if any(seconds > TARGETS["bake_s"] for seconds in bake.values()):
        out.append(
            f"- **Bake time.** {', '.join(f'{name} {sec:.2f} s' for name, sec in bake.items())}"
            " of wall time per bake, with the machine's load average at "
            f"{results.get('load_start', 0.0):.1f} when the run began: a bake is one cookiecutter "
            "process rendering every file, then the post-gen hook pruning; it waits for the "
            "CPUs like everything else here. Its CPU time is not measured by this suite."
        )
    cold, cold_cpu = results.get("cold") or {}, results.get("cold_cpu") or {}
    slow = [name for name, seconds in cold.items() if seconds > TARGETS["cold_s"]]
    if any(name.startswith("generated") for name in slow):
        out.append(
            f"- **Cold start.** The all-on service used {_num(cold_cpu.get('generated, all-on'))}"
            " CPU seconds up to its first 200, and "
            f"{cold['generated, all-on']:.2f} s of wall time on this shared machine: the wall "
            "time exceeds the CPU time only while other work holds the CPUs. Most of it is "
            "the master importing the package (gunicorn.conf.py imports it and its `__init__` "
            "imports every concern: Flask, SQLAlchemy, pydantic, Flask-Migrate with alembic, "
            "redis, psycopg), which the workers then share."
        )
        if COLLECTOR_ON in cold_cpu:
            out[-1] += (
                " Already cut: the garbage collector's passes over the modules as they pile up "
                "and after: gunicorn.conf.py pauses it while it imports, then freezes what it "
                "imported "
                f"({_num(cold_cpu[COLLECTOR_ON])} CPU s without the pause: diagnostic row)."
            )
    memory = results.get("memory") or {}
    allon = memory.get("generated, all-on")
    if allon and allon["rss"] > TARGETS["rss_mib"]:
        toggled = memory.get(results.get("freeze_diagnostic")) or {}
        if results.get("freezes"):
            freeze = (
                f"{allon['private']:.0f} MiB after the load with the `gc.freeze()` the generated "
                f"gunicorn.conf.py calls in the master before forking, "
                f"{_num(toggled.get('private'), 0)} MiB without it (diagnostic row)."
            )
        else:
            freeze = (
                f"{allon['private']:.0f} MiB after the load, {_num(toggled.get('private'), 0)} "
                "MiB when the master calls `gc.freeze()` before forking (diagnostic row). Would "
                "help: `gc.freeze()` in gunicorn.conf.py's `when_ready` hook."
            )
        out.append(
            "- **Memory.** RSS counts every page a worker maps, shared ones included; the "
            f"imports alone make a process of about {allon['rss']:.0f} MiB (bare Flask "
            f"{memory['minimal Flask']['rss']:.0f}), so 45 MiB RSS is out of reach with these "
            "dependencies. What one more worker costs is its private memory: " + freeze
        )
    if not out:
        return []
    return ["", "### Why targets were missed, and what would close the gaps", "", *out]


def _through_sqlalchemy(item: dict, read: float) -> str:
    """Say what the same read cost the way the template made it before: through SQLAlchemy."""
    former = item.get(diagnostics.THROUGH_SQLALCHEMY)
    if former is None:
        return ""
    return (
        " Through SQLAlchemy's Connection and Result, as the template read before, the same "
        f"read cost {former:.0f} µs against {read:.0f} (diagnostic row)."
    )


def _servers_targets(servers) -> list[str]:
    """Return the target rows of granian over gunicorn: req/s ratio, and p99 side by side.

    The targets are /healthz and the cached read: the first two pairs of the servers part.
    """
    rows = []
    servers = (servers or [])[:4]
    for gunicorn, granian in zip(servers[::2], servers[1::2], strict=True):
        path = gunicorn.name.split(": ", 1)[1].replace("<", "&lt;").replace(">", "&gt;")
        p99 = (granian.median("p99_ms"), gunicorn.median("p99_ms"))
        measure = f"all-on: {path}, granian vs gunicorn req/s"
        rows += [
            _target_row(measure, granian, gunicorn, TARGETS["granian"]),
            f"| all-on: {path}, gunicorn's CPU per request over granian's | "
            f"{_cpu_ratio(granian, gunicorn)} | recorded | n/a |",
            f"| all-on: {path}, p99 granian / gunicorn | {_num(p99[0])} / {_num(p99[1])} ms "
            f"| no worse | {_met(p99[0] <= p99[1])} |",
        ]
    return rows


def _servers_memory(memory: dict | None) -> list[str]:
    """Return the app servers' memory per worker after their loads, when it was measured."""
    if not memory:
        return []
    rows = [
        f"| {name} | {_num(mib['rss'], 1)} | {_num(mib['pss'], 1)} | {_num(mib['private'], 1)} |"
        for name, mib in memory.items()
        if mib
    ]
    return [
        "",
        "Memory per worker after the loads (median over workers). granian's launcher freezes "
        f"the objects it imported before its workers fork; *{GRANIAN_UNFROZEN}* is the same "
        "launcher without that call (`bench/granian_bench.py`, `BENCH_FREEZE=off`).",
        "",
        "| server | RSS MiB | PSS MiB | private MiB |",
        "|---|---:|---:|---:|",
        *rows,
    ]


def _servers_section(results: dict) -> list[str]:
    """Return the section comparing the app servers, with the per-core table."""
    servers = results["servers"]
    load = (results.get("load_start", 0.0), results.get("load_end", 0.0))
    return [
        "",
        "## App servers: gunicorn and granian",
        "",
        "The all-on bake (`app_server=gunicorn`, its `gunicorn.conf.py`) and the same answers with "
        "`app_server=granian` (its `granian_server.py`), production settings, the same Redis: "
        "/healthz, a cached item read (`X-Cache: hit`, checked) and a write (`POST /api/items`, "
        "`bench/post_item.lua`; with Celery each write enqueues the example task); a second "
        "pair serves the PostgreSQL read without a cache (`bench/bench_app.py`, "
        "`BENCH_CACHE=off`, `REDIS_URL` unset; under granian through `bench/granian_bench.py`, "
        "the project's launcher serving that app). All loaded in turn. The ratio column is "
        "each target over gunicorn's /healthz.",
        "",
        *_load_table(servers, servers[0], "gunicorn /healthz"),
        *_servers_memory(results.get("servers_memory")),
        "",
        "### Per core",
        "",
        "What one core of the app server serves, per endpoint, and what moves it.",
        "",
        *performance.table(servers, results["started"], load),
    ]


def _access_line(health: dict) -> str:
    """Say what one access line costs alone and, when measured, right after a request."""
    alone = f"{health['one JSON access line (gunicorn logger)']:.0f} µs alone"
    after = health.get(diagnostics.WITH_ACCESS_LINE)
    if after is None:
        return alone
    return f"{alone}, {after - health['generated']:.0f} µs right after a request"


def _healthz_shortfall(cheap: dict, health: dict) -> str:
    """Explain the cost of /healthz over the minimal Flask app, concern by concern."""
    generated = health["generated"]
    cost = {name: generated - micros for name, micros in health.items()}
    same = cheap.get(SAME_SETTINGS)
    settings = (
        f"Under the same gunicorn settings ({_ratio(cheap['generated, all-on'], same):.2f}x) both "
        "pay gunicorn's own work and the JSON access line"
        if same is not None
        else "Both pay gunicorn's own work"
    )
    return (
        f"- **/healthz vs minimal Flask.** {settings}: the bare WSGI server spends "
        f"{_num(cheap['bare WSGI'].median('cpu_ms_per_request'), 3)} ms of CPU per request here, "
        f"an access line {_access_line(health)}. In process "
        f"the minimal Flask app spends {health['minimal Flask']:.0f} µs and the generated app "
        f"{generated:.0f} µs (*Where the time goes*): metrics "
        f"{_micros(cost['generated without metrics'])}, request ids "
        f"{_micros(cost['generated without request ids'])}, the rate limiter's hooks "
        f"{_micros(cost['generated without the rate limiter hooks'])} (a probe skips all of "
        "them: what is left is the check that skips them), ProxyFix "
        f"{_micros(cost['generated without ProxyFix'])}, the session "
        f"{_micros(cost['generated without the session'])} (opened only for a request that "
        "sends a session cookie, saved only when a view used it). Already cut: Flask's "
        "per-request question whether each hook and view is a coroutine (a dozen per request, "
        "now answered once per function), the metrics' label lookups (each series is found "
        "once), uuid4 for request ids (`os.urandom`), flask-limiter (the template's own two "
        "hooks, which a probe leaves at their first check, replace it), and with the pages "
        "flask-wtf's look-up of a route's CSRF exemptions on every GET (the method is asked "
        "first) and the static files' cache hook on every request (it wraps their view). What "
        "is left is the work each concern exists to do on every request; 0.90x would take "
        "dropping one (metrics cost the most: the METRICS_ENABLED=false row)."
    )


def _servers_shortfalls(servers: list) -> list[str]:
    """Explain each missed granian target: where the CPU of a request goes on each server."""
    out = []
    pairs = list(zip(servers[:4:2], servers[1:4:2], strict=True))
    if not pairs:
        return out
    health_cpu = [target.median("cpu_ms_per_request") or 0 for target in pairs[0]]
    saved = health_cpu[0] - health_cpu[1]
    for gunicorn, granian in pairs:
        ratio = _ratio(granian, gunicorn)
        p99 = (granian.median("p99_ms"), gunicorn.median("p99_ms"))
        if ratio >= TARGETS["granian"] and p99[0] <= p99[1]:
            continue
        path = gunicorn.name.split(": ", 1)[1].replace("<", "&lt;").replace(">", "&gt;")
        out.append(
            f"- **granian on {path}.** {ratio:.2f}x gunicorn's req/s, p99 {_num(p99[0])} ms "
            f"against {_num(p99[1])} ms. Per request gunicorn spent "
            f"{_num(gunicorn.median('cpu_ms_per_request'), 3)} ms of CPU and granian "
            f"{_num(granian.median('cpu_ms_per_request'), 3)} ms; on /healthz granian saved "
            f"{_num(saved, 3)} ms, its HTTP and socket work done in Rust. A route whose own "
            "Python work (the rate limiter's Redis call, the cache read, JSON) is larger "
            "keeps that work on either server, so the same saving is a smaller share of it. "
            "A p99 over the target is not explained by this suite: at saturation on a shared "
            "machine it moves by tens of milliseconds between rounds."
        )
    return out


def _nginx_shortfall(nginx, upstream: dict) -> str:
    """Explain gunicorn's extra CPU per request behind nginx, from the nginx part's targets."""
    direct, behind, headed, one = (target.median("cpu_ms_per_request") for target in nginx[:4])
    proxy = nginx[1].median("proxy_cpu_ms_per_request")
    pinned = _nginx_cpu_ratio(nginx, pinned=True)
    apart = (
        f" With gunicorn on a CPU of its own and nginx and wrk on the other, the ratio was "
        f"{pinned:.2f}x."
        if pinned
        else ""
    )
    return (
        f"- **nginx.** Per request gunicorn spends {_num(direct, 3)} ms of CPU direct, "
        f"{_num(headed, 3)} ms direct with the headers nginx adds (their parsing, ProxyFix, "
        f"an X-Request-ID to honour), {_num(behind, 3)} ms behind nginx and "
        f"{_num(one, 3)} ms behind an nginx of one worker process; nginx itself "
        f"{_num(proxy, 3)} ms. Upstream keep-alive works: "
        f"{upstream.get('requests', 0):,} requests went over "
        f"{upstream.get('connections', '-')} connections to gunicorn.{apart} What the hop adds "
        "beyond the headers is the cost of sharing the CPUs between wrk, nginx and gunicorn, "
        "which moves with the machine's load; in compose nginx is a container of its own."
    )


def _nginx_cpu_ratio(nginx, pinned: bool = False) -> float | None:
    """Return gunicorn's CPU per request behind nginx over its CPU per request direct: with
    every process on any CPU, or (``pinned``) with gunicorn on a CPU of its own (None when that
    pair was not loaded)."""
    pair = nginx[4:6] if pinned else nginx[:2]
    return _cpu_over(pair[1], pair[0]) if len(pair) == 2 else None


def _nginx_target_ratio(nginx) -> float | None:
    """Return the ratio the target is judged by: gunicorn's own work per request, so the pinned
    pair's when it was loaded (a machine of one CPU has none), else the shared one."""
    pinned = _nginx_cpu_ratio(nginx, pinned=True)
    return pinned if pinned is not None else _nginx_cpu_ratio(nginx)


def _cpu_over(target, reference) -> float | None:
    """Return a target's server CPU per request over a reference's."""
    mine, theirs = (t.median("cpu_ms_per_request") for t in (target, reference))
    return mine / theirs if mine and theirs else None


def _micros(value: float) -> str:
    """Format a difference of CPU microseconds, or say it is lost in the noise."""
    return f"{value:.0f} µs" if value >= 10 else "no measurable CPU (under 10 µs)"


def _geomean(values) -> float:
    """Return the geometric mean."""
    values = list(values)
    return math.exp(sum(math.log(value) for value in values) / len(values))


def worker_scores(workers: dict, default_name: str) -> dict[str, float]:
    """Score each worker configuration: geometric mean over endpoints of req/s vs the default."""
    names = [target.name for target in next(iter(workers.values()))]
    scores = {}
    for name in names:
        ratios = []
        for targets in workers.values():
            by_name = {target.name: target for target in targets}
            ratios.append(_ratio(by_name[name], by_name[default_name]))
        scores[name] = _geomean(ratios)
    return scores


def winner(scores: dict[str, float]) -> str:
    """Return the best-scoring configuration."""
    return max(scores, key=scores.get)


def default_worker_name(worker: dict) -> str:
    """Return the name bench/run.py's worker_configs gives the generated defaults."""
    if worker["worker_class"] == "sync":
        return f"sync, {worker['workers']} workers"
    return f"gthread, {worker['workers']} workers x {worker['threads']} threads"


def render(bench, results: dict, plan, elapsed_s: float) -> str:
    """Return the whole report."""
    worker = results.get("worker", {})
    out = [
        "# Benchmarks",
        "",
        "Written by `python bench/run.py` (the suite in `bench/`; `--quick` for a smoke run). "
        "Not part of the pass/fail tests.",
        "",
        f"- Run: {results['started']:%Y-%m-%d %H:%M} UTC, "
        f"{'full' if plan.run_matrix else 'quick'} plan: {plan.rounds} round(s) of "
        f"{plan.duration_s} s per load ({plan.pair_rounds} of {plan.pair_duration_s} s in the "
        "comparisons of two or three servers: nginx, data endpoints, app servers, assets; "
        f"{plan.matrix_rounds} of {plan.matrix_duration_s} s in the worker matrix), "
        f"{plan.warmup_s} s warm-up per target; whole run {elapsed_s / 60:.1f} min.",
        f"- Machine: {_cpus()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load generator `wrk` on the same CPUs, "
        f"loopback only. Load average {results.get('load_start', 0.0):.1f} at the start and "
        f"{results.get('load_end', 0.0):.1f} at the end. Other work shared the machine: "
        "absolute req/s swing by up to ~2x between runs, so only the ratios count. Each "
        "comparison runs its servers side by side and loads them in turn "
        "(A B A B ...); a ratio is the median of the per-round ratios.",
        _repeats_note(results),
        f"- gunicorn worker settings of the generated service (and of the references): "
        f"`{worker.get('worker_class')}`, {worker.get('workers')} workers x "
        f"{worker.get('threads')} threads, keep-alive {worker.get('keepalive')} s, "
        f"max_requests {worker.get('max_requests')} (+ jitter "
        f"{worker.get('max_requests_jitter')}).",
        "- The generated service runs with production settings: `APP_ENV=production`, JSON logs, "
        "request ids, one JSON access line per request, PostgreSQL and Redis configured. "
        "RATELIMIT_DEFAULT is raised so one load generator is never answered 429; the limiter "
        "still runs on every limited route.",
        "",
        "## Targets",
        "",
        "| measure | measured | target | met |",
        "|---|---:|---:|---|",
    ]
    cheap = results.get("cheap")
    if cheap:
        by_name = {target.name: target for target in cheap}
        flask = by_name.get(SAME_SETTINGS)
        for name in ("generated, defaults", "generated, all-on"):
            if flask is not None:
                measure = f"{name}: /healthz req/s vs minimal Flask, same gunicorn settings"
                out.append(_target_row(measure, by_name[name], flask, TARGETS["cheap"]))
            value = _ratio(by_name[name], by_name["minimal Flask"])
            met = "n/a" if flask is not None else _met(value >= TARGETS["cheap"])
            target = "recorded" if flask is not None else f">= {TARGETS['cheap']:.2f}x"
            out.append(
                f"| {name}: /healthz req/s vs minimal Flask without an access log | "
                f"{value:.2f}x | {target} | {met} |"
            )
    nginx = results.get("nginx")
    if nginx:
        value, cpu = _ratio(nginx[1], nginx[0]), _nginx_cpu_ratio(nginx)
        pinned, judged = _nginx_cpu_ratio(nginx, pinned=True), _nginx_target_ratio(nginx)
        proxy = nginx[1].median("proxy_cpu_ms_per_request")
        met = _met(judged <= TARGETS["nginx_cpu"] if judged else None)
        target = f"<= {TARGETS['nginx_cpu']:.2f}x"
        if pinned is not None:
            out += [
                "| all-on: gunicorn CPU per request behind nginx vs direct, gunicorn on a CPU "
                "of its own (nginx and wrk on the other) | "
                f"{_against(pinned, TARGETS['nginx_cpu'])} | {target} | {met} |",
                "| all-on: the same, every process on any CPU (nginx and wrk share gunicorn's) | "
                f"{_num(cpu, 2)}x | recorded | n/a |",
            ]
        else:
            out.append(
                "| all-on: gunicorn CPU per request behind nginx vs direct | "
                f"{_against(cpu, TARGETS['nginx_cpu'])} | {target} | {met} |"
            )
        out += [
            f"| all-on: nginx's own CPU per request | {_num(proxy, 3)} ms | reported | n/a |",
            f"| all-on: req/s through nginx vs direct (2 CPUs shared) | {value:.2f}x | recorded "
            "| n/a |",
        ]
    elif "nginx" in results:
        out.append("| through nginx vs direct | not measured: no nginx template | | n/a |")
    data = results.get("data")
    if data:
        out += [
            _target_row(
                "GET /api/items/&lt;id&gt; from PostgreSQL (no cache) vs /healthz",
                data[DB_READ],
                data[DB_HEALTHZ],
                TARGETS["db"],
            ),
            _target_row(
                "GET /api/items/&lt;id&gt; from Redis (cache hit) vs /healthz",
                data[CACHE_HIT],
                data[REDIS_HEALTHZ],
                TARGETS["redis"],
            ),
        ]
        out.append(
            "| the same two by gunicorn's CPU per request, /healthz's over the read's (the "
            "servers' and wrk's share of the 2 CPUs left out): PostgreSQL; Redis | "
            f"{_cpu_ratio(data[DB_READ], data[DB_HEALTHZ])}; "
            f"{_cpu_ratio(data[CACHE_HIT], data[REDIS_HEALTHZ])} | recorded | n/a |"
        )
        if len(data) > SMALL_POOL_READ:  # the diagnostic server: the former 5 for 8 threads
            read, small = data[DB_READ], data[SMALL_POOL_READ]
            p99 = (read.median("p99_ms"), small.median("p99_ms"))
            out.append(
                "| PostgreSQL read, a pool per thread vs the former 5 for 8 threads (req/s; "
                f"p99) | {_ratio(read, small):.2f}x; {_num(p99[0])} / {_num(p99[1])} ms "
                f"| recorded | n/a |"
            )
        if len(data) > UNPINNED_DB_READ:  # the same servers, workers on any CPU
            out += [
                "| the same two with each worker on any CPU (`WORKER_CPU_AFFINITY=off`), vs "
                "/healthz: PostgreSQL; Redis | "
                f"{_ratio(data[UNPINNED_DB_READ], data[UNPINNED_DB_HEALTHZ]):.2f}x; "
                f"{_ratio(data[UNPINNED_CACHE_HIT], data[UNPINNED_REDIS_HEALTHZ]):.2f}x | recorded "
                "| n/a |",
                "| req/s with each worker kept to one CPU over each worker on any CPU: /healthz; "
                "PostgreSQL read; Redis hit | "
                f"{_ratio(data[REDIS_HEALTHZ], data[UNPINNED_REDIS_HEALTHZ]):.2f}x; "
                f"{_ratio(data[DB_READ], data[UNPINNED_DB_READ]):.2f}x; "
                f"{_ratio(data[CACHE_HIT], data[UNPINNED_CACHE_HIT]):.2f}x | recorded | n/a |",
            ]
    out += _servers_targets(results.get("servers"))
    memory = results.get("servers_memory") or {}
    if memory.get("granian") and memory.get(GRANIAN_UNFROZEN):
        out.append(
            "| all-on: private memory per granian worker, gc.freeze() before the workers fork "
            f"vs without | {memory['granian']['private']:.1f} / "
            f"{memory[GRANIAN_UNFROZEN]['private']:.1f} MiB | recorded | n/a |"
        )
    cold = results.get("cold")
    if cold:
        for name in ("generated, defaults", "generated, all-on"):
            cpu = results.get("cold_cpu", {}).get(name)
            out.append(
                f"| {name}: cold start, process start to first 200 | {cold[name]:.2f} s "
                f"({_num(cpu)} CPU s) | <= {TARGETS['cold_s']:.1f} s "
                f"| {_met(cold[name] <= TARGETS['cold_s'])} |"
            )
    memory = results.get("memory")
    if memory and memory.get("generated, all-on"):
        mem = memory["generated, all-on"]
        out.append(
            f"| all-on: RSS per worker | {mem['rss']:.1f} MiB | <= {TARGETS['rss_mib']:.0f} MiB "
            f"| {_met(mem['rss'] <= TARGETS['rss_mib'])} |"
        )
        out.append(
            f"| all-on: private (unshared) memory per worker, what each extra worker costs "
            f"| {mem['private']:.1f} MiB | <= {TARGETS['rss_mib']:.0f} MiB "
            f"| {_met(mem['private'] <= TARGETS['rss_mib'])} |"
        )
    bake = results.get("bake")
    if bake:
        for name, seconds in bake.items():
            out.append(
                f"| seconds per bake, {name} | {seconds:.2f} s | <= {TARGETS['bake_s']:.1f} s | "
                f"{_met(seconds <= TARGETS['bake_s'])} |"
            )
    matrix = results.get("matrix")
    if matrix:
        out.append(
            f"| tier-1 matrix wall time (`-n 2`) | {matrix['seconds']:.0f} s | recorded | "
            f"{'passed' if matrix['returncode'] == 0 else 'tests failed: ' + matrix['summary']} |"
        )
    else:
        out.append("| tier-1 matrix wall time | not run (`--quick`) | recorded | n/a |")
    workers = results.get("workers")
    if workers:
        default = default_worker_name(worker)
        scores = worker_scores(workers, default)
        best = winner(scores)
        verdict = "yes" if best == default else f"**no**: {best} scored higher"
        out.append(
            f"| default worker configuration is the measured winner | {default} "
            f"(score {scores[default]:.2f}) | best score | {verdict} |"
        )
    out.append(f"| container image and start | {results.get('docker', '-')} | | n/a |")
    out += _shortfalls(results)

    if cheap:
        out += [
            "",
            "## Cheap endpoint: GET /healthz",
            "",
            "References: `bench/reference_apps.py` (a bare WSGI callable: gunicorn's ceiling; a "
            "minimal Flask app returning the same JSON with no logging), served by gunicorn with "
            "the same worker settings and no access log; and the minimal Flask app served by "
            f"the all-on project's own gunicorn.conf.py (*{SAME_SETTINGS}*: the same gunicorn "
            "settings as the generated service, one JSON access line per request included). "
            "The generated service: default answers (PostgreSQL, Redis) and all-on (PostgreSQL, "
            "Redis, nginx answers; served directly here).",
            "",
            *_load_table(cheap, by_name["minimal Flask"], "minimal Flask"),
        ]
        if memory:
            out += [
                "",
                "Memory per worker after the load (median over workers). RSS counts pages shared "
                "with the master and the other workers; private memory is what one more worker "
                "adds.",
                "",
                "| server | RSS MiB | PSS MiB | private MiB |",
                "|---|---:|---:|---:|",
            ]
            for name, mem in memory.items():
                if mem:
                    out.append(
                        f"| {name} | {mem['rss']:.1f} | {mem['pss']:.1f} | {mem['private']:.1f} |"
                    )
    diagnostic = cheap and by_name.get(RECYCLING_DIAGNOSTIC)
    if diagnostic:
        kept = _ratio(diagnostic, by_name["generated, all-on"])
        cost = 1050 * (1 / kept - 1)  # request-equivalents lost per restart, at 1000 + jitter/2
        every = worker.get("max_requests", 0) + worker.get("max_requests_jitter", 0) / 2
        loss = cost / (every + cost) if every else 0.0
        out += [
            "",
            f"Worker recycling: with `MAX_REQUESTS=1000` (the template's former default) the "
            f"all-on service kept {kept:.2f}x of its throughput. Under saturation each worker "
            f"restart cost about {cost:,.0f} requests of capacity (a boot, during which one "
            f"worker serves alone); at the default of {worker.get('max_requests')} that is about "
            f"{loss:.1%} of throughput.",
        ]
    overhead = results.get("overhead")
    if overhead:
        full = overhead["healthz"]["generated"]
        out += [
            "",
            "## Where the time goes: CPU per request, in process",
            "",
            "`bench/overhead.py` calls each app's WSGI callable for GET /healthz in one thread "
            "(no gunicorn, no sockets) and takes the best of several repeats of CPU time, which "
            "is far steadier than req/s on a shared machine. Each *without* row is the all-on "
            "app with that concern's per-request hooks removed after it was built, so its "
            "difference to the full app is what the concern costs on every request. gunicorn's "
            "own work per request (HTTP parsing, sockets) is roughly the *bare WSGI* CPU per "
            "request in the table above. The two rows after them also write the access line "
            "gunicorn writes after each request, in the same call: it costs more there than "
            "alone (the last row), its code and data no longer in the CPU's caches.",
            "",
            "| variant | CPU µs/request | difference to the generated app |",
            "|---|---:|---:|",
        ]
        for name, micros in overhead["healthz"].items():
            diff = "" if name.startswith("one JSON") else f"{micros - full:+.1f}"
            out.append(f"| {name} | {micros:.1f} | {diff} |")
        out += [
            "",
            "The same for GET /api/items/&lt;id&gt;, the all-on app with real Redis and "
            "PostgreSQL (the PostgreSQL rows: REDIS_URL unset and a NullCache, as the *DB "
            "server* below). Time spent waiting for either server is not CPU time of this "
            "thread, and their own CPU is not counted here.",
            "",
            "| variant | CPU µs/request |",
            "|---|---:|",
            *[f"| {name} | {micros:.1f} |" for name, micros in overhead["item"].items()],
        ]
    if nginx:
        out += [
            "",
            "## Through the generated nginx",
            "",
            "`nginx/templates/default.conf.template` of an all-on bake, rendered with envsubst as "
            "the nginx image does (upstream 127.0.0.1 instead of `web`), inside a main config like "
            "the image's (`worker_processes auto`). gunicorn gets `KEEPALIVE=75` as in "
            "compose.yaml. nginx writes its JSON access line too. nginx shares the 2 CPUs with "
            "gunicorn and wrk, so its CPU cost shows up as lost req/s. The headers row sends "
            "gunicorn what nginx adds (X-Forwarded-For, X-Forwarded-Proto, X-Request-ID), "
            "without nginx; the next row is a second nginx with one worker process."
            + (
                " The last two rows are a second gunicorn kept on a CPU of its own by taskset, "
                "loaded directly and through a third nginx, with wrk and that nginx kept on the "
                "other CPU: nginx's and wrk's work then never runs on gunicorn's CPU between its "
                "requests, so gunicorn's CPU per request counts only what it does for each "
                "request (the target is judged by that pair; its req/s are those of one CPU)."
                if len(nginx) > 4
                else ""
            ),
            "",
            *_load_table(nginx, nginx[0], "direct"),
            "",
            f"nginx's own CPU per request: {_num(nginx[1].median('proxy_cpu_ms_per_request'), 3)}"
            " ms (not in the server CPU column, which is gunicorn's). Upstream keep-alive: in "
            "one more 5 s load through nginx (each of its workers keeps up to 32 idle "
            "connections), "
            f"{(results.get('nginx_upstream') or {}).get('requests', 0):,} requests reached "
            f"gunicorn over {(results.get('nginx_upstream') or {}).get('connections', '-')} "
            "connections from nginx. gunicorn's CPU per request over direct: "
            + "; ".join(
                f"{target.name} {_num(_cpu_over(target, reference), 2)}x"
                for target, reference in [(t, nginx[0]) for t in nginx[1:4]]
                + [(t, nginx[4]) for t in nginx[5:6]]
            )
            + ".",
        ]
    if data:
        out += [
            "",
            "## Data endpoints: GET /api/items/&lt;id&gt;",
            "",
            "Servers of the all-on bake, loaded in turn. *Redis server*: production settings "
            "with `REDIS_URL`, so every read after the first is a Redis cache hit "
            "(`X-Cache: hit`, checked before the load), and the rate limiter counts in Redis too. "
            "*DB server*: `REDIS_URL` unset and the per-process memory cache replaced by a "
            "NullCache (`bench/bench_app.py`, `BENCH_CACHE=off`), so every read is a PostgreSQL "
            "primary-key SELECT sent by psycopg (`X-Cache: miss`, checked). "
            "`CACHE_TTL_SECONDS=0` would not do: for the cache 0 means *never expire*. Each ratio "
            "compares a server's item read with its own /healthz. The diagnostic row is a third "
            "DB server with `DATABASE_POOL_SIZE=5`, the template's former default for 8 threads: "
            "its pool closed each connection beyond the 5 on its return, so requests connected "
            "anew under load (the pool now keeps one per thread). The last four rows are a "
            "Redis server and a DB server with `WORKER_CPU_AFFINITY=off`: their workers may run "
            "on any CPU, where the others keep each worker to one CPU (the default with a worker "
            "per CPU).",
            "",
            *_load_table(data),
        ]
    if results.get("servers"):
        out += _servers_section(results)
    if workers:
        default = default_worker_name(worker)
        scores = worker_scores(workers, default)
        out += [
            "",
            f"## Worker class and threads ({_cpus()} CPUs)",
            "",
            "The all-on app with `bench/bench_app.py`'s extra route `/bench/io` (sleeps 10 ms, as "
            "a call to a slow dependency would), served with the generated gunicorn.conf.py; "
            "`WORKER_CLASS`, `WEB_CONCURRENCY` and `WEB_THREADS` set per server; PostgreSQL reads "
            "uncached. Ratios are to the generated default "
            f"({default}).",
        ]
        for label, targets in workers.items():
            by_name = {target.name: target for target in targets}
            out += ["", f"### {label}", "", *_load_table(targets, by_name[default], "default")]
        best = winner(scores)
        out += [
            "",
            "Score: geometric mean over the three endpoints of req/s relative to the default. "
            "Each configuration's database pool follows its threads (DATABASE_POOL_SIZE unset: "
            "one connection per thread), so no thread waits for a connection or opens its own.",
            "",
            "| configuration | score |",
            "|---|---:|",
            *[
                f"| {name}{' (winner)' if name == best else ''} | {score:.2f} |"
                for name, score in scores.items()
            ],
        ]
    if cold:
        cold_cpu = results.get("cold_cpu", {})
        out += [
            "",
            "## Cold start",
            "",
            "From spawning `python -m gunicorn` to the first 200 from /healthz (polled every "
            "5 ms), each server alone, median of the rounds. The CPU column is what the master "
            "and its workers had used by then: it does not depend on how busy the machine was, "
            "while the wall time does.",
            "",
            "| server | seconds | CPU seconds |",
            "|---|---:|---:|",
            *[
                f"| {name} | {seconds:.2f} | {_num(cold_cpu.get(name))} |"
                for name, seconds in cold.items()
            ],
        ]
    out += celery_section(results.get("celery"))
    out += frontend_bench.section(results.get("frontend"))
    if bake or matrix:
        out += ["", "## Template", ""]
        if bake:
            out.append(
                "Seconds per bake: the `cookiecutter --no-input` command, run as a user would "
                "(interpreter start included), median of the rounds: "
                + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in bake.items())
                + "."
            )
        if matrix:
            out += [
                "",
                f"Tier-1 matrix, run once: {matrix['seconds']:.0f} s wall time; "
                f"pytest said: `{matrix['summary']}`.",
            ]
    out += ["", "## Containers", "", str(results.get("docker", "-"))]
    out += [
        "",
        "## Commands",
        "",
        "Placeholders: `$REPO` this repository; `$BENCH_DIR` a fresh temporary folder; `$OUT` a "
        "fresh output folder per bake; `$DEFAULTS` and `$ALL_ON` the baked projects "
        "(`$OUT/my-service`); `$PORT`, `$PG_PORT`, `$REDIS_PORT` free loopback ports; `$URL` "
        "the target URL. Every generated server starts from the environment exported in "
        "*Setup*; its line shows only what differs.",
        "",
    ]
    titles = {
        "template": "Template",
        "setup": "Setup",
        "overhead": "CPU per request, in process",
        "cheap": "Cheap endpoint",
        "nginx": "nginx",
        "data": "Data endpoints",
        "workers": "Worker matrix",
        "cold": "Cold start",
        "celery": "Background tasks",
        "frontend": "Frontend",
    }
    for section, commands in bench.commands.items():
        out += [f"{titles.get(section, section)}:", "", "```bash", *commands, "```", ""]
    return "\n".join(out).rstrip() + "\n"


def celery_section(celery: dict | None) -> list[str]:
    """Return the lines of the background tasks section (none when it was not measured)."""
    if not celery:
        return []
    rounds = ", ".join(f"{rate:.0f}" for rate in celery["rates"])
    return [
        "",
        "## Background tasks (use_celery)",
        "",
        "The example task (`process_item`: one UPDATE of the item, one commit, one log line) on "
        f"the worker compose runs ({celery['concurrency']} processes, the default "
        "CELERY_WORKER_CONCURRENCY), with the generated web enqueuing through the API, real "
        "Redis as broker and real PostgreSQL, all on this machine's CPUs. Throughput: "
        f"{celery['burst']} items created while the worker is stopped, then the worker started; "
        "tasks per second from the first task done to the last (start-up excluded), median of "
        f"the rounds ({rounds}). Latency: items then created at a steady rate (8 clients, each "
        "request at its own time), each timed from its `created_at` (set by the web just before "
        "its commit and the enqueue) to its `processed_at` (set by the task); created/s and "
        "done/s are the rates the web and the worker reached (medians of the rounds). The web "
        "shares the CPUs with the worker here, so done/s below the asked rate means a backlog "
        "grew and latency with it.",
        "",
        f"Throughput: **{celery['rate']:.0f} tasks/s**. The machine's 1-minute load average "
        "(other work included) was "
        + ", ".join(f"{load:.1f}" for load in celery["loads"])
        + " at the start and after each round.",
        "",
        "| items asked at | created/s | done/s | tasks | enqueue-to-done p50 | p99 |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {label} | {value['created']:.0f} | {value['done']:.0f} | {value['count']} | "
            f"{value['p50']:.1f} ms | {value['p99']:.1f} ms |"
            for label, value in celery["latency"].items()
        ],
    ]


def _cpus() -> int:
    """Return the CPUs available to this process."""
    return len(os.sched_getaffinity(0))
