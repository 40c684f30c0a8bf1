"""Load the generated service with wrk in interleaved rounds; write the figures as JSON.

    python bench/run.py --before REF   this checkout's template and `git archive REF`, side by side
    python bench/run.py --tracing      the cost of tracing: use_opentelemetry, off and sampled
    python bench/run.py --quick        smoke run: one round of short loads

A measurement, not a gate: report.py renders the JSON into docs/benchmarks.md, each ratio beside
its acceptance threshold, and the price of each per-request feature. Servers run as the tier-2
tests run them (tests/tier2/servers.py). It refuses to start on a busy machine (MAX_LOAD).
"""

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import report
import requests
import wrk
from serve import (
    REPO,
    UNREACHED_LIMIT,
    Servers,
    cached_item,
    deploy,
    extract,
    items_to_read,
    serve_reference,
    settings_of,
    x_cache,
)
from tier2.deployment import Deployment
from tier2.servers import (
    Interpreter,
    Postgres,
    Redis,
    Service,
    postgres_bin,
    private_dir,
    resident_mib,
)
from tracing import Sink, cpu_seconds

MAX_CONNECTIONS = 1000  # the bench's PostgreSQL: room for every pool of every server


@dataclass(frozen=True)
class Plan:
    """How long and how often each target is loaded, and how many rows the uncached read gets."""

    rounds: int
    # Rounds of the two servers of a ratio loaded at once: the verdicts' figures, given more
    # rounds than the loads in turn so that two runs agree on them (bench/README.md).
    paired_rounds: int
    duration_s: int
    warmup_s: int
    # Per uncached read target: more than it asks for in all its loads, in turn and side by side
    # (3,000 req/s, three times the most a read has served); a load that reads past its own items
    # stops the run.
    rows: int


