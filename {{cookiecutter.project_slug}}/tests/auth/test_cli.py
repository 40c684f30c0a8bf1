"""`flask users create|password|promote|demote|deactivate EMAIL`: the password comes from
standard input only, never from the command line; a new password or a deactivation revokes every
token; one active admin always stays."""

import logging
import os
import pty
import select as io_select
import subprocess
import sys
{%- if cookiecutter.use_postgres == "yes" %}
import threading
{%- endif %}
import time
from datetime import timedelta

{% if cookiecutter.use_postgres == "yes" -%}
import click
{% endif -%}
import pytest
from sqlalchemy import func, select{% if cookiecutter.use_postgres == "yes" %}, text{% endif %}

from {{ cookiecutter.package_name }}.auth.accounts import (
    Role,
    User,
    authenticate,
    issue_token,
    user_for_token,
)
from {{ cookiecutter.package_name }}.auth.audit import {% if cookiecutter.use_postgres == "yes" %}Action, {% endif %}AuditEvent
{%- if cookiecutter.use_postgres == "yes" %}
from {{ cookiecutter.package_name }}.auth.cli import not_the_last_admin, save_role
{%- endif %}
from {{ cookiecutter.package_name }}.extensions import db
from tests.conftest import PROJECT, SECRET

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long password"


def users(app, *args, password=None):
    """Run ``flask users ARGS`` with ``password`` (and a newline) on standard input."""
    stdin = None if password is None else password + "\n"
    return app.test_cli_runner().invoke(args=["users", *args], input=stdin)


def signs_in(app, email, password) -> bool:
    """Say whether ``email`` and ``password`` sign in."""
    with app.app_context():
        return authenticate(email, password) is not None


def user_count(app) -> int:
    """Return how many users are stored."""
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(User)).scalar_one()


def test_create_reads_the_password_from_standard_input(app):
    """It stores the user under the normalised email with a hash of the password read."""
    result = users(app, "create", " Ada@Example.com ", password=PASSWORD)
    assert result.exit_code == 0, result.output
    assert "Created user ada@example.com" in result.output
    assert PASSWORD not in result.output
    assert signs_in(app, "ada@example.com", PASSWORD)
    with app.app_context():
        stored = db.session.scalars(select(User)).one()
        assert stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash


def test_create_takes_no_password_on_the_command_line(app):
    """It has no option or argument for the password: ``ps`` and histories would show it."""
    result = users(app, "create", "ada@example.com", "--password", PASSWORD)
    assert result.exit_code == 2
    result = users(app, "create", "ada@example.com", PASSWORD)
    assert result.exit_code == 2
    assert user_count(app) == 0


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("ada@example.com", "short", "8 to 1024 characters"),
        ("ada@example.com", "", "8 to 1024 characters"),
        ("ada", PASSWORD, "not an email address"),
        ("a@evil.example,victim@example.com", PASSWORD, "not an email address"),
        ("Ada <ada@example.com>", PASSWORD, "not an email address"),
        ("x<attacker@evil.example>@bank.example", PASSWORD, "not an email address"),
        ("ada@example.com.", PASSWORD, "not an email address"),
    ],
)
def test_create_refuses_an_unfit_email_or_password(app, email, password, message):
    """It stops with one line and status 1, storing nothing: an address is one plain address,
    as sign-up and reset take it."""
    result = users(app, "create", email, password=password)
    assert result.exit_code == 1
    assert message in result.output
    assert user_count(app) == 0


def test_create_refuses_an_existing_email(app):
    """It never overwrites an account: changing a password is its own command."""
    users(app, "create", "ada@example.com", password=PASSWORD)
    result = users(app, "create", "ADA@example.com", password=NEW_PASSWORD)
    assert result.exit_code == 1
    assert "exists" in result.output
    assert signs_in(app, "ada@example.com", PASSWORD)
    assert not signs_in(app, "ada@example.com", NEW_PASSWORD)


def test_password_changes_it_and_revokes_the_tokens(app):
    """It sets the new password, refuses the old one, and ends the user's tokens."""
    users(app, "create", "ada@example.com", password=PASSWORD)
    with app.app_context():
        token, _ = issue_token(db.session.scalars(select(User)).one(), timedelta(hours=1))
    result = users(app, "password", "ada@example.com", password=NEW_PASSWORD)
    assert result.exit_code == 0, result.output
    assert signs_in(app, "ada@example.com", NEW_PASSWORD)
    assert not signs_in(app, "ada@example.com", PASSWORD)
    with app.app_context():
        assert user_for_token(token) is None
        assert db.session.scalars(select(User)).one().login_generation == 1


