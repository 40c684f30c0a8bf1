"""A command whose PostgreSQL is stopped ends in one line, not in a traceback.

Every command the generated project ships that touches the database, run as a developer runs it
(the package's `flask` commands, and the make targets built on them), against a real PostgreSQL
that served the database a moment before and was then stopped: each prints one line naming
DATABASE_URL and the server's address, never its password, and exits with status 1 (make with
its own status, after the command's line).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_files import package_name

from . import journeys
from .journeys import attempt, developer_env, make
from .servers import Postgres

pytestmark = pytest.mark.xdist_group("journeys")
TEMPLATE = Path(__file__).resolve().parents[2]
PASSWORD = "never-printed-7"  # in DATABASE_URL (the server trusts loopback: it is not checked)
USER = "someone@example.com"
# The package's commands that read or write the database, with what they read on standard input.
COMMANDS = {
    "db upgrade": ("db", "upgrade"),
    "seed": ("seed",),
    "reset": ("reset", "--yes"),
    "users create": ("users", "create", USER),
    "users password": ("users", "password", USER),
    "users deactivate": ("users", "deactivate", USER),
}
# The make targets that run one of them first.
TARGETS = ["migrate", "seed", "demo", "dev"]
# Lines make adds of its own around the command's: its verdict, and `make install`'s note when
# .venv's Python is not the image's.
MAKE_OWN = ("make: ", "note: ")
COMMAND_TIMEOUT = 120


@pytest.fixture(scope="module")
def stopped(workdir) -> Iterator[tuple[Path, dict[str, str], str]]:
    """Bake a project with every database command, migrate it on a real PostgreSQL, then stop
    the server; yield the project, the developer's environment and the URL's masked form."""
    root = workdir / "command-errors"
    project = journeys.bake(
        TEMPLATE, root, use_postgres="yes", use_redis="yes", use_frontend="yes", use_auth="yes"
    )
    server = Postgres(root / "postgres").init().start()
    try:
        url = server.url(server.create_database("commands"))
        url = url.replace("@", f":{PASSWORD}@", 1)
        env = developer_env(APP_ENV="development", DATABASE_URL=url)
        make(project, env, "install")
        make(project, env, "migrate")  # the URL works while the server runs
    finally:
        server.stop()
    yield project, env, url.replace(PASSWORD, "***")


def expected_line(masked_url: str) -> str:
    """Return how the one line starts: the variable, then the address with its password masked."""
    return f"Error: DATABASE_URL: the database at {masked_url} is not reachable ("


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_command_on_a_stopped_database_prints_one_line(stopped, command):
    """It exits 1 with one line on STDERR naming DATABASE_URL and the address, no password."""
    project, env, masked = stopped
    app = f"{package_name(project)}:create_app()"
    result = subprocess.run(
        [project / ".venv" / "bin" / "flask", "--app", app, *command],
        cwd=project,
        env=env,
        input="a-long-enough-password\n",  # a password, for the commands that read one
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(expected_line(masked)), line
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_a_make_target_on_a_stopped_database_prints_one_line(stopped, target):
    """It stops `make <target>` at the command's one line (make adds only its verdict)."""
    project, env, masked = stopped
    result = attempt(project, env, target)
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith(MAKE_OWN)]
    assert len(lines) == 1 and lines[0].startswith(expected_line(masked)), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
