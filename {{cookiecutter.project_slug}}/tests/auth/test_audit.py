"""The audit trail: an event's row is saved by the commit of the change it records and dropped by
its rollback, and its "audit event" log line is written only once that commit succeeded. Sign-ins
of the API record their failures and tokens with where they came from, never a secret; commands
record with no origin; `flask audit export` prints the trail and `flask audit prune` trims it.
"""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from {{ cookiecutter.package_name }}.auth import audit
from {{ cookiecutter.package_name }}.auth.accounts import User
from {{ cookiecutter.package_name }}.auth.audit import Action, AuditEvent, as_line, record
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform.timestamps import utc_now
from tests.auth.test_api import EMAIL, PASSWORD, add_user, sign_in, token_of
from tests.auth.test_cli import users
from tests.conftest import hash_of

LOGGED = "audit event"


def rows(app) -> list[dict]:
    """Return every stored event as its export's dict, oldest first."""
    with app.app_context():
        return [as_line(row) for row in db.session.scalars(select(AuditEvent).order_by("id"))]


def logged(caplog) -> list[tuple]:
    """Return the (action, user_id, detail) of each "audit event" line logged so far."""
    return [(r.action, r.user_id, r.detail) for r in caplog.records if r.getMessage() == LOGGED]


def add_events(app, *events: tuple[Action, int | None, datetime]) -> None:
    """Store an event per (action, user id, time), in that order."""
    with app.app_context():
        for action, user_id, at in events:
            db.session.add(AuditEvent(action=action, user_id=user_id, at=at))
        db.session.commit()


def test_a_failed_write_leaves_no_row_and_no_line_a_committed_one_both(app, caplog):
    """An event flushed in a transaction whose commit then fails (a duplicate email) is neither
    stored nor logged, not even by the next commit; an event committed is stored and logged once."""
    user_id = add_user(app)
    with caplog.at_level(logging.INFO), app.app_context():
        record(Action.USER_PROMOTED, user_id)
        db.session.flush()  # its line waits for the commit
        db.session.add(User(email=EMAIL, password_hash=hash_of(PASSWORD)))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        assert logged(caplog) == []
        record(Action.USER_DEMOTED, user_id, detail="why")
        db.session.commit()
    assert [(row["action"], row["user_id"], row["detail"]) for row in rows(app)] == [
        ("user_demoted", user_id, "why")
    ]
    assert logged(caplog) == [("user_demoted", user_id, "why")]


def test_an_event_names_its_users_by_plain_ids(app):
    """Its user ids are no foreign keys, in the model and in the database the tests run on:
    checking one locked the user's row as each event was written, so a failed sign-in of a known
    account took longer than one of an unknown address (whose event names no one) in some 60 %
    of served pairs. A removed user's ids stay as they were."""
    assert not AuditEvent.__table__.foreign_keys
    with app.app_context():
        assert inspect(db.engine).get_foreign_keys(AuditEvent.__tablename__) == []


def test_api_sign_ins_record_failures_and_tokens_with_their_origin_never_a_secret(
    app, client, caplog
):
    """A wrong password and an unknown email each record one sign_in_failed, "credentials" (the
    account's id, or None), a right one token_issued, each with the client's address, the
    request's id and its user agent made printable and cut to 200 characters; no row or line
    holds the password or the token."""
    user_id = add_user(app)
    agent = "agent\x7f" + "a" * 494  # 500 characters, one not printable
    sent = {"REMOTE_ADDR": "192.0.2.7"}
    with caplog.at_level(logging.INFO):
        for number, email, password in [
            (0, EMAIL, "a wrong password"),
            (1, "nobody@x.io", PASSWORD),
        ]:
            headers = {"User-Agent": agent, "X-Request-ID": f"request-{number}"}
            answer = sign_in(client, email, password, headers=headers, environ_base=sent)
            assert answer.status_code == 401
        headers = {"User-Agent": agent, "X-Request-ID": "request-2"}
        token = token_of(client, headers=headers, environ_base=sent)
    stored = rows(app)
    assert [(row["action"], row["user_id"], row["detail"]) for row in stored] == [
        ("sign_in_failed", user_id, "credentials"),
        ("sign_in_failed", None, "credentials"),
        ("token_issued", user_id, "password"),
    ]
    assert logged(caplog) == [(row["action"], row["user_id"], row["detail"]) for row in stored]
    for number, row in enumerate(stored):
        assert row["client_address"] == "192.0.2.7"
        assert row["request_id"] == f"request-{number}"
        assert row["user_agent"] == "agent" + "a" * 195
    everything = json.dumps(stored) + " ".join(repr(r.__dict__) for r in caplog.records)
    for secret in (PASSWORD, "a wrong password", token):
        assert secret not in everything