FULL = Plan(rounds=10, paired_rounds=20, duration_s=4, warmup_s=2, rows=420_000)
QUICK = Plan(rounds=1, paired_rounds=1, duration_s=2, warmup_s=1, rows=30_000)
# Above this 1-minute load average at the start, other work would skew the figures: no report.
MAX_LOAD = 1.0
# The tracing scenario: 10 targets, about 5 minutes; its reads share one database (4 targets).
TRACING = Plan(rounds=12, paired_rounds=0, duration_s=2, warmup_s=2, rows=250_000)
# The bakes of each template tree: the defaults (PostgreSQL, Redis, gunicorn), and granian.
BAKES = {"gunicorn": {}, "granian": {"app_server": "granian"}}
# (what the ratio compares, numerator, denominator, acceptance threshold or None); a target is
# (server, load), both of the same template tree; issues 38 and 66 set the thresholds. The
# references (bench/reference_apps.py) run under plain gunicorn: "flask" answers /healthz alone,
# "minread" the primary-key read on the same stack and data as the stock bake ("gunicorn").
RATIOS = (
    ("/healthz, the service vs minimal Flask", "gunicorn healthz", "flask healthz", 0.80),
    ("primary-key read, the service vs a minimal read", "gunicorn read", "minread read", 0.80),
    ("cached read, the service vs a minimal read", "gunicorn hit", "minread hit", 0.80),
    ("read of no item (404), the service vs a minimal read", "gunicorn none", "minread none", 0.80),
    ("cached read vs the service's /healthz", "gunicorn hit", "gunicorn healthz", 0.60),
    # Shown for reading only: issue 66 retired its floor of 0.40 (a cache-aside miss pays a round
    # trip /healthz does not; the read is judged against the minimal read instead).
    ("PostgreSQL primary-key read vs /healthz", "gunicorn read", "gunicorn healthz", None),
    ("granian vs gunicorn, /healthz", "granian healthz", "gunicorn healthz", 1.50),
    ("granian vs gunicorn, cached read", "granian hit", "gunicorn hit", 1.50),
    # Shown for reading: the same comparison for the minimal read, each under its plain server,
    # the most granian gives a cached read with none of the service's per-request work.
    ("granian vs gunicorn, the minimal read's cached read", "granread hit", "minread hit", None),
)
# The price of each per-request feature (issue 58): the after tree's gunicorn bake served again
# with one documented setting changed, or the same answers with use_opentelemetry=yes; each
# loaded on /healthz and on the uncached read, beside the stock bake ("gunicorn").
# server: (what changes, the settings, the bake's extra answers, a sink as its OTLP endpoint)
FEATURES = {
    "nometrics": ("metrics off", {"METRICS_ENABLED": "false"}, {}, False),
    "quiet": ("no access line (nor any INFO line)", {"LOG_LEVEL": "WARNING"}, {}, False),
    "limited": ("a limit on every route", {"RATELIMIT_DEFAULT": UNREACHED_LIMIT}, {}, False),
    "untraced": ("use_opentelemetry=yes, no endpoint", {}, {"use_opentelemetry": "yes"}, False),
    "traced": ("use_opentelemetry=yes, exporting all", {}, {"use_opentelemetry": "yes"}, True),
}
# The tracing scenario (issue 42): the defaults (PostgreSQL, Redis, gunicorn) with
# use_opentelemetry=yes served four ways, beside the defaults without it ("plain").
TRACED = {"use_opentelemetry": "yes"}
SAMPLERS = {
    "off": {},  # no OTLP endpoint: the SDK records every span (its default sampler), exports none
    "all": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    "tenth": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "never": {"OTEL_TRACES_SAMPLER": "always_off"},  # no endpoint either: what "off" could cost
}
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXPORTING = ("all", "tenth")  # the servers given an endpoint: their own sink each
# (server, the server it is compared with), for each load; /healthz makes no span: not loaded.
COSTS = (
    ("all", "off"),
    ("tenth", "off"),
    ("never", "off"),
    ("off", "plain"),
    ("all", "plain"),
    ("tenth", "plain"),
    ("never", "plain"),
)
# How long the exporters may take to send their last batches (their schedule delay is 5 s).
EXPORT_SETTLE_S = 20
READ_SCRIPT = Path(__file__).resolve().parent / "item_reads.lua"
# An id no item has (the largest the API takes, less one): every read of it is a miss, answered 404.
NO_ITEM = 2**31 - 2
# What makes the figures: the template, the bench and the harness; a change elsewhere (or a file
# of the checkout's own, untracked) leaves the checkout's commit as the measured one.
MEASURED = ("cookiecutter.json", "hooks", "{{cookiecutter.project_slug}}", "bench", "tests")
# Settings worth showing beside the commands (the rest are the bake's .env and compose's).
SHOWN_SETTINGS = (
    "APP_ENV",
    "WEB_CONCURRENCY",
    "WEB_THREADS",
    "RATELIMIT_DEFAULT",
    "RATELIMIT_WRITE",
    "CACHE_TTL_SECONDS",
    "DATABASE_URL",
    "REDIS_URL",
    *ENDPOINTS,
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
)


