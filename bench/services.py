"""Start and stop the servers a benchmark needs, each on a free loopback port, each bounded."""

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "pgtest"


def free_port() -> int:
    """Return a loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Stop a process we started: ``sig``, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


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


def process_cpu_s(master: int) -> float:
    """Return CPU seconds used by a master process, its live workers and its reaped workers."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in [master, *worker_pids(master)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17; after the ")" they start at index 11.
        used = fields[11:13] if pid != master else fields[11:15]
        total += sum(int(value) for value in used)
    return total / ticks


class Gunicorn:
    """One gunicorn server: its command, environment, port and process."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict, port: int, log: Path):
        """Describe the server; ``start`` runs it."""
        self.name, self.args, self.cwd, self.env = name, args, cwd, env
        self.port, self.log_path = port, log
        self.proc: subprocess.Popen | None = None
        self.workers: list[int] = []  # worker pids, read just before stopping

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
        self.proc = subprocess.Popen(
            self.command(), cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
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
        stop(self.proc, signal.SIGINT)
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


def _run(*args: str) -> None:
    """Run a setup command; raise with its output when it fails."""
    subprocess.run(args, check=True, capture_output=True, timeout=120)


class Postgres:
    """A throwaway PostgreSQL 15 cluster run as an unprivileged user on a loopback port."""

    def __init__(self, root: Path):
        """Choose the data directory and port."""
        self.root = root / "pg"
        self.port = free_port()

    @property
    def url(self) -> str:
        """Return the SQLAlchemy URL of the cluster's default database."""
        return f"postgresql+psycopg://app@127.0.0.1:{self.port}/postgres"

    def _as_user(self, *args: str) -> list[str]:
        """Prefix a command so it runs as the unprivileged user when we are root."""
        return ["runuser", "-u", PG_USER, "--", *args] if os.geteuid() == 0 else list(args)

    def start(self) -> None:
        """Create and start the cluster (fsync off: a benchmark, not a store)."""
        self.root.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER, PG_USER)
        _run(
            *self._as_user(
                str(PG_BIN / "initdb"),
                "-D",
                f"{self.root}/data",
                "-U",
                "app",
                "--auth=trust",
                "--no-sync",
            )
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(
            *self._as_user(
                str(PG_BIN / "pg_ctl"),
                "-D",
                f"{self.root}/data",
                "-l",
                f"{self.root}/pg.log",
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            )
        )

    def stop(self) -> None:
        """Stop the cluster, fast."""
        if (self.root / "data" / "postmaster.pid").exists():
            subprocess.run(
                self._as_user(
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    f"{self.root}/data",
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ),
                capture_output=True,
                timeout=60,
                check=False,
            )


class Redis:
    """A throwaway redis-server on a loopback port, without persistence."""

    def __init__(self, root: Path):
        """Choose the directory and port."""
        self.root = root / "redis"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Return the redis URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait for it to accept connections."""
        self.root.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 10
        while time.monotonic() < end:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise TimeoutError("redis-server did not start within 10s")

    def stop(self) -> None:
        """Stop the server."""
        if self.proc is not None:
            stop(self.proc)


class Nginx:
    """nginx, unprivileged with its own prefix, serving one rendered server block."""

    def __init__(self, root: Path, server_block: str):
        """Write nginx.conf around ``server_block`` under its own prefix."""
        self.root = root / "nginx"
        self.server_block = server_block
        self.proc: subprocess.Popen | None = None

    def conf(self) -> str:
        """Return the main config: the official image's main block, every path under our prefix."""
        temp = "\n".join(
            f"    {name}_temp_path {self.root}/{name}_temp;"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""daemon off;
worker_processes auto;
pid {self.root}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_timeout 65;
{temp}
{self.server_block}
}}
"""

    def start(self, url: str) -> None:
        """Start nginx and wait until ``url`` (proxied to the app) answers 200."""
        self.root.mkdir(parents=True)
        (self.root / "nginx.conf").write_text(self.conf())
        args = ["nginx", "-p", str(self.root), "-c", str(self.root / "nginx.conf"), "-e", "stderr"]
        check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {check.stderr.strip()}")
        log = (self.root / "nginx.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_200(url, 15.0, self.proc)

    def cpu_s(self) -> float:
        """Return the CPU seconds nginx (master and workers) has used so far."""
        return process_cpu_s(self.proc.pid)

    def stop(self) -> None:
        """Stop nginx (SIGQUIT lets workers finish; SIGTERM is fine for a benchmark)."""
        if self.proc is not None:
            stop(self.proc)
