"""The audit trail: a row for each security event of an account, written in the same transaction
as the change it records (a failed write leaves no row claiming it happened), and one JSON log
line for it once that transaction commits.

A row says what happened (``action``, and a reason class in ``detail``), to whom (``user_id``),
who did it (``actor_id``: an admin; none for the user themself or a command), when, and from
where: the client's address, the request's id and its user agent (cut short). Never a password,
a token, a code or a link. Rows are kept AUDIT_RETENTION_DAYS; ``flask audit prune`` drops older
ones (a scheduled job runs it: docs/auth.md) and ``flask audit export`` prints them as JSON
lines.
"""

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app, g, has_request_context, request
from flask.cli import AppGroup
from sqlalchemy import DateTime, Index, Select, String, delete, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..extensions import db
from ..platform.database import rows_changed
from ..platform.timestamps import as_utc, iso_utc, utc_now
from .accounts import User

log = logging.getLogger(__name__)
PENDING = "audit_pending"  # the session's info key: the lines of rows flushed, not committed yet
MAX_USER_AGENT = 200
MAX_ADDRESS = 64  # an IPv6 address with a zone fits


class Action(StrEnum):
    """What an event records; docs/auth.md says what each means."""

    SIGNED_IN = "signed_in"  # detail: how (password, code, ...)
    SIGN_IN_FAILED = "sign_in_failed"  # detail: why (credentials, code, unverified)
    SIGNED_OUT = "signed_out"
    # The API's sign-in, a sign-out, and passwords (an event's name, never a secret: S105)
    TOKEN_ISSUED = "token_issued"  # noqa: S105
    TOKEN_REVOKED = "token_revoked"  # noqa: S105
    PASSWORD_CHANGED = "password_changed"  # noqa: S105
    PASSWORD_RESET = "password_reset"  # noqa: S105  # by a mailed link
    RESET_MAILED = "reset_mailed"  # by an admin
    ADDRESS_CONFIRMED = "address_confirmed"
    SECOND_FACTOR_ON = "second_factor_on"
    SECOND_FACTOR_OFF = "second_factor_off"
    {%- if cookiecutter.use_frontend == "yes" %}
    PASSKEY_ADDED = "passkey_added"
    PASSKEY_REMOVED = "passkey_removed"
    IDENTITY_LINKED = "identity_linked"  # an account at the single sign-on provider
    IDENTITY_UNLINKED = "identity_unlinked"
    {%- endif %}
    USER_CREATED = "user_created"
    USER_DEACTIVATED = "user_deactivated"
    USER_REACTIVATED = "user_reactivated"
    USER_PROMOTED = "user_promoted"
    USER_DEMOTED = "user_demoted"
    SESSIONS_ENDED = "sessions_ended"  # every token and browser session, by an admin


class AuditEvent(db.Model):  # type: ignore[name-defined, misc]  # made at run time: mypy#8603
    """One security event. Its user ids are plain columns, not foreign keys: a row never changes
    once written, and writing one locks no user's row (with a key to check, a failed sign-in of
    a known account took longer than one of an unknown address, whose row names no one)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_user_id_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[int | None]
    actor_id: Mapped[int | None]
    detail: Mapped[str | None] = mapped_column(String(32))
    client_address: Mapped[str | None] = mapped_column(String(MAX_ADDRESS))
    request_id: Mapped[str | None] = mapped_column(String(128))
    user_agent: Mapped[str | None] = mapped_column(String(MAX_USER_AGENT))


def origin() -> dict[str, str | None]:
    """Return where the current request came from; nothing outside one (a command)."""
    if not has_request_context():
        return {"client_address": None, "request_id": None, "user_agent": None}
    agent = "".join(c for c in request.user_agent.string if c.isprintable())
    return {
        "client_address": (request.remote_addr or "")[:MAX_ADDRESS] or None,
        "request_id": g.get("request_id"),
        "user_agent": agent[:MAX_USER_AGENT] or None,
    }


def id_of(user: User | int | None) -> int | None:
    """Return a user's id (flushed first when the user is new in this transaction)."""
    if isinstance(user, User) and user in db.session.new:
        db.session.flush()
    return user.id if isinstance(user, User) else user


def record(
    action: Action, user: User | int | None, actor: User | None = None, detail: str | None = None
) -> None:
    """Add an event about ``user`` (or their id; None: no account) to the session: the commit
    that saves the change it records saves it too, and a rollback drops both."""
    user_id, actor_id = id_of(user), id_of(actor)
    db.session.add(
        AuditEvent(action=action, user_id=user_id, actor_id=actor_id, detail=detail, **origin())
    )


