"""Start and stop the servers a benchmark needs, each on a free loopback port, each bounded.

PostgreSQL, Redis and nginx come from the tier-2 harness (tests/tier2/servers.py), so the
benchmark runs them exactly as the tests do; this module adds gunicorn and the measurements.
"""

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from loopback import free_port
from tier2 import servers
from tier2.servers import Postgres, Redis, loopback_nginx_config, postgres_bin

# What run.py takes from here: gunicorn and the measurements, and the harness's servers.
__all__ = [
    "Gunicorn",
    "Nginx",
    "Postgres",
    "Redis",
    "free_port",
    "loopback_nginx_config",
    "one_worker_served",
    "postgres_bin",
    "upstream_connections",
    "wait_for_200",
]
# A load in which one worker spent more than this share of the workers' CPU was served by it
# alone (balanced loads here split it about evenly).
ONE_WORKER_SHARE = 0.9


def http_status(url: str, timeout: float = 2.0, method: str = "GET", body: bytes | None = None):
    """Return the HTTP status of one request, or None when nothing answers."""
    headers = {"Content-Type": "application/json"} if body else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def wait_for_200(url: str, deadline_s: float, proc: subprocess.Popen | None = None) -> float:
    """Poll ``url`` every 5 ms until it answers 200; return the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]}... exited with {proc.returncode} before {url}")
        if http_status(url, timeout=1.0) == 200:
            return time.perf_counter() - started
        time.sleep(0.005)
    raise TimeoutError(f"{url} gave no 200 within {deadline_s}s")


def worker_pids(master: int) -> list[int]:
    """Return the pids of a gunicorn master's worker processes."""
    path = Path(f"/proc/{master}/task/{master}/children")
    try:
        return [int(pid) for pid in path.read_text().split()]
    except OSError:
        return []


def _orphans() -> list[int]:
    """Return the pids of processes whose parent is init."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == "1":
                pids.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return pids


def memory_mib(pid: int) -> dict | None:
    """Return a process's resident (RSS), proportional (PSS) and private memory in MiB."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    kib = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            kib[parts[0].rstrip(":")] = int(parts[1])
    private = kib.get("Private_Clean", 0) + kib.get("Private_Dirty", 0)
    return {"rss": kib["Rss"] / 1024, "pss": kib["Pss"] / 1024, "private": private / 1024}


