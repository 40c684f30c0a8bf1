"""Render the figures bench/run.py wrote (docs/benchmarks.json) as docs/benchmarks.md.

python bench/report.py [JSON [MARKDOWN]]   (docs/benchmarks-tracing.* for run.py --tracing)
"""

import json
import statistics
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
LOADS = {
    "healthz": "GET /healthz",
    "hit": "cached read (X-Cache: hit)",
    "read": "PostgreSQL primary-key read (each id once: cache misses)",
    "none": "read of an id no item has (a cache miss, then 404)",
}
SERVERS = {
    "flask": "minimal Flask (plain gunicorn)",
    "minread": "minimal same-stack read (plain gunicorn)",
    "granread": "minimal same-stack read (plain granian)",
    "plain": "use_opentelemetry=no",
    "off": "tracing off (no endpoint)",
    "all": "sampled 100%",
    "tenth": "sampled 10%",
    "never": "no endpoint, sampler always_off",
    "nometrics": "METRICS_ENABLED=false",
    "quiet": "LOG_LEVEL=WARNING",
    "limited": "RATELIMIT_DEFAULT set",
    "untraced": "use_opentelemetry=yes, no endpoint",
    "traced": "use_opentelemetry=yes, exporting",
}


def title(target: str) -> str:
    """Name a target ("<server> <load>") for a reader."""
    server, load = target.split()
    return f"{SERVERS.get(server, server)}: {LOADS[load]}"


def ratio(row: dict | None) -> str:
    """Return a ratio's median with its lowest and highest round; a CPU ratio's figure over all
    its rounds first, where the figures have it."""
    if row is None:
        return "n/a"
    rounds = f"{row['median']:.2f}x ({row['min']:.2f} to {row['max']:.2f})"
    if "overall" not in row:
        return rounds
    return f"{row['overall']:.2f}x, rounds {rounds}"


def verdict(row: dict | None) -> str:
    """Say whether a ratio reached its threshold: its CPU figure over all the rounds, or the
    rounds' median in figures written before it (the side-by-side CPU ratio decides where two
    servers answer; the other cells are shown for reading)."""
    if row is None or row["threshold"] is None:
        return ""
    return " met" if row.get("overall", row["median"]) >= row["threshold"] else " **not met**"


def floor(threshold: float | None) -> str:
    """Return a threshold as the report shows it; a ratio without one is shown for reading."""
    return "none (for reading)" if threshold is None else f">= {threshold:.2f}x"


def origin(tree: dict) -> str:
    """Say where a template tree came from: a ref of the repository, a commit, or a folder."""
    if "ref" in tree:
        return f"`git archive {tree['ref']}` ({tree['commit'][:10]})"
    if "commit" in tree:
        return f"the checkout at {tree['commit'][:10]}" + (" (uncommitted)" * tree["uncommitted"])
    return f"the folder {tree['folder']}"


def header(figures: dict) -> list[str]:
    """Return the title and what the run was: when, how long, on what, from which trees."""
    plan, host = figures["plan"], figures["machine"]
    trees = "; ".join(f"{tree}: {origin(facts)}" for tree, facts in figures["trees"].items())
    start, end = (", ".join(map(str, host[f"load_average_at_{when}"])) for when in ("start", "end"))
    scenario = "tracing" in figures
    name, run = ("benchmarks-tracing", "run.py --tracing") if scenario else ("benchmarks", "run.py")
    return [
        "# Benchmarks" + (": the cost of tracing" if scenario else ""),
        "",
        f"Written by `python bench/{run}` (figures in `docs/{name}.json`, rendered by "
        "`bench/report.py`). A measurement, not a gate: nothing fails on these numbers."
        + ("" if scenario else " Where a request's CPU goes: below, from benchmarks-breakdown.md."),
        "",
        f"- Run: {figures['started']}, {figures['minutes']} min; {plan['rounds']} round(s) of "
        f"{plan['duration_s']} s per load after {plan['warmup_s']} s of warm-up, targets in turn "
        "(the order reversed every other round)"
        + (
            f"; then {plan.get('paired_rounds', plan['rounds'])} rounds of each ratio's two "
            "servers side by side (loaded at once)."
            if figures.get("side_by_side")
            else "."
        ),
        f"- Load: wrk, {plan['threads']} threads, {plan['connections']} connections, "
        + cpus(host)
        + ", loopback only.",
        f"- Machine: {host['cpus']} CPUs ({host['cpus_usable']} usable), Linux {host['kernel']}, "
        f"Python {host['python']}; load average (1, 5, 15 min) {start} at the start, {end} at "
        "the end.",
        f"- Versions: {host['wrk']}; {host['postgres']}; {host['redis']}.",
        f"- Template trees: {trees}.",
        "",
    ]