def test_deactivate_ends_sign_in_and_tokens(app):
    """It keeps the user, inactive: the right password no longer signs in, its token is refused."""
    users(app, "create", "ada@example.com", password=PASSWORD)
    with app.app_context():
        token, _ = issue_token(db.session.scalars(select(User)).one(), timedelta(hours=1))
    result = users(app, "deactivate", "Ada@example.com")
    assert result.exit_code == 0, result.output
    assert not signs_in(app, "ada@example.com", PASSWORD)
    with app.app_context():
        assert user_for_token(token) is None
        assert db.session.scalars(select(User)).one().is_active is False


def test_reactivate_lets_a_deactivated_user_sign_in_again(app):
    """It refuses an active user; a deactivated one signs in again, its old token still ended,
    and the trail has both events."""
    users(app, "create", "ada@example.com", password=PASSWORD)
    assert users(app, "reactivate", "ada@example.com").exit_code == 1
    with app.app_context():
        token, _ = issue_token(db.session.scalars(select(User)).one(), timedelta(hours=1))
    users(app, "deactivate", "ada@example.com")
    result = users(app, "reactivate", "Ada@example.com")
    assert result.exit_code == 0, result.output
    assert signs_in(app, "ada@example.com", PASSWORD)
    with app.app_context():
        assert user_for_token(token) is None
        actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["user_created", "user_deactivated", "user_reactivated"]


def role_of(app, email: str) -> str:
    """Return the stored role of the user with this (stored) address."""
    with app.app_context():
        return db.session.scalars(select(User.role).where(User.email == email)).one()


def test_create_makes_a_user_unless_asked_for_an_admin(app):
    """A new user is a user; with --admin, an admin; the output says which."""
    result = users(app, "create", "ada@example.com", password=PASSWORD)
    assert "Created user ada@example.com" in result.output
    result = users(app, "create", "grace@example.com", "--admin", password=PASSWORD)
    assert result.exit_code == 0, result.output
    assert "Created admin grace@example.com" in result.output
    assert role_of(app, "ada@example.com") == Role.USER
    assert role_of(app, "grace@example.com") == Role.ADMIN


def test_promote_and_demote_change_the_role(app):
    """Promote makes a user an admin; demote makes it a user again while another admin stays."""
    users(app, "create", "root@example.com", "--admin", password=PASSWORD)
    users(app, "create", "ada@example.com", password=PASSWORD)
    result = users(app, "promote", "ADA@example.com")
    assert result.exit_code == 0, result.output
    assert role_of(app, "ada@example.com") == Role.ADMIN
    result = users(app, "demote", "ada@example.com")
    assert result.exit_code == 0, result.output
    assert role_of(app, "ada@example.com") == Role.USER


@pytest.mark.parametrize("command", ["demote", "deactivate"])
def test_the_last_active_admin_stays_one(app, command):
    """It refuses to demote or deactivate the only active admin (an inactive admin does not
    count), with status 1 and what to do; once another is promoted, it goes ahead."""
    users(app, "create", "root@example.com", "--admin", password=PASSWORD)
    users(app, "create", "old@example.com", "--admin", password=PASSWORD)
    users(app, "create", "ada@example.com", password=PASSWORD)
    with app.app_context():
        old = db.session.scalars(select(User).where(User.email == "old@example.com")).one()
        old.is_active = False
        db.session.commit()
    result = users(app, command, "root@example.com")
    assert result.exit_code == 1
    assert "root@example.com is the last active admin: promote another" in result.output
    assert role_of(app, "root@example.com") == Role.ADMIN
    assert signs_in(app, "root@example.com", PASSWORD)
    users(app, "promote", "ada@example.com")
    result = users(app, command, "root@example.com")
    assert result.exit_code == 0, result.output


{%- if cookiecutter.use_postgres == "yes" %}


needs_postgres = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="needs a PostgreSQL server (row locks): set TEST_DATABASE_URL",
)
LOCK_WAIT_SECONDS = 10.0


def waiting_for_a_lock(app) -> int:
    """Return how many sessions of the test database wait for a lock now."""
    with app.app_context(), db.engine.connect() as connection:
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        return connection.execute(text(waiting + " AND wait_event_type = 'Lock'")).scalar_one()


