"""Load the generated service with wrk in interleaved rounds; write the figures as JSON.

    python bench/run.py --before REF   this checkout's template and `git archive REF`, side by side
    python bench/run.py --quick        smoke run: one round of short loads

A measurement, not a gate: report.py renders the JSON into docs/benchmarks.md, each ratio beside
its acceptance threshold. Servers run as the tier-2 tests run them (tests/tier2/servers.py).
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import report
import wrk
from serve import (
    REPO,
    Servers,
    cached_item,
    deploy,
    extract,
    items_to_read,
    serve_reference,
    x_cache,
)
from tier2.servers import Interpreter, Postgres, Redis, Service, postgres_bin, private_dir


@dataclass(frozen=True)
class Plan:
    """How long and how often each target is loaded, and how many rows the uncached read gets."""

    rounds: int
    duration_s: int
    warmup_s: int
    rows: int  # more than the uncached read asks for in all its loads (about 3,000 req/s at most)


FULL = Plan(rounds=10, duration_s=4, warmup_s=2, rows=250_000)
QUICK = Plan(rounds=1, duration_s=2, warmup_s=1, rows=20_000)
# The bakes of each template tree: the defaults (PostgreSQL, Redis, gunicorn), and granian.
BAKES = {"gunicorn": {}, "granian": {"app_server": "granian"}}
# (what the ratio compares, numerator, denominator, acceptance threshold); a target is
# (server, load), both of the same template tree; issue 38 set the thresholds.
RATIOS = (
    ("/healthz, the service vs minimal Flask", "gunicorn healthz", "flask healthz", 0.80),
    ("cached read vs the service's /healthz", "gunicorn hit", "gunicorn healthz", 0.60),
    ("PostgreSQL primary-key read vs /healthz", "gunicorn read", "gunicorn healthz", 0.40),
    ("granian vs gunicorn, /healthz", "granian healthz", "gunicorn healthz", 1.50),
    ("granian vs gunicorn, cached read", "granian hit", "gunicorn hit", 1.50),
)
READ_SCRIPT = Path(__file__).resolve().parent / "item_reads.lua"
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
)


def log(message: str) -> None:
    """Print progress to stderr with the time."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass
class Target:
    """One URL of one served bake, loaded once a round."""

    tree: str  # "before" or "after"
    name: str  # "<server> <load>": the server (flask, gunicorn, granian) and what is loaded
    service: Service
    path: str
    next_id: int | None = None  # the uncached read: the next item id to ask for, the last one
    last_id: int | None = None
    samples: list = field(default_factory=list)

    def load(self, duration_s: int) -> wrk.Sample:
        """Load the target once; stop the run on any answer but 2xx, or a cached item gone."""
        url = self.service.url + self.path
        try:
            if self.next_id is not None:
                return self.load_unread(duration_s)
            sample = wrk.run(url, duration_s)
        except wrk.Non2xx as exc:
            raise RuntimeError(f"{self.tree} {self.name}: {exc}\n{self.service.output()}") from None
        if self.name.endswith(" hit") and x_cache(url) != "hit":
            raise RuntimeError(f"{self.tree} {self.name}: the item left the cache")
        return sample

    def load_unread(self, duration_s: int) -> wrk.Sample:
        """Load the uncached read: items no load has read yet, from where the last load ended."""
        if self.next_id > self.last_id:
            raise RuntimeError(f"{self.tree} {self.name}: no unread item left (Plan.rows)")
        args = (self.next_id, wrk.THREADS)  # the script makes each request's path
        sample = wrk.run(self.service.url + "/", duration_s, str(READ_SCRIPT), args)
        self.next_id = sample.last_id + 1
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
    log(f"{tree}: the reference app, {plan.rows} items to read")
    reference = serve_reference(gunicorn)
    first, last = items_to_read(gunicorn, plan.rows)
    items = {name: f"/api/items/{cached_item(d)}" for name, d in deployments.items()}
    # In the order they are loaded: the two targets of each ratio close together in time.
    return [
        Target(tree, "gunicorn read", gunicorn.service, "/api/items/{id}", first, last),
        Target(tree, "flask healthz", reference, "/healthz"),
        Target(tree, "gunicorn healthz", gunicorn.service, "/healthz"),
        Target(tree, "granian healthz", granian.service, "/healthz"),
        Target(tree, "gunicorn hit", gunicorn.service, items["gunicorn"]),
        Target(tree, "granian hit", granian.service, items["granian"]),
    ]


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