def log(message: str) -> None:
    """Print progress to stderr with the time."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass
class Unread:
    """The items no load of a target has read yet (none is cached): each target its own."""

    next_id: int
    last_id: int


@dataclass
class Target:
    """One URL of one served bake, loaded once a round."""

    tree: str  # "before" or "after"
    name: str  # "<server> <load>": the server (flask, gunicorn, granian...) and what is loaded
    service: Service
    path: str
    unread: Unread | None = None  # the uncached read: where the next load starts
    refused: int | None = None  # the status every answer has when it is not 2xx (404: no item)
    samples: list = field(default_factory=list)
    served: int = 0  # requests of every load, warm-ups included, and of the checks after them

    def load(self, duration_s: int) -> wrk.Sample:
        """Load the target once; stop the run on any answer but 2xx (or, for a refused target, on
        any 2xx, or a check after it answering another status), or a cached item gone."""
        url = self.service.url + self.path
        cpu_before = cpu_seconds(self.service)
        try:
            if self.unread is not None:
                sample = self.load_unread(duration_s)
            else:
                sample = wrk.run(url, duration_s, all_refused=self.refused is not None)
        except wrk.Non2xx as exc:
            raise RuntimeError(f"{self.tree} {self.name}: {exc}\n{self.service.output()}") from None
        sample = replace(sample, cpu_s=cpu_seconds(self.service) - cpu_before)
        self.served += sample.requests
        if self.name.endswith(" hit"):
            self.served += 1
            if x_cache(url) != "hit":
                raise RuntimeError(f"{self.tree} {self.name}: the item left the cache")
        if self.refused is not None:
            self.served += 1
            status = requests.get(url, timeout=10).status_code
            if status != self.refused:
                raise RuntimeError(f"{self.tree} {self.name}: {status}, not {self.refused}")
        return sample

    def load_unread(self, duration_s: int) -> wrk.Sample:
        """Load the uncached read: items no load has read yet, from where the last load ended."""
        if self.unread.next_id > self.unread.last_id:
            raise RuntimeError(f"{self.tree} {self.name}: no unread item left (Plan.rows)")
        args = (self.unread.next_id, wrk.THREADS)  # the script makes each request's path
        sample = wrk.run(self.service.url + "/", duration_s, str(READ_SCRIPT), args)
        if sample.last_id > self.unread.last_id:  # into another target's items, maybe read
            raise RuntimeError(f"{self.tree} {self.name}: read past its items (Plan.rows)")
        self.unread.next_id = sample.last_id + 1
        return sample


def serve_tree(
    servers: Servers, tree: str, template: Path, plan: Plan, stack: contextlib.ExitStack
) -> list[Target]:
    """Serve one template tree's bakes and the reference; return their targets."""
    deployments = {}
    for server, answers in BAKES.items():
        log(f"{tree}: bake and serve {server}")
        deployments[server] = deploy(servers, template, f"{tree}-{server}", answers)
        stack.callback(deployments[server].stop)
    gunicorn, granian = deployments["gunicorn"], deployments["granian"]
    log(f"{tree}: the reference apps")
    reference = serve_reference(gunicorn, "reference", "create_flask_app")
    minimal_read = serve_reference(gunicorn, "minread", "create_read_app")
    granian_read = serve_reference(granian, "granread", "create_read_app")
    features = {}
    if tree == "after":
        features = serve_features(servers, template, gunicorn, stack)
    # The uncached reads of one database: each its own items, as two of them load at once.
    readers = {
        "gunicorn": gunicorn,
        "minread": gunicorn,
        **{name: d for name, (_, d) in features.items()},
    }
    log(f"{tree}: {plan.rows} items to read for each of {len(readers)} servers")
    unread: dict[str, Unread] = {}
    for deployment in {id(d): d for d in readers.values()}.values():  # a deployment: unhashable
        names = [name for name, d in readers.items() if d is deployment]
        first, last = items_to_read(deployment, plan.rows * len(names))
        for number, name in enumerate(names):
            start = first + number * plan.rows
            unread[name] = Unread(start, min(start + plan.rows - 1, last))
    items = {name: f"/api/items/{cached_item(d)}" for name, d in deployments.items()}
    items["minread"] = f"/api/items/{cached_item(gunicorn, minimal_read)}"
    items["granread"] = f"/api/items/{cached_item(granian, granian_read)}"
    # In the order they are loaded: the two targets of each ratio close together in time.
    targets = [
        Target(tree, "gunicorn read", gunicorn.service, "/api/items/{id}", unread["gunicorn"]),
        Target(tree, "minread read", minimal_read, "/api/items/{id}", unread["minread"]),
        Target(tree, "gunicorn none", gunicorn.service, f"/api/items/{NO_ITEM}", refused=404),
        Target(tree, "minread none", minimal_read, f"/api/items/{NO_ITEM}", refused=404),
        Target(tree, "flask healthz", reference, "/healthz"),
        Target(tree, "gunicorn healthz", gunicorn.service, "/healthz"),
        Target(tree, "granian healthz", granian.service, "/healthz"),
        Target(tree, "gunicorn hit", gunicorn.service, items["gunicorn"]),
        Target(tree, "minread hit", minimal_read, items["minread"]),
        Target(tree, "granian hit", granian.service, items["granian"]),
        Target(tree, "granread hit", granian_read, items["granread"]),
    ]
    for name, (service, _) in features.items():
        targets.append(Target(tree, f"{name} healthz", service, "/healthz"))
        targets.append(Target(tree, f"{name} read", service, "/api/items/{id}", unread[name]))
    return targets


