"""The admins' API, under /api/admin/ (an admin's token; anyone else's gets 403): find users and
act on one of them (auth/admin.py: each action is in the audit trail, naming its admin):

- GET /api/admin/users lists users (``q``: part of the address), newest first, by pages;
- GET /api/admin/users/<id> shows one;
- POST .../deactivate and .../reactivate: a deactivated user signs in no more, and its tokens
  and browser sessions end; never the last active admin;
- POST .../promote and .../demote: make an admin (of a confirmed address only) or a user again;
  never the last active admin;
- POST .../end-sessions ends its tokens and browser sessions; POST .../confirm-address marks its
  address confirmed; POST .../reset-mail mails its address a link setting a new password;
- DELETE .../second-factor turns its second factor off (a lost phone, no recovery code left).

auth/audit_api.py serves the trail.
"""

from collections.abc import Callable
from typing import Literal

from flask import Blueprint, Flask, abort, g, request
from pydantic import BaseModel, ConfigDict, Field

from ..extensions import db
from ..platform.fields import MAX_ID, NO_NUL
from ..platform.operations import Answer, Operation
from ..platform.rate_limits import limit_writes
from ..platform.routes import Access, access
from ..platform.timestamps import UtcTimestamp
from . import admin, second_factor
from .accounts import User
from .admin import INACTIVE, LAST_ADMIN, NO_FACTOR, NOT_CONFIRMED
from .recovery import Accepted

bp = Blueprint("admin", __name__)


class UserQuery(BaseModel):
    """The search and paging query of the user list."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field("", max_length=254, pattern=NO_NUL, description="Part of the address, any case.")
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=MAX_ID)


class UserOut(Answer):
    """A user as an admin sees it: never its password's hash, a token or a secret."""

    id: int = Field(ge=1)
    email: str
    role: Literal["user", "admin"]
    is_active: bool
    email_verified_at: UtcTimestamp | None
    created_at: UtcTimestamp
    has_password: bool = Field(description="False: no password yet (a reset link sets one).")
    second_factor: bool = Field(description="Its second factor is on.")


class UserList(Answer):
    """One page of users, newest first, with the count of all that match."""

    users: list[UserOut]
    total: int = Field(ge=0)
    limit: int
    offset: int


def user_body(user: User) -> dict[str, object]:
    """Return the JSON body of a user, as an admin sees it."""
    return UserOut(
        id=user.id,
        email=user.email,
        role=user.role,
        is_active=user.is_active,
        email_verified_at=user.email_verified_at,
        created_at=user.created_at,
        has_password=user.password_hash is not None,
        second_factor=second_factor.is_on(user),
    ).model_dump(mode="json")


def target(user_id: int) -> User:
    """Return the user an admin route names; 404 when there is none."""
    user = admin.user_of(user_id)
    if user is None:
        abort(404, description=f"No user with id {user_id}.")
    return user


def acted(user_id: int, action: Callable[[User, User], None]) -> dict[str, object]:
    """Do ``action`` to the user ``user_id`` names, by the calling admin; commit, and return the
    user as it is now (409 when the action refuses)."""
    user = target(user_id)
    action(user, g.user)
    db.session.commit()
    db.session.refresh(user)
    return user_body(user)


@bp.get("/users")
@access(Access.ADMIN)
def list_users() -> dict[str, object]:
    """List users, newest first; ``q`` keeps those whose address holds it."""
    query = UserQuery.model_validate(request.args.to_dict())
    found = admin.matching(query.q)
    rows = db.session.scalars(found.limit(query.limit).offset(query.offset))
    users = [UserOut.model_validate(user_body(user)) for user in rows]
    total = admin.count(found)
    listed = UserList(users=users, total=total, limit=query.limit, offset=query.offset)
    return listed.model_dump(mode="json")


@bp.get("/users/<id:user_id>")
@access(Access.ADMIN)
def get_user(user_id: int) -> dict[str, object]:
    """Show one user."""
    return user_body(target(user_id))


@bp.post("/users/<id:user_id>/deactivate")
@access(Access.ADMIN)
@limit_writes
def deactivate(user_id: int) -> dict[str, object]:
    """Deactivate a user: no sign-in any more, its tokens and browser sessions end."""
    return acted(user_id, admin.deactivate)