def spread(values: list[float]) -> dict:
    """Return per-round values with their median, lowest and highest."""
    return {
        "rounds": [round(value, 4) for value in values],
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def per_round(top: Target, bottom: Target) -> dict:
    """Return the spread of the ratios of two targets' req/s, round by round."""
    return spread([a.rps / b.rps for a, b in zip(top.samples, bottom.samples, strict=True)])


def ratios(targets: list[Target], trees: list[str]) -> tuple[list[dict], list[dict]]:
    """Return the acceptance ratios of each tree, and each target's after/before (its price)."""
    of = {(target.tree, target.name): target for target in targets}
    accepted = [
        {"compares": what, "tree": tree, "threshold": least, **per_round(of[tree, a], of[tree, b])}
        for what, a, b, least in RATIOS
        for tree in trees
    ]
    price = [
        {"target": name, **per_round(of["after", name], of["before", name])}
        for tree, name in of
        if tree == "after" and ("before", name) in of
    ]
    return accepted, price


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
    return {"commit": git("rev-parse", "HEAD"), "uncommitted": bool(git("status", "-s"))}


def git(*args: str) -> str:
    """Return what a git command in this repository prints."""
    command = ["git", "-C", str(REPO), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def commands(argv: list[str], targets: list[Target], plan: Plan) -> dict:
    """Return the commands that reproduce the figures, without this machine's paths and ports."""
    served = {}
    for target in targets:
        env = target.service.env
        settings = {name: env[name] for name in SHOWN_SETTINGS if name in env}
        shown = " ".join(f"{name}={shlex.quote(value)}" for name, value in settings.items())
        if "PYTHONPATH" in env:  # the reference: a copy of bench/reference_apps.py on the path
            shown += " PYTHONPATH=$REPO/bench"
        line = f"(cd $BAKE && env {shown} {shlex.join(target.service.recipe.command)})"
        served[f"{target.tree} {target.name.split()[0]}"] = re.sub(r":\d+/", ":$PORT/", line)
    read = wrk.command("$URL", plan.duration_s, "bench/item_reads.lua", ("$FIRST_ID", wrk.THREADS))
    return {
        "run": " ".join(["python", "bench/run.py", *argv]),
        "bake": "python -m cookiecutter --no-input -o $OUT $TEMPLATE [app_server=granian]",
        "servers": served,
        "load": " ".join(wrk.command("$URL", plan.duration_s)),
        "uncached read": " ".join(read),
    }


def shown_argv(args: argparse.Namespace) -> list[str]:
    """Return the arguments this run was given, a --template folder by its name alone."""
    argv = ["--quick"] if args.quick else []
    argv += ["--before", args.before] if args.before else []
    return argv + (["--template", args.template.name] if args.template.resolve() != REPO else [])


def measure(args: argparse.Namespace, plan: Plan) -> dict:
    """Serve every tree, load the targets in rounds, stop everything; return the figures."""
    figures = {"started": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "machine": machine()}
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        root = private_dir("bench-")
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        postgres = Postgres(root / "postgres").init()
        stack.callback(postgres.stop)
        redis = Redis(root / "redis")
        stack.callback(redis.stop)
        interpreter = Interpreter.for_user(root / "python")
        servers = Servers(root, interpreter, postgres.start(), redis.start())
        trees = {"after": (args.template, None)}
        if args.before:
            trees = {"before": (extract(args.before, root / "before"), args.before), **trees}
        served = [serve_tree(servers, tree, path, plan, stack) for tree, (path, _) in trees.items()]
        targets = [target for side_by_side in zip(*served, strict=True) for target in side_by_side]
        load_rounds(targets, plan)
        figures["commands"] = commands(shown_argv(args), targets, plan)
    accepted, price = ratios(targets, list(trees))
    figures["machine"]["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    return {
        **figures,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "plan": {**plan.__dict__, "threads": wrk.THREADS, "connections": wrk.CONNECTIONS},
        "trees": {tree: tree_facts(template, ref) for tree, (template, ref) in trees.items()},
        "targets": [target_figures(target) for target in targets],
        "ratios": accepted,
        "after_over_before": price,
    }


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
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "benchmarks.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server", "tar"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (apt-get install wrk redis-server)")
    figures = measure(args, QUICK if args.quick else FULL)
    args.json.write_text(json.dumps(figures, indent=1) + "\n")
    args.markdown.write_text(report.render(figures))
    log(f"wrote {args.json.name} and {args.markdown.name} in {figures['minutes']} min")
    print(report.summary(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