def serve_features(
    servers: Servers, template: Path, stock: Deployment, stack: contextlib.ExitStack
) -> dict[str, tuple[Service, Deployment]]:
    """Serve the stock bake once more per feature setting, and the traced bake twice (without an
    endpoint, and exporting to a sink); return each server and the deployment of its data."""
    sink = Sink().start()  # stopped after the services, which send their last spans
    stack.callback(sink.stop)
    served = {}
    traced = None
    for name, (_, settings, answers, exporting) in FEATURES.items():
        log(f"after: serve {name}: {settings or answers}{' exporting' if exporting else ''}")
        if not answers:
            extra = {**settings_of(stock.bake), **settings}
            served[name] = (stock.extra_service(name, wrk.SERVER_CPUS, **extra), stock)
            continue
        if traced is None:
            traced = deploy(servers, template, "after-traced", answers)
            stack.callback(traced.stop)
            served[name] = (traced.service, traced)
            continue
        endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url} if exporting else {}
        extra = {**settings_of(traced.bake), **endpoint, **settings}
        served[name] = (traced.extra_service(name, wrk.SERVER_CPUS, **extra), traced)
    return served


def serve_tracing(
    servers: Servers, template: Path, plan: Plan, stack: contextlib.ExitStack
) -> tuple[list[Target], dict[str, Sink]]:
    """Serve the tracing scenario's five servers; return their targets and the OTLP sinks.

    One bake with use_opentelemetry=yes serves four ways: "off" (no endpoint), "all" (sampled
    100%) and "tenth" (10%), both exporting to their own sink, and "never" (no endpoint, the
    sampler always_off); "plain" is the same answers without the option. The traced servers
    share one database and Redis index, as replicas do: their uncached reads take their items
    from one range.
    """
    sinks = {name: Sink().start() for name in EXPORTING}
    for sink in sinks.values():  # stopped after the services, which send their last spans
        stack.callback(sink.stop)
    log("tracing: bake and serve use_opentelemetry=no")
    plain = deploy(servers, template, "plain", {})
    stack.callback(plain.stop)
    log("tracing: bake and serve use_opentelemetry=yes, tracing off")
    traced = deploy(servers, template, "traced", TRACED)
    stack.callback(traced.stop)
    if set(ENDPOINTS) & set(traced.service.env):
        raise RuntimeError(f"the traced bake's settings name an OTLP endpoint: {ENDPOINTS}")
    services = {"plain": plain.service, "off": traced.service}
    for name, sampler in SAMPLERS.items():
        if name == "off":
            continue
        log(f"tracing: serve use_opentelemetry=yes, {name}: {sampler}")
        endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": sinks[name].url} if name in sinks else {}
        settings = {**settings_of(traced.bake), **endpoint, **sampler}
        services[name] = traced.extra_service(name, wrk.SERVER_CPUS, **settings)
    log(f"tracing: {plan.rows} items to read in each database")
    bakes = {"plain": plain, "traced": traced}
    unread = {bake: Unread(*items_to_read(d, plan.rows)) for bake, d in bakes.items()}
    items = {bake: f"/api/items/{cached_item(d)}" for bake, d in bakes.items()}
    of = {"plain": "plain", **dict.fromkeys(SAMPLERS, "traced")}  # each server's bake
    order = ("plain", "never", "off", "all", "tenth")  # what is compared, close together in time
    targets = [
        Target("after", f"{name} read", services[name], "/api/items/{id}", unread[of[name]])
        for name in order
    ]
    targets += [Target("after", f"{name} hit", services[name], items[of[name]]) for name in order]
    return targets, sinks


