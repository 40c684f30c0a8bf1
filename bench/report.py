"""Render the figures bench/run.py wrote (docs/benchmarks.json) as docs/benchmarks.md.

python bench/report.py [JSON [MARKDOWN]]
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
}


def title(target: str) -> str:
    """Name a target ("<server> <load>") for a reader."""
    server, load = target.split()
    return f"{'minimal Flask' if server == 'flask' else server}: {LOADS[load]}"


def ratio(row: dict | None) -> str:
    """Return a ratio's median with its lowest and highest round."""
    if row is None:
        return "n/a"
    return f"{row['median']:.2f}x ({row['min']:.2f} to {row['max']:.2f})"


def verdict(row: dict | None) -> str:
    """Say whether a ratio's median reached its threshold."""
    if row is None:
        return ""
    return " met" if row["median"] >= row["threshold"] else " **not met**"


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
    return [
        "# Benchmarks",
        "",
        "Written by `python bench/run.py` (figures in `docs/benchmarks.json`, rendered by "
        "`bench/report.py`). A measurement, not a gate: nothing fails on these numbers.",
        "",
        f"- Run: {figures['started']}, {figures['minutes']} min; {plan['rounds']} round(s) of "
        f"{plan['duration_s']} s per load after {plan['warmup_s']} s of warm-up, targets in turn "
        "(the order reversed every other round).",
        f"- Load: wrk, {plan['threads']} threads, {plan['connections']} connections, on the "
        "same CPUs as the servers, loopback only.",
        f"- Machine: {host['cpus']} CPUs ({host['cpus_usable']} usable), Linux {host['kernel']}, "
        f"Python {host['python']}; load average (1, 5, 15 min) {start} at the start, {end} at "
        "the end.",
        f"- Versions: {host['wrk']}; {host['postgres']}; {host['redis']}.",
        f"- Template trees: {trees}.",
        "",
    ]


def acceptance(figures: dict) -> list[str]:
    """Return the table of acceptance ratios, one column per template tree."""
    trees = list(figures["trees"])
    of = {(row["compares"], row["tree"]): row for row in figures["ratios"]}
    lines = [
        "## Acceptance ratios",
        "",
        "req/s of one target over another's, loaded in the same rounds: the median of the "
        "per-round ratios, the lowest and highest round in brackets.",
        "",
        "| compares | threshold | " + " | ".join(trees) + " |",
        "|---|---:|" + "---:|" * len(trees),
    ]
    for compares in dict.fromkeys(row["compares"] for row in figures["ratios"]):
        rows = [of.get((compares, tree)) for tree in trees]
        cells = [ratio(row) + verdict(row) for row in rows]
        threshold = next(row["threshold"] for (name, _), row in of.items() if name == compares)
        lines.append(f"| {compares} | >= {threshold:.2f}x | " + " | ".join(cells) + " |")
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
        "| tree | target | path | req/s | p50 ms | p99 ms | socket errors |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in figures["targets"]:
        samples = row["samples"]
        p50, p99 = (statistics.median(s[key] for s in samples) for key in ("p50_ms", "p99_ms"))
        errors = sum(sample["socket_errors"] for sample in samples)
        rps = median_rps(figures, row["tree"], row["target"])
        lines.append(
            f"| {row['tree']} | {title(row['target'])} | `{row['path']}` | {rps} | "
            f"{p50:.2f} | {p99:.2f} | {errors} |"
        )
    return [*lines, ""]


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


def render(figures: dict) -> str:
    """Return docs/benchmarks.md for one run's figures."""
    sections = (header, acceptance, price, targets, reproduce)
    return "\n".join(line for section in sections for line in section(figures)).rstrip() + "\n"


def summary(figures: dict) -> str:
    """Return the acceptance ratios as plain lines, for the terminal."""
    return "\n".join(
        f"{row['tree']:6} {row['compares']}: {ratio(row)}, threshold {row['threshold']:.2f}x"
        for row in figures["ratios"]
    )


def main(argv: list[str]) -> int:
    """Render a JSON file of figures (docs/benchmarks.json) into Markdown (docs/benchmarks.md)."""
    source = Path(argv[0]) if argv else DOCS / "benchmarks.json"
    out = Path(argv[1]) if len(argv) > 1 else DOCS / "benchmarks.md"
    out.write_text(render(json.loads(source.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