def _cpu_s(pid: int, reaped_children: bool = False) -> float | None:
    """Return a process's CPU seconds (with its reaped children's), None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime, stime, cutime, cstime are fields 14-17; after the ")" they start at index 11.
    used = fields[11:15] if reaped_children else fields[11:13]
    return sum(int(value) for value in used) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(master: int) -> float:
    """Return CPU seconds used by a master process, its live workers and its reaped workers."""
    return (_cpu_s(master, reaped_children=True) or 0.0) + sum(worker_cpu_s(master).values())


def worker_cpu_s(master: int) -> dict[int, float]:
    """Return the CPU seconds each live worker of a master has used so far, by pid."""
    used = {pid: _cpu_s(pid) for pid in worker_pids(master)}
    return {pid: seconds for pid, seconds in used.items() if seconds is not None}


def one_worker_served(before: dict[int, float], after: dict[int, float]) -> bool:
    """Tell whether one worker did (nearly) all the work between two worker_cpu_s readings.

    wrk opens all its connections at once, and gunicorn keeps a kept-alive connection on the
    worker that accepted it: when one worker wins every accept, the others idle for the whole
    load, which then measures that race instead of the server.
    """
    spent = [after[pid] - before[pid] for pid in before.keys() & after.keys()]
    total = sum(spent)
    return len(spent) > 1 and total > 0 and max(spent) > ONE_WORKER_SHARE * total


class Gunicorn:
    """One gunicorn server: its command, environment, port and process."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict, port: int, log: Path):
        """Describe the server; ``start`` runs it."""
        self.name, self.args, self.cwd, self.env = name, args, cwd, env
        self.port, self.log_path = port, log
        self.proc: subprocess.Popen | None = None
        self.workers: list[int] = []  # worker pids, read just before stopping
        self.cpus: str | None = None  # taskset's CPU list the server (workers too) is kept on

    @property
    def base(self) -> str:
        """Return the server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """Return the full command line."""
        return [sys.executable, "-m", "gunicorn", *self.args]

    def start(self) -> float:
        """Start the server and wait for /healthz; return seconds from spawn to the first 200."""
        log = self.log_path.open("ab")
        started = time.perf_counter()
        # taskset execs the command: the master's pid and command line stay the server's own.
        pinned = ["taskset", "-c", self.cpus] if self.cpus else []
        self.proc = subprocess.Popen(
            [*pinned, *self.command()],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_200(self.base + "/healthz", 30.0, self.proc)
        return time.perf_counter() - started

    def settle(self, deadline_s: float = 10.0) -> None:
        """Wait until the master has stopped spawning workers (the count holds for 0.3 s)."""
        end, last, steady = time.monotonic() + deadline_s, -1, 0
        while time.monotonic() < end and steady < 3:
            count = len(worker_pids(self.proc.pid))
            steady = steady + 1 if count == last else 0
            last = count
            time.sleep(0.1)

    def worker_memory(self) -> dict | None:
        """Return the median RSS, PSS and private memory of the workers, in MiB."""
        values = [memory_mib(pid) for pid in worker_pids(self.proc.pid)]
        values = [value for value in values if value is not None]
        if not values:
            return None
        return {key: statistics.median(value[key] for value in values) for key in values[0]}

    def cpu_s(self) -> float:
        """Return the CPU seconds the server has used so far."""
        return process_cpu_s(self.proc.pid)

    def worker_cpu_s(self) -> dict[int, float]:
        """Return the CPU seconds each live worker has used so far, by pid."""
        return worker_cpu_s(self.proc.pid)

    def signal_quit(self) -> None:
        """Ask gunicorn for a quick shutdown (SIGINT); ``stop`` then waits for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.workers = worker_pids(self.proc.pid)
            self.proc.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """Stop the server quickly, and any worker its master left behind."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.workers = worker_pids(self.proc.pid)
        servers.stop_pid(self.proc, signal.SIGINT, timeout=15.0)
        # A worker signalled while still booting can hang after its master is gone: kill it,
        # once sure it is ours (it keeps the command line of the master we started) and an
        # orphan (init adopted it).
        ours = "\0".join(self.command()) + "\0"
        for pid in {*self.workers, *_orphans()}:
            try:
                if Path(f"/proc/{pid}/cmdline").read_text() == ours:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                continue  # already gone


class Granian(Gunicorn):
    """One granian server, started by the generated project's own launcher module."""

    def command(self) -> list[str]:
        """Return the full command line: python -m <package>.granian_server."""
        return [sys.executable, "-m", *self.args]


class Nginx(servers.Nginx):
    """The harness's nginx, with the CPU time a benchmark charges to each proxied request."""

    cpus: str | None = None  # taskset's CPU list nginx (its workers too) is kept on

    def _files(self) -> list[str]:
        """Return nginx's argv, through taskset when ``cpus`` is set (it execs nginx)."""
        argv = super()._files()
        return ["taskset", "-c", self.cpus, *argv] if self.cpus else argv

    def cpu_s(self) -> float:
        """Return the CPU seconds nginx (master and workers) has used so far."""
        return process_cpu_s(self.process.pid)


def established_peers(port: int) -> set[str]:
    """Return the peer addresses of the established TCP connections to local ``port``."""
    listing = subprocess.run(
        ["ss", "-tanH", "state", "established"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    fields = [line.split() for line in listing.splitlines()]
    return {f[-1] for f in fields if len(f) >= 4 and f[-2].endswith(f":{port}")}


def upstream_connections(load: Callable[[], object], port: int) -> set[str]:
    """Run ``load`` while noting every connection to ``port`` seen (every 0.1 s); return them."""
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        """Note the connections until the load is over."""
        while not done.is_set():
            seen.update(established_peers(port))
            done.wait(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        load()
    finally:
        done.set()
        watcher.join(timeout=30)
    return seen