def exported(sinks: dict[str, Sink], targets: list[Target]) -> dict:
    """Wait for the exporters' last batches; return what each sink got, per request served."""
    served = {name: 0 for name in sinks}
    for target in targets:
        server = target.name.split()[0]
        if server in served:
            served[server] += target.served
    deadline = time.monotonic() + EXPORT_SETTLE_S
    last = None
    while time.monotonic() < deadline:  # until a schedule delay (5 s) passes with nothing new
        time.sleep(6)
        now = {name: sink.received.requests for name, sink in sinks.items()}
        if now == last:
            break
        last = now
    figures = {}
    for name, sink in sinks.items():
        got = sink.received.figures()
        figures[name] = {
            **got,
            "served": served[name],
            "traced_share": round(got["server_spans"] / served[name], 4) if served[name] else 0,
            "spans_per_trace": round(got["spans"] / got["server_spans"], 3)
            if got["server_spans"]
            else 0,
        }
    return figures


def load_rounds(targets: list[Target], plan: Plan) -> None:
    """Warm every target up, then load each once a round, the order reversed every other round."""
    for target in targets:
        target.load(plan.warmup_s)
    for number in range(plan.rounds):
        for target in targets if number % 2 == 0 else targets[::-1]:
            sample = target.load(plan.duration_s)
            target.samples.append(sample)
            log(
                f"round {number + 1} {target.tree} {target.name}: {sample.rps:.0f} req/s, "
                f"p50 {sample.p50_ms:.2f} ms, p99 {sample.p99_ms:.2f} ms"
            )


def side_by_side(targets: list[Target], trees: list[str]) -> list[tuple[Target, Target]]:
    """Return the two targets of each ratio that two servers answer: they are loaded at once."""
    of = {(target.tree, target.name): target for target in targets}
    pairs = [(of[tree, a], of[tree, b]) for _, a, b, _ in RATIOS for tree in trees]
    return [(top, bottom) for top, bottom in pairs if top.service is not bottom.service]


def load_side_by_side(pairs: list[tuple[Target, Target]], plan: Plan) -> dict[tuple, list]:
    """Load the two targets of each pair at once, a round at a time (the order of the pairs
    reversed every other round); return each pair's samples, by (tree, numerator, denominator).

    Both servers share the server CPUs and the machine's swings of the moment: the ratio of their
    CPU per request then holds steadier from round to round than that of two loads in turn."""
    loads: dict[tuple, list] = {(top.tree, top.name, bottom.name): [] for top, bottom in pairs}
    with ThreadPoolExecutor(2) as pool:
        for number in range(plan.paired_rounds):
            for top, bottom in pairs if number % 2 == 0 else pairs[::-1]:
                started = [pool.submit(target.load, plan.duration_s) for target in (top, bottom)]
                both = tuple(future.result() for future in started)
                loads[top.tree, top.name, bottom.name].append(both)
                log(
                    f"round {number + 1} {top.tree} {top.name} beside {bottom.name}: "
                    + ", ".join(f"{cpu_per_request(sample):.0f} us CPU/req" for sample in both)
                )
    return loads


