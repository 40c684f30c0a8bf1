"""A developer's daily loop works end to end, through the generated Makefile, on fresh bakes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from developer import request

from . import journeys
from .journeys import COLUMN, add_column, attempt, demo, developer_env, make, new_migrations, page
from .servers import ServerError, wait_until

pytestmark = pytest.mark.xdist_group("journeys")
TEMPLATE = Path(__file__).resolve().parents[2]
SENTINEL = "sentinel: the developer's own row"
PROCESSING_TIMEOUT = 60.0
STRICT_POLICY_PARTS = ("script-src 'self';", "style-src 'self';")
TOOLBAR_MARK = 'id="flDebug"'


def sqlite_columns(path: Path) -> set[str]:
    """Return the column names of the items table in an SQLite file."""
    with sqlite3.connect(path) as connection:
        return {row[1] for row in connection.execute("PRAGMA table_info(items)")}


def postgres_columns(postgres, database: str) -> set[str]:
    """Return the column names of the items table in a PostgreSQL database."""
    with postgres.connect(database) as connection:
        rows = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'items'"
        ).fetchall()
    return {row[0] for row in rows}


def change_the_model(project: Path, env: dict[str, str]) -> list[Path]:
    """Add a column, then `make migration` and `make migrate`; return the new migration files."""
    before = set((project / "migrations" / "versions").glob("*.py"))
    add_column(project)
    make(project, env, "migration", f"m=add {COLUMN}")
    created = new_migrations(project, before)
    assert len(created) == 1, created
    assert COLUMN in created[0].read_text()
    make(project, env, "migrate")
    return created


def assert_production(base: str, pages: bool) -> None:
    """Check that a served instance runs with production settings: no /docs, no debug toolbar.

    With ``pages``, the home page also carries the strict policy (nothing inline).
    """
    assert page(base + "/docs")[0] == 404
    if pages:
        status, headers, text = page(base + "/")
        assert status == 200, text[:500]
        policy = headers["Content-Security-Policy"]
        assert all(part in policy for part in STRICT_POLICY_PARTS), policy
        assert "unsafe-inline" not in policy, policy
        assert TOOLBAR_MARK not in text


def test_sqlite_journey(tmp_path):
    """It installs, serves, takes a schema change through a migration, then tests, on SQLite.

    Beside the demo, `make mail` takes the mail of docs/auth.md's walk (sign-up, confirm, reset),
    whose token then writes an item.
    """
    project = journeys.bake(TEMPLATE, tmp_path, use_postgres="yes", use_redis="yes", use_auth="yes")
    env = developer_env()
    make(project, env, "install")
    mail_log = tmp_path / "mail.log"
    with (
        journeys.mail(project, env, mail_log) as mail_settings,
        demo(
            project, {**env, **mail_settings, "AUTH_SIGN_UP": "true"}, tmp_path / "demo.log"
        ) as base,
    ):
        assert request(base + "/api/items", {"name": "no token"})[0] == 401
        token = journeys.auth_walk(base, mail_log, "ada@example.com")
        status, item = request(base + "/api/items", {"name": "from the demo"}, token)
        assert status == 201, item
        assert_production(base, pages=False)
    database = journeys.sqlite_file(project)
    assert COLUMN not in sqlite_columns(database)
    change_the_model(project, env)
    assert COLUMN in sqlite_columns(database)
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT name FROM items").fetchall() == [("from the demo",)]
    make(project, env, "test")


def processed(base: str, item_id: int, worker_log: Path) -> None:
    """Wait until the item reads as processed; fail with the worker's output if it never does."""

    def done() -> bool:
        return request(f"{base}/api/items/{item_id}")[1].get("status") == "processed"

    try:  # polled twice a second: well within the default read limit
        wait_until(done, PROCESSING_TIMEOUT, "the native worker processing the item", interval=0.5)
    except ServerError as exc:
        raise journeys.StepFailed(f"{exc}\n{worker_log.read_text()[-3000:]}") from None


