"""The audit trail's API: GET /api/admin/audit shows an admin every event (filtered by user,
action and time), GET /api/auth/activity shows a signed-in user the events of their own account.
Nobody else reads a row: the trail names addresses and user agents."""

import re
from datetime import datetime
from typing import Annotated

from flask import Blueprint, Flask, g, request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import Select

from ..extensions import db
from ..platform.fields import MAX_ID
from ..platform.operations import Answer, Operation
from ..platform.routes import Access, access
from ..platform.timestamps import UtcTimestamp, as_utc
from .audit import Action, AuditEvent, events

bp = Blueprint("audit", __name__)
ISO_8601 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ].+)?")


def iso_8601(value: object) -> object:
    """Let only an ISO 8601 date or time through, as the document says: pydantic would read a
    number ("0.5") as seconds since 1970."""
    if isinstance(value, str) and not ISO_8601.fullmatch(value):
        raise ValueError("expected an ISO 8601 date or time, such as 2026-11-29T08:00:00Z")
    return value


# A time of the query: ISO 8601 only; one without a zone is UTC.
Moment = Annotated[datetime, BeforeValidator(iso_8601), AfterValidator(as_utc)]


class OwnQuery(BaseModel):
    """The paging query of a user's own events."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=MAX_ID)


class EventQuery(OwnQuery):
    """The filters of the trail: each one given keeps the events that match it."""

    user_id: int | None = Field(None, ge=1, le=MAX_ID, description="The user it is about.")
    actor_id: int | None = Field(None, ge=1, le=MAX_ID, description="The admin who acted.")
    action: Action | None = None
    since: Moment | None = Field(None, description="From this time on (UTC if no zone).")
    until: Moment | None = Field(None, description="Before this time (UTC if no zone).")


class EventOut(Answer):
    """One event: what happened, to whom, by whom, when and from where; never a secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(ge=1)
    at: UtcTimestamp
    action: str
    user_id: int | None = Field(description="The account it is about; null: none (or gone).")
    actor_id: int | None = Field(description="The admin who acted; null: the user, or a command.")
    detail: str | None = Field(description="How or why: a sign-in's way, a failure's reason.")
    client_address: str | None = Field(description="Null: a command.")
    request_id: str | None
    user_agent: str | None


class EventList(Answer):
    """One page of events, newest first."""

    events: list[EventOut]
    limit: int
    offset: int


def page_of(query: OwnQuery, matching: Select[AuditEvent]) -> dict[str, object]:
    """Return the page ``query`` asks of the events ``matching`` finds."""
    found = matching.limit(query.limit).offset(query.offset)
    rows = [EventOut.model_validate(row) for row in db.session.scalars(found)]
    return EventList(events=rows, limit=query.limit, offset=query.offset).model_dump(mode="json")


@bp.get("/api/admin/audit")
@access(Access.ADMIN)
def trail() -> dict[str, object]:
    """List the events of every account, newest first, filtered."""
    q = EventQuery.model_validate(request.args.to_dict())
    return page_of(q, events(q.user_id, q.action, q.since, q.until, q.actor_id))


@bp.get("/api/auth/activity")
@access(Access.SIGNED_IN)
def activity() -> dict[str, object]:
    """List the events of the caller's own account, newest first."""
    return page_of(OwnQuery.model_validate(request.args.to_dict()), events(user_id=g.user.id))


OPERATIONS = {
    "audit.trail": Operation(
        {"200": ("A page of events, newest first.", EventList, ())},
        ("403", "422", "503"),
        query=EventQuery,
    ),
    "audit.activity": Operation(
        {"200": ("A page of your account's events, newest first.", EventList, ())},
        ("422", "503"),
        query=OwnQuery,
    ),
}


def init_app(app: Flask) -> None:
    """Serve the trail's routes."""
    app.register_blueprint(bp)
