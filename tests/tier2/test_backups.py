"""Backups are proven by restoring them: `make backup` and `make restore` on a real PostgreSQL.

One bake with every feature that keeps rows (items, users and their tokens) and a worker; each
test has a database of its own, backed up and restored through its Makefile as the developer
would, natively (DATABASE_URL names the server). One database is filled through the project's own
commands, once, and the tests that start from a filled one get a copy of it (PostgreSQL's
TEMPLATE, as a deployment's copies are made in tests/tier2/servers.py).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from project_files import package_name

from . import journeys
from .journeys import attempt, developer_env, make
from .servers import bounded_iterations, postgres_bin, wait_until

pytestmark = pytest.mark.xdist_group("journeys")
TEMPLATE = Path(__file__).resolve().parents[2]
EMAIL = "owner@example.com"
PASSWORD = "a-long-enough-password"
BACKED_UP = re.compile(r"^Backed up \S+ into (\S+) \(", re.M)
# A migration before the users table, and the newest: the revision of the template's newest
# migration file (the bake has every migration: PostgreSQL, users and pages).
MIGRATIONS = TEMPLATE / "{{cookiecutter.project_slug}}" / "migrations" / "versions"
OLDER_HEAD = "0002"
HEAD = re.findall(r'^revision = "(\w+)"$', max(MIGRATIONS.glob("*.py")).read_text(), re.M)[0]
REFUSED = "is not a complete backup (truncated or corrupt?): nothing was changed"
RESTORE_STARTED = "Restoring "
WRITE_SECONDS = 60.0
READY_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Bake and install a project with items, users, pages (`make seed`) and a worker."""
    root = tmp_path_factory.mktemp("backups")
    answers = {"use_postgres": "yes", "use_redis": "yes", "use_celery": "yes"}
    project = journeys.bake(TEMPLATE, root, use_frontend="yes", use_auth="yes", **answers)
    make(project, developer_env(), "install")
    return project


def database_env(postgres, redis_server, database: str) -> dict[str, str]:
    """Return a developer's environment naming ``database`` and a fresh Redis database."""
    env = developer_env(
        DATABASE_URL=postgres.url(database),
        REDIS_URL=redis_server.url(redis_server.new_db()),
    )
    # The client tools of the server's own version first, as docs/operations.md asks.
    env["PATH"] = f"{postgres_bin()}{os.pathsep}{env['PATH']}"
    env["DATABASE_NAME"] = database  # for the test's own queries; the project reads no such name
    return env


@pytest.fixture
def empty_env(postgres, redis_server) -> dict[str, str]:
    """Return a developer's environment naming a fresh, empty database."""
    return database_env(postgres, redis_server, postgres.create_database("backups"))


@pytest.fixture(scope="module")
def filled_database(project, postgres, redis_server) -> str:
    """Return a database filled through the project's commands (fill), which no one connects to."""
    database = postgres.create_database("backups_filled")
    fill(project, database_env(postgres, redis_server, database))
    return database


@pytest.fixture
def env(postgres, redis_server, filled_database) -> dict[str, str]:
    """Return a developer's environment naming a fresh copy of the filled database."""
    copy = postgres.create_database("backups", template=filled_database)
    return database_env(postgres, redis_server, copy)


def flask(project: Path, env: dict[str, str], *args: str, stdin: str = "") -> str:
    """Run the project's flask command with ``args``; return its output, failing unless it works."""
    argv = [project / ".venv" / "bin" / "flask", "--app", f"{package_name(project)}:create_app()"]
    result = subprocess.run(
        [*argv, *args], cwd=project, env=env, input=stdin, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fill(project: Path, env: dict[str, str]) -> None:
    """Migrate, add the example items and a user, as the project's commands do."""
    make(project, env, "seed")
    flask(project, env, "users", "create", EMAIL, stdin=f"{PASSWORD}\n")


def snapshot(postgres, database: str) -> dict[str, list[tuple]]:
    """Return every table's rows in order (alembic_version: the migration it is at)."""
    with postgres.connect(database) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' ORDER BY table_name"
            )
        ]
        rows = {t: connection.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}
    return rows


def backup(project: Path, env: dict[str, str]) -> Path:
    """Run `make backup`; return the file it says it wrote, readable by its owner only."""
    result = make(project, env, "backup")
    (name,) = BACKED_UP.findall(result.stdout)
    path = project / name
    assert path.is_file(), result.stdout
    modes = stat.S_IMODE(path.stat().st_mode), stat.S_IMODE(path.parent.stat().st_mode)
    assert modes == (0o600, 0o700), [oct(mode) for mode in modes]
    return path


def restore(project: Path, env: dict[str, str], file: Path) -> subprocess.CompletedProcess:
    """Run `make restore FILE=... YES=1`, failing unless it works."""
    return make(project, env, "restore", f"FILE={file}", "YES=1")


