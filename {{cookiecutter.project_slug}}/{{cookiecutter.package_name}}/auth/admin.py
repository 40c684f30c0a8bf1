"""What an admin may do to a user, for the admins' API (auth/admin_api.py) and pages
(auth/admin_pages.py) alike: each action changes the user and records it in the audit trail,
naming its admin, in one transaction (committed by the caller), or raises Conflict with a
sentence saying why not. Each change is one conditional UPDATE: of two admins acting at once,
one changes the row and writes the event, the other finds it changed and writes none.
"""

from collections.abc import Callable

from sqlalchemy import ColumnElement, Select, Update, func, select, update
from werkzeug.exceptions import Conflict

from ..extensions import db
from ..platform.database import rows_changed
from ..platform.fields import MAX_ID
from ..platform.timestamps import utc_now
from . import second_factor
from .accounts import Role, User, end_tokens, is_last_admin
from .audit import Action, record
from .recovery import mail_reset

LAST_ADMIN = "This is the last active admin: promote another user first."
NOT_CONFIRMED = (
    "This user's address is not confirmed: whoever signed it up may not own it (its owner opens"
    " the mailed link first, or confirm-address says the operator checked it)."
)
NO_FACTOR = "This user has no second factor."
INACTIVE = "This user is deactivated: reactivate it first."


def user_of(user_id: int) -> User | None:
    """Return the user with this id, else None (an id past the column's range names none)."""
    return db.session.get(User, user_id) if 1 <= user_id <= MAX_ID else None


def matching(q: str) -> Select[User]:
    """Return the query of the users whose address holds ``q`` (any case; % and _ are letters),
    newest first."""
    found = select(User).order_by(User.id.desc())
    return found.where(User.email.contains(q.lower(), autoescape=True)) if q else found


def count(query: Select[User]) -> int:
    """Return how many users ``query`` finds."""
    return db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def changed(user: User, actor: User, action: Action, statement: Update) -> bool:
    """Run a conditional UPDATE of ``user``'s row; when it changed the row, record ``action``
    by ``actor``; say whether it did."""
    result = db.session.execute(
        statement.where(User.id == user.id).execution_options(synchronize_session=False)
    )
    if rows_changed(result) != 1:
        return False
    record(action, user, actor=actor)
    return True


def not_the_last_admin(user: User) -> None:
    """Raise Conflict when ``user`` is the only active admin (its row locked until the commit)."""
    if is_last_admin(user):
        db.session.rollback()
        raise Conflict(LAST_ADMIN)


def ending_sessions() -> dict[str, ColumnElement[int]]:
    """Return the values of an UPDATE ending a user's browser sessions (counted by the
    database: two at once both count)."""
    return {"login_generation": User.login_generation + 1}


def deactivate(user: User, actor: User) -> None:
    """No sign-in any more: its tokens and browser sessions end; never the last active admin."""
    not_the_last_admin(user)
    active = update(User).where(User.is_active).values(is_active=False, **ending_sessions())
    if changed(user, actor, Action.USER_DEACTIVATED, active):
        end_tokens(user)


def reactivate(user: User, actor: User) -> None:
    """Let a deactivated user sign in again (its old tokens and sessions stay ended)."""
    inactive = update(User).where(~User.is_active).values(is_active=True)
    changed(user, actor, Action.USER_REACTIVATED, inactive)


def promote(user: User, actor: User) -> None:
    """Make a user an admin: only an active one whose address is confirmed."""
    if user.email_verified_at is None:
        raise Conflict(NOT_CONFIRMED)
    if not user.is_active:
        raise Conflict(INACTIVE)
    admin = update(User).where(User.role != Role.ADMIN).values(role=Role.ADMIN)
    changed(user, actor, Action.USER_PROMOTED, admin)


def demote(user: User, actor: User) -> None:
    """Make an admin a user again; never the last active admin."""
    not_the_last_admin(user)
    admin = update(User).where(User.role == Role.ADMIN).values(role=Role.USER)
    changed(user, actor, Action.USER_DEMOTED, admin)


def end_sessions(user: User, actor: User) -> None:
    """End every token and browser session of a user (the actor's own, on itself)."""
    end_tokens(user)
    changed(user, actor, Action.SESSIONS_ENDED, update(User).values(**ending_sessions()))


def confirm_address(user: User, actor: User) -> None:
    """Mark a user's address confirmed (the operator checked it): it may sign in."""
    unconfirmed = update(User).where(User.email_verified_at.is_(None))
    changed(user, actor, Action.ADDRESS_CONFIRMED, unconfirmed.values(email_verified_at=utc_now()))


def reset_mail(user: User, actor: User) -> None:
    """Mail a user's address a link that sets a new password (its owner asked the admin);
    raise 503 with mail off, 429 past RATELIMIT_MAIL_ACCOUNT."""
    if not user.is_active:
        raise Conflict(INACTIVE)
    mail_reset(user.email)
    record(Action.RESET_MAILED, user, actor=actor)


def reset_second_factor(user: User, actor: User) -> None:
    """Turn a user's second factor off (committed): its recovery codes go, its tokens and
    sessions end, and its owner is mailed a notice."""
    if not second_factor.turn_off(user, actor=actor, detail="reset"):
        raise Conflict(NO_FACTOR)


# Each action by its name in the URLs of the pages (the API has a route for each).
ACTIONS: dict[str, Callable[[User, User], None]] = {
    "deactivate": deactivate,
    "reactivate": reactivate,
    "promote": promote,
    "demote": demote,
    "end-sessions": end_sessions,
    "confirm-address": confirm_address,
    "reset-mail": reset_mail,
    "second-factor-reset": reset_second_factor,
}