@bp.post("/users/<id:user_id>/reactivate")
@access(Access.ADMIN)
@limit_writes
def reactivate(user_id: int) -> dict[str, object]:
    """Let a deactivated user sign in again (its old tokens and sessions stay ended)."""
    return acted(user_id, admin.reactivate)


@bp.post("/users/<id:user_id>/promote")
@access(Access.ADMIN)
@limit_writes
def promote(user_id: int) -> dict[str, object]:
    """Make a user an admin: only an active one whose address is confirmed."""
    return acted(user_id, admin.promote)


@bp.post("/users/<id:user_id>/demote")
@access(Access.ADMIN)
@limit_writes
def demote(user_id: int) -> dict[str, object]:
    """Make an admin a user again; never the last active admin."""
    return acted(user_id, admin.demote)


@bp.post("/users/<id:user_id>/end-sessions")
@access(Access.ADMIN)
@limit_writes
def end_sessions(user_id: int) -> dict[str, object]:
    """End every token and browser session of a user (the caller's own, on itself)."""
    return acted(user_id, admin.end_sessions)


@bp.post("/users/<id:user_id>/confirm-address")
@access(Access.ADMIN)
@limit_writes
def confirm_address(user_id: int) -> dict[str, object]:
    """Mark a user's address confirmed (the operator checked it): it may sign in."""
    return acted(user_id, admin.confirm_address)


@bp.post("/users/<id:user_id>/reset-mail")
@access(Access.ADMIN)
@limit_writes
def reset_mail(user_id: int) -> tuple[dict[str, object], int]:
    """Mail a user's address a link that sets a new password (its owner asked the admin)."""
    sent = acted(user_id, admin.reset_mail)
    answer = Accepted(detail=f"A link setting a new password is being mailed to {sent['email']}.")
    return answer.model_dump(), 202


@bp.delete("/users/<id:user_id>/second-factor")
@access(Access.ADMIN)
@limit_writes
def reset_second_factor(user_id: int) -> dict[str, object]:
    """Turn a user's second factor off: its recovery codes go and its tokens and sessions end;
    its owner is mailed a notice."""
    return acted(user_id, admin.reset_second_factor)


def texts(*refusals: str) -> dict[str, str]:
    """Return what this module's statuses mean: 404 always, and each refusal as its 409."""
    return {"404": "No user with this id.", **({"409": " Or: ".join(refusals)} if refusals else {})}


ADMIN_ERRORS = ("403", "404", "503")
OPERATIONS = {
    "admin.list_users": Operation(
        {"200": ("A page of users, newest first.", UserList, ())},
        ("403", "422", "503"),
        query=UserQuery,
    ),
    "admin.get_user": Operation({"200": ("The user.", UserOut, ())}, ADMIN_ERRORS, texts=texts()),
    "admin.deactivate": Operation(
        {"200": ("The user, deactivated.", UserOut, ())},
        (*ADMIN_ERRORS, "409"),
        texts=texts(LAST_ADMIN),
    ),
    "admin.reactivate": Operation(
        {"200": ("The user, active.", UserOut, ())}, ADMIN_ERRORS, texts=texts()
    ),
    "admin.promote": Operation(
        {"200": ("The user, an admin.", UserOut, ())},
        (*ADMIN_ERRORS, "409"),
        texts=texts(NOT_CONFIRMED, INACTIVE),
    ),
    "admin.demote": Operation(
        {"200": ("The user, a user.", UserOut, ())}, (*ADMIN_ERRORS, "409"), texts=texts(LAST_ADMIN)
    ),
    "admin.end_sessions": Operation(
        {"200": ("The user; its tokens and sessions ended.", UserOut, ())},
        ADMIN_ERRORS,
        texts=texts(),
    ),
    "admin.confirm_address": Operation(
        {"200": ("The user, its address confirmed.", UserOut, ())}, ADMIN_ERRORS, texts=texts()
    ),
    "admin.reset_mail": Operation(
        {"202": ("The link is being mailed.", Accepted, ())},
        (*ADMIN_ERRORS, "409", "429"),
        texts={
            **texts(INACTIVE),
            "503": "No mail is configured (MAIL_URL), or the database failed.",
        },
    ),
    "admin.reset_second_factor": Operation(
        {"200": ("The user, its second factor off.", UserOut, ())},
        (*ADMIN_ERRORS, "409"),
        texts=texts(NO_FACTOR),
    ),
}


def init_app(app: Flask) -> None:
    """Serve the admins' routes."""
    app.register_blueprint(bp, url_prefix="/api/admin")
