"""A developer's daily loop on a fresh bake, through the generated project's own Makefile.

Each step runs a make target in the baked folder, as a developer would from a shell: no settings
inherited from the test run, only what the journey sets.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from email.message import Message
from pathlib import Path

import developer
from developer import offline_uv, request
from project_files import package_name

from .servers import ServerError, free_port, wait_until

MAKE_TIMEOUT = 600.0
DEMO_START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
COLUMN = "color"
COLUMN_LINE = (
    f'    {COLUMN}: Mapped[str] = mapped_column(String(30), default="", server_default="")\n'
)


class StepFailed(AssertionError):
    """A make step did not succeed; the message carries its output."""


def bake(template: Path, parent: Path, **answers: str) -> Path:
    """Bake the template with the cookiecutter CLI into ``parent``; return the project folder."""
    cli = Path(sys.executable).with_name("cookiecutter")
    pairs = [f"{key}={value}" for key, value in answers.items()]
    home = parent / "home"
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(cli), "--no-input", "-o", str(parent), str(template), *pairs],
        env={**os.environ, "HOME": str(home)},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    (project,) = [path for path in parent.iterdir() if (path / "Makefile").is_file()]
    return project


def developer_env(**settings: str) -> dict[str, str]:
    """Return a shell's environment without the test run's settings, plus ``settings``.

    uv installs offline, from the tests' cache.
    """
    env = {name: os.environ[name] for name in KEEP if name in os.environ}
    return {**offline_uv(env), **settings}


def attempt(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run one make target with no terminal (its input empty); return it, whatever its status."""
    return developer.make(project, env, *args, timeout=MAKE_TIMEOUT)


def make(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run one make target; raise StepFailed with its output unless it succeeds."""
    result = attempt(project, env, *args)
    if result.returncode != 0:
        output = (result.stdout[-3000:] + "\n" + result.stderr[-3000:]).strip()
        raise StepFailed(f"make {' '.join(args)} exited {result.returncode}:\n{output}")
    return result


@contextmanager
def background(project: Path, env: dict[str, str], target: str, log: Path):
    """Run `make <target>` in the background until the block ends; yield its process.

    Stopping sends SIGTERM to the whole process group (make and what it started), as Ctrl-C
    would send SIGINT, and waits a bounded time; SIGKILL ends anything still running past it.
    """
    with log.open("w") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", target],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_group(process, target)


@contextmanager
def demo(project: Path, env: dict[str, str], log: Path):
    """Run `make demo` on a free port until the block ends; yield its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        """Say whether the demo answers /healthz."""
        return request(base + "/healthz")[0] == 200

    with running(project, {**env, "PORT": str(port)}, "demo", log, answering, "answering /healthz"):
        yield base


@contextmanager
def mail(project: Path, env: dict[str, str], log: Path):
    """Run `make mail` on a free port until the block ends; yield the settings sending to it,
    as docs/auth.md's native walk puts them in .env."""
    port = free_port()

    def listening() -> bool:
        """Say whether make mail's server takes connections."""
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    with running(project, {**env, "MAIL_PORT": str(port)}, "mail", log, listening, "listening"):
        yield {
            "MAIL_URL": f"smtp://127.0.0.1:{port}",
            "MAIL_FROM": "no-reply@localhost.test",
            "PUBLIC_URL": "http://localhost:8000",
        }


@contextmanager
def running(project: Path, env: dict[str, str], target: str, log: Path, ready, what: str):
    """Run `make <target>` until the block ends, once ``ready()`` says it serves; a make that
    exits first fails the step with its log's tail."""
    with background(project, env, target, log) as process:

        def serving() -> bool:
            """Say whether the target serves; raise when make has exited."""
            if process.poll() is not None:
                raise ServerError(f"make {target} exited {process.returncode}")
            return ready()

        try:
            wait_until(serving, DEMO_START_TIMEOUT, f"make {target} {what}", interval=0.2)
        except ServerError as exc:
            raise StepFailed(f"{exc}\n{log.read_text()[-3000:]}") from None
        yield process


def mailed_tokens(log: Path, address: str) -> list[str]:
    """Return the token of each link `make mail` printed in a mail to ``address``, in order."""
    mails = log.read_text().split("-" * 72 + "\n")
    to = [mail for mail in mails if f"\nTo: {address}\n" in mail]
    return [match[1] for mail in to if (match := re.search(r"token=([\w.-]+)", mail))]


def newest_token(log: Path, address: str, count: int) -> str:
    """Wait until `make mail` printed ``count`` mails to ``address``; return the newest's token."""
    what = f"make mail printing mail {count} to {address}"
    wait_until(lambda: len(mailed_tokens(log, address)) >= count, 30.0, what, interval=0.2)
    return mailed_tokens(log, address)[-1]


def auth_walk(base: str, mail_log: Path, address: str) -> str:
    """Sign up, confirm by the mailed link, reset the password by the next one, as
    docs/auth.md's walk does by its requests; return the token the new password gets."""
    password, new_password = "correct horse battery", "a new password"
    assert request(f"{base}/api/auth/sign-up", {"email": address})[0] == 202
    confirm = {"token": newest_token(mail_log, address, 1), "password": password}
    assert request(f"{base}/api/auth/verify", confirm)[0] == 204
    signed_in = {"email": address, "password": password}
    assert request(f"{base}/api/auth/tokens", signed_in)[0] == 201
    assert request(f"{base}/api/auth/password-reset", {"email": address})[0] == 202
    reset = {"token": newest_token(mail_log, address, 2), "password": new_password}
    assert request(f"{base}/api/auth/password", reset)[0] == 204
    status, body = request(f"{base}/api/auth/tokens", {**signed_in, "password": new_password})
    assert status == 201, body
    return str(body["token"])


def page(url: str) -> tuple[int, Message, str]:
    """GET a page; return its status, headers and text, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def stop_group(process: subprocess.Popen, target: str) -> None:
    """SIGTERM a process group, wait until all of it is gone, SIGKILL it past the timeout."""
    group = process.pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(group, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)
    raise StepFailed(f"make {target} did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM")


def add_column(project: Path) -> None:
    """Add a column to the example model, as a developer edits items/models.py."""
    models = project / package_name(project) / "items" / "models.py"
    text = models.read_text()
    anchor = re.search(r"^    description: .*\n", text, re.MULTILINE)
    assert anchor, "no description column to add a column after"
    models.write_text(text[: anchor.end()] + COLUMN_LINE + text[anchor.end() :])


def new_migrations(project: Path, before: set[Path]) -> list[Path]:
    """Return the migration scripts written since ``before`` was listed."""
    return sorted(set((project / "migrations" / "versions").glob("*.py")) - before)


def sqlite_file(project: Path) -> Path:
    """Return the SQLite file the default DATABASE_URL names (Flask puts it under instance/)."""
    name = f"{package_name(project)}.db"
    found = [path for path in project.rglob(name) if ".venv" not in path.parts]
    assert len(found) == 1, f"expected one {name}, found {found}"
    return found[0]
