"""The admins' pages (/admin): find a user, act on one (auth/admin.py, as the API does), and read
the audit trail. Only a signed-in, active admin gets them: anyone else signed in gets 403 with a
sentence (the error page), a visitor the sign-in form. Each action is a form (CSRF-checked, as
every form of the pages) that asks first, then shows what it did on the user's page.
"""

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.exceptions import Forbidden, HTTPException, NotFound

from ..extensions import db
from ..platform.rate_limits import limit_writes
from ..platform.routes import Access, access
from ..web.security import no_store, send_policy
from . import admin, audit, second_factor
from .accounts import Role, User
from .admin_api import UserQuery
from .admin_passkeys import remove
from .api import NOT_AN_ADMIN
from .audit import Action
from .audit_api import EventQuery
from .pages import require_sign_in
from .passkeys import passkeys_of

bp = Blueprint("admin_pages", __name__, template_folder="templates")  # auth/templates/auth/
bp.after_request(send_policy)  # as the other pages
LISTED = 50  # users or events a page shows
# What each action did, said on the user's page after it.
DONE = {
    "deactivate": "Deactivated: its sessions and tokens ended.",
    "reactivate": "Reactivated: it may sign in again.",
    "promote": "Promoted: it is an admin.",
    "demote": "Demoted: it is a user.",
    "end-sessions": "Its sessions and tokens ended.",
    "confirm-address": "Its address is confirmed.",
    "reset-mail": "A link setting a new password is being mailed to it.",
    "second-factor-reset": "Its second factor is off: its sessions and tokens ended.",
}


def require_admin() -> ResponseReturnValue | None:
    """Before each page here: the sign-in form for a visitor, 403 for anyone but an active
    admin (read from the database at each request); the admin on ``g.admin``."""
    if (refused := require_sign_in()) is not None:
        return refused
    user = db.session.get(User, current_user.id)
    if user is None or not user.is_active or user.role != Role.ADMIN:
        raise Forbidden(NOT_AN_ADMIN)
    g.admin = user
    return None


bp.before_request(require_admin)
bp.after_request(no_store)  # they show addresses and the trail


def target(user_id: int) -> User:
    """Return the user a page names; 404 when there is none."""
    user = admin.user_of(user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


@bp.get("/admin")
@access(Access.PAGE)
def users() -> ResponseReturnValue:
    """List users, newest first, those whose address holds ``q`` when given."""
    query = UserQuery.model_validate({**request.args.to_dict(), "limit": LISTED})
    found = admin.matching(query.q)
    rows = db.session.scalars(found.limit(LISTED).offset(query.offset)).all()
    total = admin.count(found)
    return render_template("auth/admin_users.html", users=rows, total=total, query=query)


@bp.get("/admin/users/<id:user_id>")
@access(Access.PAGE)
def user(user_id: int) -> ResponseReturnValue:
    """Show one user, what may be done to it, and its newest events."""
    shown = target(user_id)
    events = audit.recent(shown, LISTED)
    factor = second_factor.is_on(shown)
    passkeys = passkeys_of(shown.id)
    return render_template(
        "auth/admin_user.html", user=shown, events=events, factor=factor, passkeys=passkeys
    )


@bp.post("/admin/users/<id:user_id>/<action>")
@access(Access.PAGE)
@limit_writes
def act(user_id: int, action: str) -> ResponseReturnValue:
    """Do one of auth/admin.py's actions to a user, then show its page saying what happened
    (or why not)."""
    if action not in admin.ACTIONS:
        raise NotFound(f"No action {action!r}.")
    shown = target(user_id)
    try:
        admin.ACTIONS[action](shown, g.admin)
        db.session.commit()
    except HTTPException as refused:  # 409 (the last admin...), 429 and 503 (the mail)
        db.session.rollback()
        flash(refused.description or "That was refused.")
    else:
        flash(DONE[action])
    return redirect(url_for(".user", user_id=user_id), 303)


@bp.post("/admin/users/<id:user_id>/passkeys/<id:passkey_id>/remove")
@access(Access.PAGE)
@limit_writes
def remove_passkey(user_id: int, passkey_id: int) -> ResponseReturnValue:
    """Remove one of a user's passkeys (a lost or stolen device), then show the user's page."""
    shown = target(user_id)
    try:
        remove(shown, g.admin, passkey_id)
        db.session.commit()
    except NotFound as missing:
        db.session.rollback()
        flash(missing.description or "No such passkey.")
    else:
        flash("Passkey removed: it signs in no more.")
    return redirect(url_for(".user", user_id=user_id), 303)


@bp.get("/admin/audit")
@access(Access.PAGE)
def trail() -> ResponseReturnValue:
    """List the events of every account, newest first, filtered by user, action and time."""
    given = {name: value for name, value in request.args.items() if value}
    q = EventQuery.model_validate({**given, "limit": LISTED})
    found = audit.events(q.user_id, q.action, q.since, q.until, q.actor_id)
    rows = db.session.scalars(found.limit(LISTED).offset(q.offset)).all()
    return render_template("auth/admin_audit.html", events=rows, query=q, actions=list(Action))


def init_app(app: Flask) -> None:
    """Serve the admins' pages."""
    app.register_blueprint(bp)