def spread(values: list[float]) -> dict:
    """Return per-round values with their median, lowest and highest."""
    return {
        "rounds": [round(value, 4) for value in values],
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def per_round(top: Target, bottom: Target, key=lambda sample: sample.rps) -> dict:
    """Return the spread of the ratios of two targets' figures (req/s), round by round."""
    pairs = zip(top.samples, bottom.samples, strict=True)
    return spread([key(a) / key(b) for a, b in pairs])


def cpu_per_request(sample: wrk.Sample) -> float:
    """Return the server's CPU time per request of a load, in microseconds."""
    return sample.cpu_s / sample.requests * 1e6


def overall(loads: list[tuple[wrk.Sample, wrk.Sample]]) -> float:
    """Return the second target's CPU time per request over the first's, each over all the
    rounds (its CPU time summed, over its requests summed): the ratio a verdict reads.

    Two servers that wait on one database, loaded at once, share it unevenly from round to
    round, one of them served faster in each: their per-round ratios fall into two groups, and
    their median moves with the share of rounds in each (bench/README.md, "Side by side")."""
    first = sum(a.cpu_s for a, _ in loads) / sum(a.requests for a, _ in loads)
    second = sum(b.cpu_s for _, b in loads) / sum(b.requests for _, b in loads)
    return round(second / first, 4)


# What the tracing scenario compares, round by round, of each load.
COMPARED = {
    "rps": lambda sample: sample.rps,
    "p50": lambda sample: sample.p50_ms,
    "p99": lambda sample: sample.p99_ms,
    "cpu_per_request": cpu_per_request,
}


def costs(targets: list[Target]) -> list[dict]:
    """Return the tracing scenario's ratios: req/s, p50, p99 and CPU per request, per load."""
    of = {target.name: target for target in targets}
    rows = []
    for load in ("read", "hit"):
        for top, bottom in COSTS:
            pair = of[f"{top} {load}"], of[f"{bottom} {load}"]
            ratios = {key: per_round(*pair, figure) for key, figure in COMPARED.items()}
            rows.append({"load": load, "server": top, "over": bottom, **ratios})
    return rows


def memory(targets: list[Target]) -> dict:
    """Return the resident memory of each server's workers now, in MB, by server."""
    servers = {target.name.split()[0]: target.service for target in targets}
    return {
        name: sorted(round(resident_mib(pid), 1) for pid in service.workers())
        for name, service in servers.items()
    }


def ratios(
    targets: list[Target], trees: list[str], paired: dict[tuple, list]
) -> tuple[list[dict], list[dict]]:
    """Return the acceptance ratios of each tree, as req/s and as CPU per request (inverted: the
    denominator's over the numerator's, so that both read "higher is better"), from the loads in
    turn and, where two servers answer, side by side; and each target's after/before (its price)."""
    of = {(target.tree, target.name): target for target in targets}
    accepted = [
        {
            "compares": what,
            "tree": tree,
            "threshold": least,
            **per_round(of[tree, a], of[tree, b]),
            "cpu": {
                **per_round(of[tree, b], of[tree, a], cpu_per_request),
                "overall": overall(
                    list(zip(of[tree, a].samples, of[tree, b].samples, strict=True))
                ),
            },
            "cpu_side_by_side": {
                **spread(
                    [cpu_per_request(low) / cpu_per_request(top) for top, low in paired[tree, a, b]]
                ),
                "overall": overall(paired[tree, a, b]),
            }
            if (tree, a, b) in paired
            else None,
        }
        for what, a, b, least in RATIOS
        for tree in trees
    ]
    price = [
        {"target": name, **per_round(of["after", name], of["before", name])}
        for tree, name in of
        if tree == "after" and ("before", name) in of
    ]
    return accepted, price


def feature_prices(targets: list[Target]) -> list[dict]:
    """Return each feature server's CPU per request and req/s over the stock bake's, per load."""
    of = {target.name: target for target in targets if target.tree == "after"}
    rows = []
    for name, (changes, settings, answers, exporting) in FEATURES.items():
        for load in ("healthz", "read"):
            top, stock = of[f"{name} {load}"], of[f"gunicorn {load}"]
            rows.append(
                {
                    "server": name,
                    "changes": changes,
                    "settings": settings,
                    "answers": answers,
                    "exporting": exporting,
                    "load": load,
                    "cpu_per_request": per_round(top, stock, cpu_per_request),
                    "rps": per_round(top, stock),
                }
            )
    return rows


def version(argv: list[str]) -> str:
    """Return the first line a program prints about its version."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    line = (done.stdout or done.stderr).strip().splitlines()[0]
    return re.split(r" Copyright| sha=", line)[0]  # the rest is no version


def machine() -> dict:
    """Return the facts of this machine that weigh on the figures."""
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_cpus": list(wrk.LOAD_CPUS),
        "server_cpus": list(wrk.SERVER_CPUS),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "wrk": version(["wrk", "--version"]),
        "postgres": version([str(postgres_bin() / "postgres"), "--version"]),
        "redis": version(["redis-server", "--version"]),
    }


def tree_facts(template: Path, ref: str | None) -> dict:
    """Return where a template tree came from: a commit of this repository, or a folder."""
    if ref is not None:
        return {"ref": ref, "commit": git("rev-parse", ref)}
    if template.resolve() != REPO:
        return {"folder": template.name}  # a path of this machine is no use to a reader
    changed = git("status", "--porcelain", "--", *MEASURED)
    return {"commit": git("rev-parse", "HEAD"), "uncommitted": bool(changed)}


def git(*args: str) -> str:
    """Return what a git command in this repository prints."""
    command = ["git", "-C", str(REPO), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def commands(argv: list[str], targets: list[Target], plan: Plan, answers: str) -> dict:
    """Return the commands that reproduce the figures, without this machine's paths and ports."""
    served = {}
    for target in targets:
        env = target.service.env
        settings = {name: env[name] for name in SHOWN_SETTINGS if name in env}
        shown = " ".join(f"{name}={shlex.quote(value)}" for name, value in settings.items())
        if "PYTHONPATH" in env:  # the reference: a copy of bench/reference_apps.py on the path
            shown += " PYTHONPATH=$REPO/bench"
        line = f"(cd $BAKE && env {shown} {shlex.join(target.service.recipe.command)})"
        served[f"{target.tree} {target.name.split()[0]}"] = re.sub(
            r"127\.0\.0\.1:\d+", "127.0.0.1:$PORT", line
        )
    read = wrk.command("$URL", plan.duration_s, "bench/item_reads.lua", ("$FIRST_ID", wrk.THREADS))
    return {
        "run": " ".join(["python", "bench/run.py", *argv]),
        "bake": f"python -m cookiecutter --no-input -o $OUT $TEMPLATE [{answers}]",
        "servers": served,
        "load": " ".join(wrk.command("$URL", plan.duration_s)),
        "uncached read": " ".join(read),
    }


def shown_argv(args: argparse.Namespace) -> list[str]:
    """Return the arguments this run was given, a --template folder by its name alone."""
    argv = ["--quick"] if args.quick else []
    argv += ["--ignore-load"] if args.ignore_load else []
    argv += ["--tracing"] if args.tracing else []
    argv += ["--before", args.before] if args.before else []
    return argv + (["--template", args.template.name] if args.template.resolve() != REPO else [])


def start_servers(stack: contextlib.ExitStack) -> Servers:
    """Start PostgreSQL and Redis in a private folder, on the load's CPUs (wrk.LOAD_CPUS); stop
    them and remove the folder with ``stack``."""
    root = private_dir("bench-")
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    # Every server of both trees keeps its workers' pools open (some dozen connections each):
    # more in all than PostgreSQL's default of 100.
    postgres = Postgres(root / "postgres", settings=(f"max_connections={MAX_CONNECTIONS}",)).init()
    stack.callback(postgres.stop)
    redis = Redis(root / "redis")
    stack.callback(redis.stop)
    interpreter = Interpreter.for_user(root / "python")
    own_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, wrk.LOAD_CPUS or own_cpus)  # what they start (and fork) keeps them
    try:
        return Servers(root, interpreter, postgres.start(), redis.start())
    finally:
        os.sched_setaffinity(0, own_cpus)