@needs_postgres
def test_two_admins_demoting_each_other_at_once_leave_one(app):
    """Of two admins each demoting the other, the second's check waits for the first's change
    and refuses: one admin stays (the check locks the admins' rows until the commit)."""
    users(app, "create", "root@example.com", "--admin", password=PASSWORD)
    users(app, "create", "ada@example.com", "--admin", password=PASSWORD)
    first_checked, second_waits = threading.Event(), threading.Event()
    refused: list[str] = []

    def demote(address: str, other_checked: threading.Event | None) -> None:
        """Demote ``address`` as the command does, between its check and its commit."""
        if other_checked is not None:
            other_checked.wait(LOCK_WAIT_SECONDS)
        with app.app_context():
            user = db.session.scalars(select(User).where(User.email == address)).one()
            try:
                not_the_last_admin(address, user)
            except click.ClickException as exc:
                refused.append(exc.message)
                db.session.rollback()
                return
            if other_checked is None:  # the first: commit once the second waits for it
                first_checked.set()
                second_waits.wait(LOCK_WAIT_SECONDS)
            save_role(address, user, Role.USER, Action.USER_DEMOTED)

    threads = [
        threading.Thread(target=demote, args=("root@example.com", None)),
        threading.Thread(target=demote, args=("ada@example.com", first_checked)),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not waiting_for_a_lock(app) and time.monotonic() < deadline:
        time.sleep(0.02)
    waited = waiting_for_a_lock(app) > 0
    second_waits.set()
    for thread in threads:
        thread.join(LOCK_WAIT_SECONDS)
    assert waited, "the second check did not wait for the first's lock"
    assert refused == ["ada@example.com is the last active admin: promote another user first"]
    assert role_of(app, "root@example.com") == Role.USER
    assert role_of(app, "ada@example.com") == Role.ADMIN
{%- endif %}


def test_promote_refuses_an_unconfirmed_address(app):
    """An account whose address nobody proved may be someone else's, made before its owner came:
    it stays a user."""
    with app.app_context():
        db.session.add(User(email="ada@example.com", password_hash="unused"))
        db.session.commit()
    result = users(app, "promote", "ada@example.com")
    assert result.exit_code == 1
    assert "ada@example.com is not confirmed" in result.output
    assert role_of(app, "ada@example.com") == Role.USER


@pytest.mark.parametrize("command", ["password", "promote", "demote", "deactivate"])
def test_an_unknown_user_is_an_error(app, command):
    """It says there is no such user, with status 1."""
    result = users(app, command, "nobody@example.com", password=PASSWORD)
    assert result.exit_code == 1
    assert "no user nobody@example.com" in result.output


def test_no_password_or_hash_is_logged(app, caplog):
    """It logs that users changed, by id, never a password or a hash."""
    with caplog.at_level(logging.DEBUG):
        users(app, "create", "ada@example.com", password=PASSWORD)
        users(app, "password", "ada@example.com", password=NEW_PASSWORD)
        users(app, "promote", "ada@example.com")
        users(app, "create", "grace@example.com", "--admin", password=PASSWORD)
        users(app, "demote", "ada@example.com")
        users(app, "deactivate", "ada@example.com")
        signs_in(app, "ada@example.com", NEW_PASSWORD)
    with app.app_context():
        ada = select(User.password_hash).where(User.email == "ada@example.com")
        stored = db.session.scalars(ada).one()
    assert stored is not None
    logged = " ".join(repr(record.__dict__) for record in caplog.records)
    for event in ("user_created", "user_promoted", "user_demoted", "user_deactivated"):
        assert event in logged
    for secret in (PASSWORD, NEW_PASSWORD, stored, "$argon2"):
        assert secret not in logged


def talk(main: int, answers: list[str], timeout: float = 90.0) -> str:
    """Read a terminal's output until it closes, typing each answer after a prompt ends in ": ";
    return all it showed. The bound is generous: on a loaded machine, starting Python and the app
    for the command took over 30 s."""
    shown, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = io_select.select([main], [], [], max(0.0, deadline - time.monotonic()))
        try:
            chunk = os.read(main, 1024).decode() if ready else ""
        except OSError:  # the other side closed: the command ended
            return shown
        shown += chunk
        if answers and shown.rstrip(" ").endswith(":"):
            os.write(main, (answers.pop(0) + "\n").encode())
    raise AssertionError(f"the command did not end in {timeout:.0f}s: {shown!r}")


def test_on_a_terminal_the_password_is_asked_twice_and_not_shown(app, settings_overrides, tmp_path):
    """It prompts for the password and its confirmation on a terminal without echoing either."""
    main, secondary = pty.openpty()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(PROJECT),
        "APP_ENV": "development",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": settings_overrides["database_url"],
    }
    flask = [sys.executable, "-m", "flask", "--app", "{{ cookiecutter.package_name }}:create_app()"]
    command = [*flask, "users", "create", "ada@example.com"]
    with subprocess.Popen(  # noqa: S603  (this Python, fixed arguments)
        command, stdin=secondary, stdout=secondary, stderr=secondary, env=env, cwd=tmp_path
    ) as process:
        os.close(secondary)
        try:
            shown = talk(main, [PASSWORD, PASSWORD])
        finally:
            os.close(main)
        assert process.wait(timeout=30) == 0, shown
    assert shown.count("Password:") == 1
    assert "Repeat for confirmation:" in shown
    assert PASSWORD not in shown
    assert signs_in(app, "ada@example.com", PASSWORD)