def test_a_backup_restores_every_row_after_the_tables_are_dropped(project, env, postgres):
    """It restores every table's rows and the migration after `make reset` dropped them; it
    replaces nothing unanswered, nor with APP_ENV=production unless explicitly allowed."""
    database = env["DATABASE_NAME"]
    before = snapshot(postgres, database)
    assert before["users"] and before["items"] and before["alembic_version"] == [(HEAD,)]
    file = backup(project, env)
    assert re.fullmatch(rf"{database}_\d{{8}}T\d{{6}}Z_{HEAD}\.dump", file.name), file.name
    assert str(file.relative_to(project)) in make(project, env, "backups").stdout
    make(project, env, "reset", "YES=1")
    emptied = snapshot(postgres, database)
    assert emptied["items"] == []
    unanswered = attempt(project, env, "restore", f"FILE={file}")
    assert unanswered.returncode != 0
    assert "it asks first, and has no terminal to ask" in unanswered.stderr
    production = {**env, "APP_ENV": "production", "SECRET_KEY": "s" * 40}
    refused = attempt(project, production, "restore", f"FILE={file}", "YES=1")
    assert refused.returncode != 0
    assert "refusing to restore with APP_ENV=production" in refused.stderr
    assert snapshot(postgres, database) == emptied
    restore(project, {**production, "ALLOW_PRODUCTION_RESTORE": "1"}, file)
    assert snapshot(postgres, database) == before


def test_a_backup_restores_a_dropped_database(project, env, postgres):
    """It creates the database again when it was dropped, with every row and the migration."""
    database = env["DATABASE_NAME"]
    before = snapshot(postgres, database)
    file = backup(project, env)
    with postgres.connect("postgres") as connection:
        connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    restore(project, env, file)
    assert snapshot(postgres, database) == before