def run_figures(figures: dict, started: float, plan: Plan, targets: list[Target]) -> dict:
    """Return the figures every run writes: its machine, length, plan and targets."""
    figures["machine"]["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    return {
        **figures,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "plan": {**plan.__dict__, "threads": wrk.THREADS, "connections": wrk.CONNECTIONS},
        "targets": [target_figures(target) for target in targets],
    }


def measure(args: argparse.Namespace, plan: Plan) -> dict:
    """Serve every tree, load the targets in rounds, stop everything; return the figures."""
    figures = {"started": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "machine": machine()}
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        servers = start_servers(stack)
        trees = {"after": (args.template, None)}
        if args.before:
            before = extract(args.before, servers.root / "before")
            trees = {"before": (before, args.before), **trees}
        served = [serve_tree(servers, tree, path, plan, stack) for tree, (path, _) in trees.items()]
        # Each target beside its namesake of the other tree; the after tree's features follow.
        common = min(len(tree_targets) for tree_targets in served)
        shared = [tree_targets[:common] for tree_targets in served]
        targets = [target for namesakes in zip(*shared, strict=True) for target in namesakes]
        targets += [target for tree_targets in served for target in tree_targets[common:]]
        load_rounds(targets, plan)
        paired = load_side_by_side(side_by_side(targets, list(trees)), plan)
        figures["commands"] = commands(shown_argv(args), targets, plan, "app_server=granian")
    accepted, price = ratios(targets, list(trees), paired)
    figures["trees"] = {tree: tree_facts(template, ref) for tree, (template, ref) in trees.items()}
    return {
        **run_figures(figures, started, plan, targets),
        "side_by_side": [
            {
                "tree": tree,
                "targets": [top, bottom],
                "samples": [[s.figures() for s in both] for both in loads],
            }
            for (tree, top, bottom), loads in paired.items()
        ],
        "ratios": accepted,
        "after_over_before": price,
        "features": feature_prices(targets),
    }


