"""Run wrk against one URL and read its summary."""

import re
import subprocess
from dataclasses import dataclass, field

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class Sample:
    """One wrk run: throughput, latency percentiles and failed responses."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_ms_per_request: float | None = None  # the server's CPU (gunicorn: master and workers)
    proxy_cpu_ms_per_request: float | None = None  # a proxy's in front of it (nginx)
    one_worker: bool = False  # one worker process of several did (nearly) all the work
    text: str = field(default="", repr=False)  # wrk's own output, kept for runs with errors


def command(
    url: str,
    duration_s: int,
    connections: int = 32,
    headers: tuple[str, ...] = (),
    script: str | None = None,
    cpus: str | None = None,
) -> list[str]:
    """Return the wrk command line (2 threads), with extra request headers and a Lua script;
    ``cpus`` (taskset's list, e.g. "0") keeps wrk on those CPUs."""
    extra = [arg for header in headers for arg in ("-H", header)]
    extra += ["-s", script] if script else []
    pinned = ["taskset", "-c", cpus] if cpus else []
    return [*pinned, "wrk", "-t2", f"-c{connections}", f"-d{duration_s}s", "--latency", *extra, url]


def _latency_ms(text: str, percentile: str) -> float:
    """Return one percentile of wrk's latency distribution in milliseconds."""
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {percentile}% latency in wrk output:\n{text}")
    return float(match.group(1)) * UNIT_MS[match.group(2)]


def parse(text: str) -> Sample:
    """Read req/s, p50, p99 and the count of non-2xx answers and socket errors."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    if rps is None:
        raise ValueError(f"no Requests/sec in wrk output:\n{text}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if sockets:
        # Sync workers close each connection after a response; wrk counts those closes as read
        # errors, so only failed connects, writes and timeouts are failures here.
        errors += int(sockets.group(1)) + int(sockets.group(3)) + int(sockets.group(4))
    requests = re.search(r"^\s*(\d+) requests in", text, re.MULTILINE)
    return Sample(
        float(rps.group(1)),
        _latency_ms(text, "50"),
        _latency_ms(text, "99"),
        errors,
        int(requests.group(1)) if requests else 0,
        text=text,
    )


def run(
    url: str,
    duration_s: int,
    connections: int = 32,
    headers: tuple[str, ...] = (),
    script: str | None = None,
    cpus: str | None = None,
) -> Sample:
    """Load ``url`` for ``duration_s`` seconds and return the sample."""
    result = subprocess.run(
        command(url, duration_s, connections, headers, script, cpus),
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
        check=True,
    )
    return parse(result.stdout)
