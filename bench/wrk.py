"""Run wrk against one URL and read its summary."""

import os
import re
import subprocess
from dataclasses import asdict, dataclass

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
THREADS = 2
# The CPUs a load is split over: the servers under load run on every usable CPU but the first,
# which wrk shares with PostgreSQL and Redis. What loads a server then takes none of its CPUs, and
# its CPU time per request holds steady from round to round (issue 66). One usable CPU: no split.
_CPUS = sorted(os.sched_getaffinity(0))
LOAD_CPUS, SERVER_CPUS = (tuple(_CPUS[:1]), tuple(_CPUS[1:])) if len(_CPUS) > 1 else ((), ())
CONNECTIONS = 32


class Non2xx(RuntimeError):
    """wrk saw answers other than expected: the load measured refusals or errors, not the route."""


@dataclass
class Sample:
    """One wrk run: throughput, latency percentiles, request and error counts."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int  # failed connects, writes and timeouts
    last_id: int | None = None  # the highest item id the read script asked for
    cpu_s: float | None = None  # the server's CPU time during the load (user and system)

    def figures(self) -> dict:
        """Return the sample as JSON-ready numbers."""
        return asdict(self)


def command(url: str, duration_s: int, script: str | None = None, args=()) -> list[str]:
    """Return the wrk command line, with a Lua script and its arguments when given."""
    pinned = ["taskset", "--cpu-list", ",".join(map(str, LOAD_CPUS))] if LOAD_CPUS else []
    load = [*pinned, "wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration_s}s", "--latency"]
    extra = ["-s", script] if script else []
    return [*load, *extra, url, *(["--", *map(str, args)] if args else [])]


def _latency_ms(text: str, percentile: str) -> float:
    """Return one percentile of wrk's latency distribution in milliseconds."""
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {percentile}% latency in wrk output:\n{text}")
    return float(match.group(1)) * UNIT_MS[match.group(2)]


def parse(text: str, all_refused: bool = False) -> Sample:
    """Read req/s, p50, p99 and the counts; raise Non2xx when any answer was not 2xx (with
    ``all_refused``: when any answer was 2xx, the load of an address every answer refuses)."""
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    requests = re.search(r"^\s*(\d+) requests in", text, re.MULTILINE)
    if rps is None or requests is None:
        raise ValueError(f"no Requests/sec in wrk output:\n{text}")
    refused = int(non_2xx.group(1)) if non_2xx else 0
    if refused != (int(requests.group(1)) if all_refused else 0):
        raise Non2xx(f"{refused} of {requests.group(1)} answers were not 2xx:\n{text}")
    sockets = re.search(r"Socket errors: connect (\d+), read \d+, write (\d+), timeout (\d+)", text)
    last_id = re.search(r"^last id: (\d+)$", text, re.MULTILINE)  # printed by item_reads.lua
    return Sample(
        rps=float(rps.group(1)),
        p50_ms=_latency_ms(text, "50"),
        p99_ms=_latency_ms(text, "99"),
        requests=int(requests.group(1)),
        # A closed kept-alive connection shows as a read error; those are not failures.
        socket_errors=sum(int(count) for count in sockets.groups()) if sockets else 0,
        last_id=int(last_id.group(1)) if last_id else None,
    )


def run(
    url: str, duration_s: int, script: str | None = None, args=(), all_refused: bool = False
) -> Sample:
    """Load ``url`` for ``duration_s`` seconds and return the sample (``all_refused``: every
    answer must be other than 2xx, a 404 say)."""
    result = subprocess.run(
        command(url, duration_s, script, args),
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
        check=True,
    )
    return parse(result.stdout, all_refused)