def item_count(postgres, database: str) -> int:
    """Return how many items a PostgreSQL database holds."""
    with postgres.connect(database) as connection:
        return connection.execute("SELECT count(*) FROM items").fetchone()[0]


def reset_only_when_told(project: Path, env: dict[str, str], postgres, database: str) -> None:
    """Seed, then check `make reset`: refused in production, unanswered keeps, YES=1 drops."""
    make(project, env, "seed")
    seeded = item_count(postgres, database)
    assert seeded >= 3
    refused = attempt(project, {**env, "APP_ENV": "production"}, "reset")
    assert refused.returncode != 0
    assert "refusing to reset the database with APP_ENV=production" in refused.stderr
    assert item_count(postgres, database) == seeded
    unanswered = attempt(project, env, "reset")  # asks, and reads no answer
    assert unanswered.returncode != 0
    assert "Aborted" in unanswered.stderr, unanswered.stdout + unanswered.stderr
    assert item_count(postgres, database) == seeded
    make(project, env, "reset", "YES=1")
    assert item_count(postgres, database) == 0


def test_postgres_and_redis_journey(tmp_path, postgres, redis_server):
    """It runs the loop on real servers; tests spare DATABASE_URL's rows; migrate twice: no-op.

    `make test` runs once, last, on the changed model: the rows it must spare (the sentinel and
    the demo's item) are there by then. `make test` on a fresh bake: the interrupted install below.

    `make worker` runs beside `make demo` and processes the item the demo enqueued; the demo
    serves production settings; `make reset` drops the rows only when the person says yes.
    """
    project = journeys.bake(
        TEMPLATE,
        tmp_path,
        use_postgres="yes",
        use_redis="yes",
        use_celery="yes",
        use_frontend="yes",
    )
    database = postgres.create_database("journey")
    env = developer_env(
        DATABASE_URL=postgres.url(database),
        REDIS_URL=redis_server.url(redis_server.new_db()),
        TEST_DATABASE_URL=postgres.url(postgres.create_database("journey_test")),
        TEST_REDIS_URL=redis_server.url(redis_server.new_db()),
    )
    make(project, env, "install")
    make(project, env, "migrate")
    with postgres.connect(database) as connection:
        connection.execute("INSERT INTO items (name, description) VALUES (%s, '')", (SENTINEL,))
    worker_log = tmp_path / "worker.log"
    with (
        journeys.background(project, env, "worker", worker_log),
        demo(project, env, tmp_path / "demo.log") as base,
    ):
        assert request(base + "/readyz")[0] == 200
        status, item = request(base + "/api/items", {"name": "from the demo"})
        assert status == 201, item
        assert item["status"] == "pending", item  # REDIS_URL is set: the task waits in Redis
        processed(base, item["id"], worker_log)
        assert_production(base, pages=True)
    assert COLUMN not in postgres_columns(postgres, database)
    change_the_model(project, env)
    assert COLUMN in postgres_columns(postgres, database)
    with postgres.connect(database) as connection:
        head = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    again = make(project, env, "migrate")
    assert "Running upgrade" not in again.stdout + again.stderr
    with postgres.connect(database) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == head
    make(project, env, "test")
    with postgres.connect(database) as connection:
        names = [row[0] for row in connection.execute("SELECT name FROM items ORDER BY id")]
    assert names == [SENTINEL, "from the demo"]
    reset_only_when_told(project, env, postgres, database)


def test_an_interrupted_install_is_repaired_by_the_next_task(tmp_path):
    """It finishes the install on `make test` after uv failed (offline, nothing in its cache)."""
    project = journeys.bake(TEMPLATE, tmp_path, use_postgres="no", use_redis="no")
    (tmp_path / "empty-cache").mkdir()
    unreachable = developer_env(UV_CACHE_DIR=str(tmp_path / "empty-cache"))
    with pytest.raises(journeys.StepFailed):
        make(project, unreachable, "install")
    result = make(project, developer_env(), "test")
    assert " passed" in result.stdout
