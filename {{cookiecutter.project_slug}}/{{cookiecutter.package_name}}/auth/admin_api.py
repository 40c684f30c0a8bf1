"""The admins' API, under /api/admin/ (an admin's token; anyone else's gets 403): find users and
act on one of them. Each action is in the audit trail, naming its admin as the actor:

- GET /api/admin/users lists users (``q``: part of the address), newest first, by pages;
- GET /api/admin/users/<id> shows one;
- POST .../deactivate and .../reactivate: a deactivated user signs in no more, and its tokens
  and browser sessions end; never the last active admin;
- POST .../promote and .../demote: make an admin (of a confirmed address only) or a user again;
  never the last active admin;
- POST .../end-sessions ends its tokens and browser sessions; POST .../confirm-address marks its
  address confirmed; POST .../reset-mail mails its address a link setting a new password;
- DELETE .../second-factor turns its second factor off (a lost phone, no recovery code left).

Each change is one conditional UPDATE: of two admins acting at once, one changes the row and
writes the event, the other finds it changed and writes none. auth/audit_api.py serves the trail.
"""

from typing import Literal

from flask import Blueprint, Flask, abort, g, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Update, delete, func, select, update
from werkzeug.exceptions import Conflict

from ..extensions import db
from ..platform.database import rows_changed
from ..platform.fields import MAX_ID
from ..platform.operations import Answer, Operation
from ..platform.rate_limits import limit_writes
from ..platform.routes import Access, access
from ..platform.timestamps import UtcTimestamp, utc_now
from . import second_factor
from .accounts import Role, Token, User, is_last_admin
from .audit import Action, record
from .recovery import Accepted, mail_reset

bp = Blueprint("admin", __name__)
LAST_ADMIN = "This is the last active admin: promote another user first."
NOT_CONFIRMED = (
    "This user's address is not confirmed: whoever signed it up may not own it (its owner opens"
    " the mailed link first, or confirm-address says the operator checked it)."
)
NO_FACTOR = "This user has no second factor."
INACTIVE = "This user is deactivated: reactivate it first."