def measure_tracing(args: argparse.Namespace, plan: Plan) -> dict:
    """Serve the tracing scenario, load its targets in rounds, stop everything; the figures."""
    figures = {"started": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "machine": machine()}
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        targets, sinks = serve_tracing(start_servers(stack), args.template, plan, stack)
        load_rounds(targets, plan)
        figures["worker_rss_mb"] = memory(targets)
        figures["exported"] = exported(sinks, targets)
        bake = " ".join(f"{option}={value}" for option, value in TRACED.items())
        figures["commands"] = commands(shown_argv(args), targets, plan, bake)
    figures["trees"] = {"after": tree_facts(args.template, None)}
    return {**run_figures(figures, started, plan, targets), "tracing": costs(targets)}


def target_figures(target: Target) -> dict:
    """Return one target's samples as JSON-ready figures."""
    return {
        "tree": target.tree,
        "target": target.name,
        "path": target.path,
        "samples": [sample.figures() for sample in target.samples],
    }


def main() -> int:
    """Measure, write the figures as JSON, render them as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=REPO, help="template tree (this one)")
    parser.add_argument("--before", metavar="REF", help="also bake `git archive REF` of this repo")
    parser.add_argument("--quick", action="store_true", help="smoke run: one round, short loads")
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="instead: the cost of use_opentelemetry, tracing off and sampled at 100%% and 10%%"
        " (docs/benchmarks-tracing.*)",
    )
    parser.add_argument(
        "--ignore-load",
        action="store_true",
        help=f"run on a machine busier than a load average of {MAX_LOAD} (a smoke run): the"
        " figures are printed, no report is written",
    )
    parser.add_argument("--json", type=Path, help="docs/benchmarks.json (or -tracing.json)")
    parser.add_argument("--markdown", type=Path, help="docs/benchmarks.md (or -tracing.md)")
    args = parser.parse_args()
    if args.tracing and args.before:
        parser.error("--tracing measures one template tree: no --before")
    name = "benchmarks-tracing" if args.tracing else "benchmarks"
    args.json = args.json or REPO / "docs" / f"{name}.json"
    args.markdown = args.markdown or REPO / "docs" / f"{name}.md"
    for tool in ("wrk", "redis-server", "tar"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (apt-get install wrk redis-server)")
    load = os.getloadavg()[0]
    if load > MAX_LOAD and not args.ignore_load:
        parser.exit(
            1,
            f"The load average of the last minute is {load:.2f}, above {MAX_LOAD}: other work"
            " would skew the figures. Run the bench alone (or pass --ignore-load for a smoke"
            " run, which writes no report).\n",
        )
    if args.tracing:
        figures = measure_tracing(args, QUICK if args.quick else TRACING)
    else:
        figures = measure(args, QUICK if args.quick else FULL)
    rendered = report.render(figures)
    if args.ignore_load:
        log(f"measured in {figures['minutes']} min; --ignore-load: no report written")
    else:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
        args.markdown.write_text(rendered)
        log(f"wrote {args.json.name} and {args.markdown.name} in {figures['minutes']} min")
    print(report.summary(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