def test_export_prints_json_lines_oldest_first_filtered_by_user_action_and_time(
    app, tmp_path, monkeypatch
):
    """`flask audit export` prints one JSON object per event, oldest first; --user, --action and
    --since keep only the matching ones; --output writes the same lines to a file instead (the
    service's log lines stay on STDOUT) and says how many on STDERR; --output - is STDOUT."""
    ada, grace = add_user(app), add_user(app, "grace@example.com")
    add_events(
        app,
        (Action.USER_CREATED, ada, datetime(2025, 1, 1, tzinfo=UTC)),
        (Action.USER_CREATED, grace, datetime(2025, 1, 2, tzinfo=UTC)),
        (Action.USER_PROMOTED, ada, datetime(2025, 1, 3, tzinfo=UTC)),
    )

    def export(*args: str) -> list[tuple]:
        result = app.test_cli_runner().invoke(args=["audit", "export", *args])
        assert result.exit_code == 0, result.output
        return fields([json.loads(line) for line in result.stdout.splitlines()])

    def fields(lines: list[dict]) -> list[tuple]:
        return [(line["action"], line["user_id"], line["at"][:10]) for line in lines]

    assert export() == [
        ("user_created", ada, "2025-01-01"),
        ("user_created", grace, "2025-01-02"),
        ("user_promoted", ada, "2025-01-03"),
    ]
    assert export("--user", str(ada)) == [
        ("user_created", ada, "2025-01-01"),
        ("user_promoted", ada, "2025-01-03"),
    ]
    assert export("--action", "user_created", "--since", "2025-01-02") == [
        ("user_created", grace, "2025-01-02")
    ]
    kept = tmp_path / "audit.jsonl"
    result = app.test_cli_runner().invoke(args=["audit", "export", "--output", str(kept)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"Wrote 3 audit events to {kept}." in result.stderr
    lines = [json.loads(line) for line in kept.read_text(encoding="utf-8").splitlines()]
    assert fields(lines) == export()
    monkeypatch.chdir(tmp_path)
    assert export("--output", "-") == export()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["audit.jsonl"]


def test_an_export_that_fails_midway_leaves_the_file_as_it_was(app, tmp_path, monkeypatch):
    """When reading the events fails after some were written, --output leaves the file it
    names as it was (here: an older export) and no partial file beside it."""
    add_events(app, (Action.USER_CREATED, add_user(app), datetime(2025, 1, 1, tzinfo=UTC)))
    kept = tmp_path / "audit.jsonl"
    kept.write_text("the older export\n", encoding="utf-8")

    def failing(query):
        yield '{"id": 1}'
        raise OSError("the database went away")

    monkeypatch.setattr(audit, "exported", failing)
    result = app.test_cli_runner().invoke(args=["audit", "export", "--output", str(kept)])
    assert result.exit_code == 1 and "Could not write" in result.output
    assert kept.read_text(encoding="utf-8") == "the older export\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["audit.jsonl"]


def test_prune_drops_the_events_older_than_the_days_kept(make_app):
    """`flask audit prune --days 30` drops the events older than 30 days and keeps the newer;
    without --days it keeps AUDIT_RETENTION_DAYS."""
    app = make_app(audit_retention_days=10)
    now = utc_now()
    add_events(
        app,
        *[(Action.SIGNED_OUT, None, now - timedelta(days=days)) for days in (40, 20, 5)],
    )

    def prune(*args: str) -> list[str]:
        result = app.test_cli_runner().invoke(args=["audit", "prune", *args])
        assert result.exit_code == 0, result.output
        return [row["at"] for row in rows(app)]

    kept = [row["at"] for row in rows(app)]
    assert prune("--days", "30") == kept[1:]
    assert prune() == kept[2:]


def test_a_command_records_with_no_origin(app):
    """`flask users create` records user_created, detail its role, about the new user, with no
    actor and no client address, request id or user agent (no request made it)."""
    result = users(app, "create", "ada@example.com", password=PASSWORD)
    assert result.exit_code == 0, result.output
    with app.app_context():
        user_id = db.session.scalars(select(User.id)).one()
    (row,) = rows(app)
    assert (row["action"], row["user_id"], row["actor_id"], row["detail"]) == (
        "user_created",
        user_id,
        None,
        "user",
    )
    assert (row["client_address"], row["request_id"], row["user_agent"]) == (None, None, None)