class UserQuery(BaseModel):
    """The search and paging query of the user list."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field("", max_length=254, description="Part of the address, in any case.")
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
    """Return the user an admin route names; 404 when there is none (an id past the column's
    range names none)."""
    user = db.session.get(User, user_id) if 1 <= user_id <= MAX_ID else None
    if user is None:
        abort(404, description=f"No user with id {user_id}.")
    return user


def changed(user: User, action: Action, statement: Update) -> bool:
    """Run a conditional UPDATE of ``user``'s row; when it changed the row, record ``action``
    by the admin calling; say whether it did (not committed)."""
    result = db.session.execute(
        statement.where(User.id == user.id).execution_options(synchronize_session=False)
    )
    if rows_changed(result) != 1:
        return False
    record(action, user, actor=g.user)
    return True


def saved(user: User) -> dict[str, object]:
    """Commit, and return the user as it is now."""
    db.session.commit()
    db.session.refresh(user)
    return user_body(user)


def not_the_last_admin(user: User) -> None:
    """Answer 409 when ``user`` is the only active admin (its row locked until the commit)."""
    if is_last_admin(user):
        db.session.rollback()
        raise Conflict(LAST_ADMIN)


def ending_sessions() -> dict[str, ColumnElement[int]]:
    """Return the values of an UPDATE ending a user's browser sessions (counted by the
    database: two at once both count)."""
    return {"login_generation": User.login_generation + 1}


@bp.get("/users")
@access(Access.ADMIN)
def list_users() -> dict[str, object]:
    """List users, newest first; ``q`` keeps those whose address holds it."""
    query = UserQuery.model_validate(request.args.to_dict())
    matching = select(User)
    if query.q:
        matching = matching.where(User.email.contains(query.q.lower(), autoescape=True))
    rows = db.session.scalars(
        matching.order_by(User.id.desc()).limit(query.limit).offset(query.offset)
    )
    total = db.session.scalar(select(func.count()).select_from(matching.subquery())) or 0
    users = [UserOut.model_validate(user_body(user)) for user in rows]
    return UserList(users=users, total=total, limit=query.limit, offset=query.offset).model_dump(
        mode="json"
    )


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
    user = target(user_id)
    not_the_last_admin(user)
    active = update(User).where(User.is_active).values(is_active=False, **ending_sessions())
    if changed(user, Action.USER_DEACTIVATED, active):
        db.session.execute(delete(Token).where(Token.user_id == user.id))
    return saved(user)


@bp.post("/users/<id:user_id>/reactivate")
@access(Access.ADMIN)
@limit_writes
def reactivate(user_id: int) -> dict[str, object]:
    """Let a deactivated user sign in again (its old tokens and sessions stay ended)."""
    user = target(user_id)
    changed(
        user, Action.USER_REACTIVATED, update(User).where(~User.is_active).values(is_active=True)
    )
    return saved(user)


@bp.post("/users/<id:user_id>/promote")
@access(Access.ADMIN)
@limit_writes
def promote(user_id: int) -> dict[str, object]:
    """Make a user an admin: only an active one whose address is confirmed."""
    user = target(user_id)
    if user.email_verified_at is None:
        raise Conflict(NOT_CONFIRMED)
    if not user.is_active:
        raise Conflict(INACTIVE)
    admin = update(User).where(User.role != Role.ADMIN).values(role=Role.ADMIN)
    changed(user, Action.USER_PROMOTED, admin)
    return saved(user)


@bp.post("/users/<id:user_id>/demote")
@access(Access.ADMIN)
@limit_writes
def demote(user_id: int) -> dict[str, object]:
    """Make an admin a user again; never the last active admin."""
    user = target(user_id)
    not_the_last_admin(user)
    changed(
        user,
        Action.USER_DEMOTED,
        update(User).where(User.role == Role.ADMIN).values(role=Role.USER),
    )
    return saved(user)


@bp.post("/users/<id:user_id>/end-sessions")
@access(Access.ADMIN)
@limit_writes
def end_sessions(user_id: int) -> dict[str, object]:
    """End every token and browser session of a user (the caller's own, on itself)."""
    user = target(user_id)
    db.session.execute(delete(Token).where(Token.user_id == user.id))
    changed(user, Action.SESSIONS_ENDED, update(User).values(**ending_sessions()))
    return saved(user)


@bp.post("/users/<id:user_id>/confirm-address")
@access(Access.ADMIN)
@limit_writes
def confirm_address(user_id: int) -> dict[str, object]:
    """Mark a user's address confirmed (the operator checked it): it may sign in."""
    user = target(user_id)
    unconfirmed = update(User).where(User.email_verified_at.is_(None))
    changed(user, Action.ADDRESS_CONFIRMED, unconfirmed.values(email_verified_at=utc_now()))
    return saved(user)


@bp.post("/users/<id:user_id>/reset-mail")
@access(Access.ADMIN)
@limit_writes
def reset_mail(user_id: int) -> tuple[dict[str, object], int]:
    """Mail a user's address a link that sets a new password (its owner asked the admin)."""
    user = target(user_id)
    if not user.is_active:
        raise Conflict(INACTIVE)
    mail_reset(user.email)  # 503 with mail off, 429 past RATELIMIT_MAIL_ACCOUNT
    record(Action.RESET_MAILED, user, actor=g.user)
    db.session.commit()
    answer = Accepted(detail=f"A link setting a new password is being mailed to {user.email}.")
    return answer.model_dump(), 202


@bp.delete("/users/<id:user_id>/second-factor")
@access(Access.ADMIN)
@limit_writes
def reset_second_factor(user_id: int) -> dict[str, object]:
    """Turn a user's second factor off: its recovery codes go and its tokens and sessions end;
    its owner is mailed a notice."""
    user = target(user_id)
    if not second_factor.turn_off(user, actor=g.user, detail="reset"):
        raise Conflict(NO_FACTOR)
    db.session.refresh(user)
    return user_body(user)


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