def cpus(host: dict) -> str:
    """Say which CPUs the load and the servers ran on (runs before the split: the same ones)."""
    if not host.get("server_cpus"):
        return "on the same CPUs as the servers"
    load, server = (",".join(map(str, host[key])) for key in ("load_cpus", "server_cpus"))
    return (
        f"on CPU {load} with PostgreSQL and Redis, the servers on CPU {server} (taskset): what "
        "loads a server takes none of its CPU time"
    )


def acceptance(figures: dict) -> list[str]:
    """Return the table of acceptance ratios, req/s and CPU per request for each template tree."""
    trees = list(figures["trees"])
    of = {(row["compares"], row["tree"]): row for row in figures["ratios"]}
    figure_names = ("CPU side by side", "CPU in turn", "req/s in turn")
    columns = [f"{tree} {figure}" for tree in trees for figure in figure_names]
    lines = [
        "## Acceptance ratios",
        "",
        "Two targets loaded in the same rounds: the inverse ratio of their CPU time per request "
        "(the denominator's over the numerator's), then req/s of one over the other's; higher is "
        "better in both. Side by side: where two servers answer the two targets, both are loaded "
        "at once in rounds of their own, sharing the server CPU and the machine's swings of the "
        "moment; that CPU ratio decides the verdict. In turn: each target loaded alone, one "
        "after the other (a ratio of one server's two routes has only these). A CPU cell: first "
        "the ratio over all its rounds (each target's CPU time summed, over its requests "
        "summed), which the verdict reads, then the median of the per-round ratios with the "
        "lowest and highest round in brackets; a req/s cell: that median and range. CPU is the "
        "server's own (master and workers): the PostgreSQL and Redis that a read waits on are "
        "not counted, on either side.",
        "",
        "| compares | threshold | " + " | ".join(columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for compares in dict.fromkeys(row["compares"] for row in figures["ratios"]):
        cells = []
        for tree in trees:
            row = of.get((compares, tree))
            # Either CPU figure is absent from figures written before it.
            paired = row.get("cpu_side_by_side") if row else None
            cpu = row.get("cpu") if row else None
            decides = paired or cpu
            for figure in (paired, cpu):
                judged = {**figure, "threshold": row["threshold"]} if figure is decides else None
                cells.append(ratio(figure) + verdict(judged))
            cells.append(ratio(row))
        threshold = next(row["threshold"] for (name, _), row in of.items() if name == compares)
        lines.append(f"| {compares} | {floor(threshold)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def features(figures: dict) -> list[str]:
    """Return the price of each per-request feature: each server over the stock bake."""
    if not figures.get("features"):
        return []
    lines = [
        "## The price of each per-request feature",
        "",
        "The after tree's default bake served again with one documented setting changed (or the "
        "same answers with `use_opentelemetry=yes`), loaded in the same rounds as the stock "
        "bake: CPU time per request and req/s over the stock bake's, the median of the "
        "per-round ratios, the lowest and highest round in brackets. A CPU ratio below 1.00x "
        "is what the setting saves; above, what it costs.",
        "",
        "| server | what changes | load | CPU per request | req/s |",
        "|---|---|---|---:|---:|",
    ]
    for row in figures["features"]:
        settings = " ".join(f"`{k}={v}`" for k, v in {**row["answers"], **row["settings"]}.items())
        lines.append(
            f"| {row['server']} | {row['changes']} ({settings}) | {LOADS[row['load']]} | "
            f"{ratio(row['cpu_per_request'])} | {ratio(row['rps'])} |"
        )
    return [*lines, ""]


def tracing(figures: dict) -> list[str]:
    """Return the tracing scenario's ratios: each traced server over tracing off and over the
    bake without the option, for each load."""
    lines = [
        "## The cost of tracing",
        "",
        "One bake with `use_opentelemetry=yes` (PostgreSQL, Redis, gunicorn: the defaults) served "
        "four ways, beside the same answers without the option, loaded in the same rounds. "
        "Each cell: the median of the per-round ratios, the lowest and highest round in "
        "brackets. req/s below 1.00x and latency or CPU above 1.00x are the price.",
        "",
        "| load | server | over | req/s | p50 latency | p99 latency | CPU per request |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in figures["tracing"]:
        cells = [ratio(row[key]) for key in ("rps", "p50", "p99", "cpu_per_request")]
        server, over = SERVERS[row["server"]], SERVERS[row["over"]]
        lines.append(f"| {LOADS[row['load']]} | {server} | {over} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def exported(figures: dict) -> list[str]:
    """Return what the OTLP sinks received, against the requests their servers answered."""
    lines = [
        "## Exported",
        "",
        "What each sampled server's OTLP/HTTP sink (a loopback server in the bench answering 200 "
        "to POST /v1/traces) received during the whole run, warm-ups included; tracing off has "
        "no endpoint and exports nothing. Traced: the requests with a server span. wrk does not "
        "count the requests still in flight when a load ends (up to one per connection), the "
        "server does: sampled at 100%, slightly more requests are traced than wrk counts.",
        "",
        "| server | requests served (wrk) | traced | traced / served | spans | spans per trace | "
        "export requests | MB | span names |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for server, row in figures["exported"].items():
        names = ", ".join(f"`{name}` {count:,}" for name, count in row["span_names"].items())
        lines.append(
            f"| {SERVERS[server]} | {row['served']:,} | {row['server_spans']:,} | "
            f"{row['traced_share']:.3f} | {row['spans']:,} | {row['spans_per_trace']:.2f} | "
            f"{row['requests']:,} | {row['bytes'] / 1e6:.1f} | {names} |"
        )
    lines += ["", "Resident memory of each server's workers at the end of the run (MB):", ""]
    lines += [
        f"- {SERVERS[server]}: {', '.join(map(str, sizes))}"
        for server, sizes in figures["worker_rss_mb"].items()
    ]
    return [*lines, ""]


def median_rps(figures: dict, tree: str, target: str) -> str:
    """Return a target's median req/s over the rounds."""
    (row,) = [r for r in figures["targets"] if r["tree"] == tree and r["target"] == target]
    return f"{statistics.median(sample['rps'] for sample in row['samples']):,.0f}"


def price(figures: dict) -> list[str]:
    """Return the table of each target's req/s after the change over before it."""
    if not figures["after_over_before"]:
        return []
    lines = [
        "## After over before",
        "",
        "| target | before req/s | after req/s | after / before |",
        "|---|---:|---:|---:|",
    ]
    for row in figures["after_over_before"]:
        before, after = (median_rps(figures, tree, row["target"]) for tree in ("before", "after"))
        lines.append(f"| {title(row['target'])} | {before} | {after} | {ratio(row)} |")
    return [*lines, ""]


def targets(figures: dict) -> list[str]:
    """Return the table of every target's medians over the rounds."""
    lines = [
        "## Targets",
        "",
        "In the order loaded, medians over the rounds. Socket errors: failed connects, writes "
        "and timeouts (a closed kept-alive connection is not one). Any answer other than 2xx "
        "stops the run instead.",
        "",
        "| tree | target | path | req/s | p50 ms | p99 ms | CPU us per request | socket errors |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in figures["targets"]:
        samples = row["samples"]
        p50, p99 = (statistics.median(s[key] for s in samples) for key in ("p50_ms", "p99_ms"))
        errors = sum(sample["socket_errors"] for sample in samples)
        rps = median_rps(figures, row["tree"], row["target"])
        lines.append(
            f"| {row['tree']} | {title(row['target'])} | `{row['path']}` | {rps} | "
            f"{p50:.2f} | {p99:.2f} | {cpu_us(samples)} | {errors} |"
        )
    return [*lines, ""]


def cpu_us(samples: list[dict]) -> str:
    """Return the server's median CPU time per request in microseconds (user and system, its
    master and workers), or n/a for figures written before it was measured."""
    if any(sample.get("cpu_s") is None for sample in samples):
        return "n/a"
    return f"{statistics.median(s['cpu_s'] / s['requests'] * 1e6 for s in samples):,.0f}"


def reproduce(figures: dict) -> list[str]:
    """Return the commands: the run itself, then what it bakes, serves and loads."""
    commands = figures["commands"]
    served = [f"{name}: {line}" for name, line in commands["servers"].items()]
    return [
        "## Reproduce",
        "",
        "```bash",
        commands["run"],
        "```",
        "",
        "What it runs, for each template tree (settings beyond these: the bake's `.env`, and "
        "compose's for the web service):",
        "",
        "```text",
        commands["bake"],
        *served,
        commands["load"],
        commands["uncached read"],
        "```",
        "",
    ]


def breakdown(figures: dict) -> list[str]:
    """Return docs/benchmarks-breakdown.md (bench/breakdown.py's last run) as a section (its
    title one level down; its own headings are below that level already); nothing when there is
    none."""
    page = DOCS / "benchmarks-breakdown.md"
    if not page.is_file():
        return []
    lines = page.read_text().splitlines()
    return [f"#{line}" if line.startswith("# ") else line for line in lines] + [""]


def render(figures: dict) -> str:
    """Return docs/benchmarks.md for one run's figures."""
    sections = (header, acceptance, features, price, breakdown, targets, reproduce)
    if "tracing" in figures:
        sections = (header, tracing, exported, targets, reproduce)
    return "\n".join(line for section in sections for line in section(figures)).rstrip() + "\n"


def summary(figures: dict) -> str:
    """Return the acceptance ratios (or tracing's) as plain lines, for the terminal."""
    if "tracing" in figures:
        return "\n".join(
            f"{row['load']:4} {row['server']:5} over {row['over']:5}: req/s {ratio(row['rps'])}, "
            f"p50 {ratio(row['p50'])}, p99 {ratio(row['p99'])}, "
            f"CPU/request {ratio(row['cpu_per_request'])}"
            for row in figures["tracing"]
        )
    lines = [
        f"{row['tree']:6} {row['compares']}: CPU side by side {ratio(row.get('cpu_side_by_side'))}"
        f", in turn {ratio(row.get('cpu'))}, req/s {ratio(row)}, "
        f"threshold {floor(row['threshold'])}"
        for row in figures["ratios"]
    ]
    lines += [
        f"price  {row['server']:9} {row['load']:7}: CPU/request {ratio(row['cpu_per_request'])},"
        f" req/s {ratio(row['rps'])} over the stock bake"
        for row in figures.get("features", [])
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Render a JSON file of figures (docs/benchmarks.json) into Markdown (docs/benchmarks.md)."""
    source = Path(argv[0]) if argv else DOCS / "benchmarks.json"
    out = Path(argv[1]) if len(argv) > 1 else DOCS / "benchmarks.md"
    out.write_text(render(json.loads(source.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