def damaged(file: Path, how: str) -> Path:
    """Write a truncated or a corrupt copy of ``file`` beside it; return the copy."""
    data = file.read_bytes()
    if how == "truncated":
        data = data[: len(data) * 9 // 10]
    else:  # the last data blocks, scrambled
        end = len(data) - 200
        data = data[: end - 400] + bytes(byte ^ 0x5A for byte in data[end - 400 : end]) + data[end:]
    copy = file.with_name(f"{how}-{file.name}")
    copy.write_bytes(data)
    return copy


def test_a_damaged_backup_is_refused_before_anything_is_dropped(project, env, postgres):
    """It refuses a truncated or a corrupt file in one line, and every row stays as it was."""
    database = env["DATABASE_NAME"]
    file = backup(project, env)
    flask(project, env, "users", "create", "later@example.com", stdin=f"{PASSWORD}\n")
    before = snapshot(postgres, database)
    for how in ("truncated", "corrupt"):
        copy = damaged(file, how)
        result = attempt(project, env, "restore", f"FILE={copy}", "YES=1")
        assert result.returncode != 0
        assert f"{copy} {REFUSED}" in result.stderr, result.stderr
        assert snapshot(postgres, database) == before


def test_an_older_backup_is_migrated_and_served(project, empty_env, postgres, tmp_path):
    """A backup from before the last migration is restored, migrated to the head and served."""
    database = empty_env["DATABASE_NAME"]
    flask(project, empty_env, "db", "upgrade", OLDER_HEAD)
    names = [f"kept from {OLDER_HEAD}: {index}" for index in range(3)]
    with postgres.connect(database) as connection:  # the code's models are at the head
        for name in names:
            connection.execute("INSERT INTO items (name, description) VALUES (%s, '')", (name,))
    file = backup(project, empty_env)
    assert file.name.endswith(f"_{OLDER_HEAD}.dump"), file.name
    fill(project, empty_env)  # migrates to the head, and adds a user the old backup does not have
    restore(project, empty_env, file)
    after = snapshot(postgres, database)
    assert after["alembic_version"] == [(HEAD,)]
    assert [row[1] for row in after["items"]] == names and after["users"] == []
    with journeys.demo(project, empty_env, tmp_path / "demo.log") as base:
        answer = requests.get(f"{base}/api/items", timeout=5)
        assert answer.status_code == 200, answer.text
        assert sorted(item["name"] for item in answer.json()["items"]) == names


def test_old_backups_are_pruned_past_the_retention(project, empty_env):
    """With BACKUP_KEEP=2 a third backup deletes the oldest; `make backups` lists the rest.
    A DATABASE_URL that names SQLite gets one line, not libpq's error."""
    kept = {**empty_env, "BACKUP_KEEP": "2"}
    make(project, kept, "migrate")
    files = []
    for _ in range(3):
        files.append(backup(project, kept))
        time.sleep(1.1)  # names carry the time to the second
    assert not files[0].exists() and files[1].exists() and files[2].exists()
    listed = make(project, kept, "backups").stdout
    assert files[0].name not in listed and files[2].name in listed
    sqlite = attempt(project, {**empty_env, "DATABASE_URL": "sqlite:///local.db"}, "backup")
    assert sqlite.returncode != 0
    assert "DATABASE_URL names no PostgreSQL database" in sqlite.stderr, sqlite.stderr


# A psql that raises PostgreSQL's deadlock error (SQLSTATE 40P01) in the restore's transaction,
# after its DROP SCHEMA, in the first DEADLOCKS restores (it counts them in COUNT).
DEADLOCKING_PSQL = """#!/bin/sh
case " $* " in *" --output=/dev/null "*) ;; *) exec "$REAL_PSQL" "$@" ;; esac
count=$(cat "$COUNT" 2>/dev/null || echo 0)
echo $((count + 1)) >"$COUNT"
[ "$count" -lt "$DEADLOCKS" ] || exec "$REAL_PSQL" "$@"
sed '/^DROP SCHEMA public CASCADE;$/a\\
DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '"'40P01'"', MESSAGE = '"'deadlock detected'"'; END $$;
' | "$REAL_PSQL" "$@"
"""


def test_a_restore_that_deadlocks_starts_again_and_gives_up_after_3_attempts(
    project, env, postgres, tmp_path
):
    """A restore the server ends in a deadlock changes nothing and starts again, 3 times in all."""
    database = env["DATABASE_NAME"]
    file = backup(project, env)
    backed_up = snapshot(postgres, database)
    flask(project, env, "users", "create", "later@example.com", stdin=f"{PASSWORD}\n")
    before = snapshot(postgres, database)
    wrapper = tmp_path / "bin" / "psql"
    wrapper.parent.mkdir()
    wrapper.write_text(DEADLOCKING_PSQL)
    wrapper.chmod(0o755)
    count = tmp_path / "restores"
    env = {
        **env,
        "PATH": f"{wrapper.parent}{os.pathsep}{env['PATH']}",
        "REAL_PSQL": str(Path(postgres_bin()) / "psql"),
        "COUNT": str(count),
    }
    refused = attempt(project, {**env, "DEADLOCKS": "9"}, "restore", f"FILE={file}", "YES=1")
    assert refused.returncode != 0 and count.read_text().strip() == "3", refused.stderr
    assert "deadlocked 3 times with the app's sessions: nothing was changed" in refused.stderr
    assert snapshot(postgres, database) == before
    count.unlink()
    restored = restore(project, {**env, "DEADLOCKS": "1"}, file)
    assert "40P01: deadlock detected" in restored.stderr, restored.stderr
    assert "attempt 2 of 3" in restored.stderr and count.read_text().strip() == "2"
    assert snapshot(postgres, database) == backed_up != before


class Writer(threading.Thread):
    """Create items through the API, one after another, recording each answered write."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base, self.token = base, token
        self.stop = threading.Event()
        self.acknowledged: list[tuple[float, str]] = []  # (when the request was sent, name)

    def run(self) -> None:
        """Write until told to stop (or a bounded time passed)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        for index in bounded_iterations(WRITE_SECONDS, 100_000):
            if self.stop.is_set():
                return
            name, sent = f"write {index}", time.monotonic()
            try:
                answer = requests.post(
                    f"{self.base}/api/items", json={"name": name}, headers=headers, timeout=10
                )
            except requests.RequestException:
                continue
            if answer.status_code == 201:
                self.acknowledged.append((sent, name))
            time.sleep(0.02)


def restore_watched(project: Path, env: dict[str, str], file: Path) -> tuple[float, str]:
    """Run `make restore` and return when it said the restore began, and its output."""
    began, lines = None, []
    with subprocess.Popen(
        ["make", "--no-print-directory", "restore", f"FILE={file}", "YES=1"],
        cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    ) as process:  # fmt: skip
        for line in process.stdout:
            lines.append(line)
            if began is None and line.startswith(RESTORE_STARTED):
                began = time.monotonic()
        assert process.wait(timeout=journeys.MAKE_TIMEOUT) == 0, "".join(lines)
    assert began is not None, "".join(lines)
    return began, "".join(lines)


def test_a_restore_while_the_service_runs_loses_no_later_write(project, env, postgres, tmp_path):
    """Writes the service acknowledged after the restore began are all kept; it is ready after.

    The demo and a worker run throughout; the restore ends their sessions, and their writes wait
    for it (or fail, unacknowledged) instead of landing in tables it then replaces.
    """
    env = {**env, "RATELIMIT_WRITE": "100000 per minute"}  # the writer is one client
    with (
        journeys.background(project, env, "worker", tmp_path / "worker.log"),
        journeys.demo(project, env, tmp_path / "demo.log") as base,
    ):
        token = requests.post(
            f"{base}/api/auth/tokens", json={"email": EMAIL, "password": PASSWORD}, timeout=10
        ).json()["token"]
        file = backup(project, env)  # the token is in it
        writer = Writer(base, token)
        writer.start()
        try:
            wait_until(lambda: len(writer.acknowledged) >= 5, 30, "writes before the restore")
            began, output = restore_watched(project, env, file)
            wait_until(
                lambda: writer.acknowledged[-1][0] > began + 1,
                READY_TIMEOUT,
                "writes acknowledged after the restore",
            )
        finally:
            writer.stop.set()
            writer.join(timeout=20)
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
    later = {name for sent, name in writer.acknowledged if sent > began}
    with postgres.connect(env["DATABASE_NAME"]) as connection:
        stored = {row[0] for row in connection.execute("SELECT name FROM items")}
    assert later, output
    assert later <= stored, sorted(later - stored)