def as_line(row: AuditEvent) -> dict[str, Any]:
    """Return an event as a JSON-ready dict: its export, and its log line's fields."""
    return {
        "id": row.id,
        "at": iso_utc(row.at),
        "action": row.action,
        "user_id": row.user_id,
        "actor_id": row.actor_id,
        "detail": row.detail,
        "client_address": row.client_address,
        "request_id": row.request_id,
        "user_agent": row.user_agent,
    }


def keep_flushed(session: Session, _context: object) -> None:
    """After a flush: keep the lines of the events it wrote, to log once they are committed."""
    rows = [as_line(row) for row in session.new if isinstance(row, AuditEvent)]
    if rows:
        session.info.setdefault(PENDING, []).extend(rows)


def log_committed(session: Session) -> None:
    """After a commit: log each event it saved, as one line (the request's id is the log's)."""
    for line in session.info.pop(PENDING, []):
        fields = {key: line[key] for key in ("action", "user_id", "actor_id", "detail")}
        log.info("audit event", extra=fields)


def forget_rolled_back(session: Session, _transaction: object = None) -> None:
    """After a rollback: its events were never saved, so never logged."""
    session.info.pop(PENDING, None)


def events(
    user_id: int | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor_id: int | None = None,
) -> Select[AuditEvent]:
    """Return the query of the events matching each filter given, newest first."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return query


def recent(user: User, count: int = 10) -> list[AuditEvent]:
    """Return the newest ``count`` events of ``user``'s account (their security page)."""
    return list(db.session.scalars(events(user_id=user.id).limit(count)))


def prune(days: int) -> int:
    """Drop the events older than ``days`` days; return how many."""
    cutoff = utc_now() - timedelta(days=days)
    dropped = rows_changed(db.session.execute(delete(AuditEvent).where(AuditEvent.at < cutoff)))
    db.session.commit()
    return dropped


def exported(query: Select[AuditEvent]) -> Iterator[str]:
    """Yield each event of ``query`` as a JSON line, read in batches (a long trail fits)."""
    for row in db.session.scalars(query.execution_options(yield_per=500)):
        yield json.dumps(as_line(row), ensure_ascii=False)


audit_cli = AppGroup("audit", help="Prune and export the audit trail.")


@audit_cli.command("prune")
@click.option(
    "--days", type=click.IntRange(1, 36_500), help="Keep this many days (AUDIT_RETENTION_DAYS)."
)
def prune_command(days: int | None) -> None:
    """Drop the events older than AUDIT_RETENTION_DAYS (or --days)."""
    kept = days or current_app.extensions["settings"].audit_retention_days
    click.echo(f"Dropped {prune(kept)} audit events older than {kept} days.")


@audit_cli.command("export")
@click.option("--since", type=click.DateTime(), help="From this UTC time on (YYYY-MM-DD...).")
@click.option("--user", "user_id", type=click.IntRange(1), help="Only this user's id.")
@click.option("--action", type=click.Choice([action.value for action in Action]))
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="Write to this file (whole or not at all) instead of STDOUT ('-'), which logs share.",
)
def export_command(
    since: datetime | None, user_id: int | None, action: str | None, output: str | None
) -> None:
    """Print the events as JSON lines, oldest first (to keep them past AUDIT_RETENTION_DAYS)."""
    start = None if since is None else as_utc(since)
    query = events(user_id, action, start).order_by(None).order_by(AuditEvent.id)
    if output is None or output == "-":  # a file named "-" is "./-"
        for line in exported(query):
            click.echo(line)
        return
    try:
        written = write_whole(Path(output), exported(query))
    except OSError as exc:  # no such folder, no permission, a full disk
        raise click.ClickException(f"Could not write {output}: {exc.strerror or exc}") from exc
    click.echo(f"Wrote {written} audit events to {output}.", err=True)


def write_whole(path: Path, lines: Iterable[str]) -> int:
    """Write ``lines`` to a file beside ``path``, renamed to it once every line is written (a
    failed export leaves no file, or the one there before); return how many."""
    partial = path.with_name(f".{path.name}.partial")
    written = 0
    try:
        with partial.open("w", encoding="utf-8") as file:
            for line in lines:
                file.write(line + "\n")
                written += 1
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return written


def init_app(app: Flask) -> None:
    """Log each event once committed (on the one session class of db.session), and register the
    ``flask audit`` commands."""
    for name, listener in (
        ("after_flush", keep_flushed),
        ("after_commit", log_committed),
        ("after_rollback", forget_rolled_back),
    ):
        if not event.contains(db.session, name, listener):
            event.listen(db.session, name, listener)
    app.cli.add_command(audit_cli)
