"""The account's security page (/security), for a signed-in user: the second factor set up, turned
on and off, and its recovery codes renewed, under the API's rules (auth/second_factor_api.py):
the password again and a code for each change, each check counted against the account.

Setting it up shows the new secret as a QR code and as text. The QR code is an inline SVG
(segno): no image file and no script, so the page keeps its Content-Security-Policy. The page
that turns the factor on shows the ten recovery codes once. Every answer here is
``Cache-Control: no-store``: no cache keeps a secret or a code. Turning the factor on or off ends
every session and token of the account; this browser's session goes on, renewed.

The page also lists the account's recent activity: its ten newest events of the audit trail
(auth/audit.py), each in plain words, with when, how, and where from. Only the signed-in user's
own account's; an admin's act says "by an admin", never who.
"""

from collections.abc import Callable
from typing import NamedTuple

import segno
from flask import (
    Blueprint,
    Flask,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from markupsafe import Markup
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from ..extensions import db
from ..platform.rate_limits import limit_writes
from ..platform.routes import Access, access
from ..platform.timestamps import as_utc, iso_utc
from ..web.security import no_store, send_policy
from . import audit, second_factor
from .accounts import User
from .api import before_second_factor
from .audit import Action, AuditEvent
from .pages import require_sign_in, start_session
from .second_factor_api import ISSUER, Confirmation, new_secret, renew_codes, turn_off, turn_on

bp = Blueprint("security_pages", __name__, template_folder="templates")  # auth/templates/auth/
bp.after_request(send_policy)  # as the other pages
bp.before_request(require_sign_in)  # every page here is a signed-in user's
INCOMPLETE = "Type your password and a code."
# What a 409 of the API means here: another tab or device changed the factor meanwhile.
CHANGED = "The second factor changed meanwhile: here it is now."
RECENT = 10  # the events the page lists
MAX_AGENT = 60  # the characters of a user agent shown
# What each event says on the page; an action missing here shows its own value.
ACTIVITY: dict[Action, str] = {
    Action.SIGNED_IN: "Signed in",
    Action.SIGN_IN_FAILED: "Failed sign-in",
    Action.SIGNED_OUT: "Signed out",
    Action.TOKEN_ISSUED: "API token issued",
    Action.TOKEN_REVOKED: "API token revoked",
    Action.PASSWORD_CHANGED: "Password changed",
    Action.PASSWORD_RESET: "Password set anew by a mailed link",
    Action.RESET_MAILED: "A link to set a new password mailed",
    Action.ADDRESS_CONFIRMED: "Email address confirmed",
    Action.SECOND_FACTOR_ON: "Second factor turned on",
    Action.SECOND_FACTOR_OFF: "Second factor turned off",
    Action.PASSKEY_ADDED: "Passkey added",
    Action.PASSKEY_REMOVED: "Passkey removed",
    Action.IDENTITY_LINKED: "Single sign-on linked",
    Action.IDENTITY_UNLINKED: "Single sign-on unlinked",
    Action.USER_CREATED: "Account created",
    Action.USER_DEACTIVATED: "Account deactivated",
    Action.USER_REACTIVATED: "Account reactivated",
    Action.USER_PROMOTED: "Made an admin",
    Action.USER_DEMOTED: "Admin role taken away",
    Action.SESSIONS_ENDED: "Every session and API token ended",
}
# How or why, for the details that say it (others, such as a passkey's id, are not shown).
HOW: dict[tuple[Action, str], str] = {
    (Action.SIGNED_IN, "password"): "with a password",
    (Action.SIGNED_IN, "code"): "with a password and a code",
    (Action.SIGNED_IN, "passkey"): "with a passkey",
    (Action.SIGNED_IN, "provider"): "with single sign-on",
    (Action.SIGN_IN_FAILED, "credentials"): "(password refused)",
    (Action.SIGN_IN_FAILED, "code"): "(wrong code)",
    (Action.SIGN_IN_FAILED, "unverified"): "(address not confirmed yet)",
    (Action.TOKEN_ISSUED, "password"): "with a password",
    (Action.TOKEN_ISSUED, "code"): "with a password and a code",
    (Action.USER_CREATED, "sign_up"): "by signing up",
    (Action.USER_CREATED, "provider"): "with single sign-on",
    (Action.USER_CREATED, "admin"): "as an admin",
    (Action.SECOND_FACTOR_OFF, "reset"): "(reset)",
}


class Activity(NamedTuple):
    """An event as the page lists it: each part plain text (the template escapes it)."""

    at: str  # ISO 8601, UTC: the <time> element's datetime
    when: str
    what: str
    how: str | None
    where: str | None


bp.after_request(no_store)  # they show a secret or recovery codes


def signed_in_user() -> User:
    """Return the signed-in user's row (the session's loader found it active)."""
    user: User = db.get_or_404(User, current_user.id)
    return user


def qr_code(uri: str) -> Markup:
    """Return ``uri`` as a QR code: an SVG element to place in the page."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, title="The secret's QR code")
    return Markup(svg)  # noqa: S704  (segno writes the URI as paths, never as text)


def described(row: AuditEvent) -> Activity:
    """Return ``row`` in plain words: what (by an admin, when one did it), how when its detail
    says it, when in UTC, and where from (the address; the user agent cut short)."""
    try:
        action = Action(row.action)
    except ValueError:  # an action this version no longer has: its own value
        what, how = row.action, None
    else:
        what, how = ACTIVITY.get(action, row.action), HOW.get((action, row.detail or ""))
    if row.actor_id is not None and row.actor_id != row.user_id:
        what += " by an admin"
    agent = row.user_agent or ""
    if len(agent) > MAX_AGENT:
        agent = agent[: MAX_AGENT - 1] + "…"
    where = ", ".join(part for part in (row.client_address, agent) if part) or None
    moment = as_utc(row.at)
    return Activity(
        at=iso_utc(moment) or "",
        when=moment.strftime("%Y-%m-%d %H:%M UTC"),
        what=what,
        how=how,
        where=where,
    )


def page(
    error: str | None = None, status: int = 200, codes: list[str] | None = None
) -> ResponseReturnValue:
    """Render the security page for the factor as it is now, with ``error`` if a change
    failed, and the recovery codes ``codes`` when a change just made them."""
    user = signed_in_user()
    state = second_factor.state_of(user)  # as the API says it
    factor = second_factor.factor_of(user) if state.being_set_up else None
    secret = second_factor.readable_secret(factor) if factor is not None else None
    uri = second_factor.provisioning_uri(secret, user, ISSUER) if secret else None
    context = {
        "on": state.on,
        "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) if secret else None,
        "qr_code": qr_code(uri) if uri else None,
        "codes_left": state.recovery_codes_left,
        "codes": codes,
        "error": error,
        "activity": [described(row) for row in audit.recent(user, RECENT)],
    }
    return render_template("auth/security.html", **context), status


def confirmed_change(
    change: Callable[[User, Confirmation], list[str] | None], renew: bool
) -> ResponseReturnValue:
    """Make ``change`` with the form's password and code, under the API's rules, and renew
    this session when it ended every other (``renew``); answer the page, with the recovery
    codes the change made if any, or the refusal's sentence."""
    fields = {field: request.form.get(field) for field in ("password", "code")}
    try:
        given = Confirmation.model_validate(fields)
    except ValidationError:  # a field missing, empty or too long: nothing was checked
        return page(INCOMPLETE, 422)
    user = signed_in_user()
    try:
        codes = change(user, given)
    except HTTPException as refused:  # 403: a wrong password or code; 409: changed meanwhile
        return page(refused.description if refused.code == 403 else CHANGED, 422)
    if renew:
        start_session(user)
    if codes is None:
        flash("The second factor is off: your password alone signs you in.")
        return redirect(url_for("security_pages.security"), 303)
    return page(codes=codes)


@bp.get("/security")
@access(Access.PAGE)
@before_second_factor
def security() -> ResponseReturnValue:
    """Show the second factor's state, and the forms that change it."""
    return page()


@bp.post("/security/second-factor")
@access(Access.PAGE)
@before_second_factor
@limit_writes
def start() -> ResponseReturnValue:
    """Make a new secret for the second factor, shown on the page until a code turns it on."""
    try:
        new_secret(signed_in_user())
    except HTTPException:  # on already (another tab turned it on): the page shows it
        flash(CHANGED)
    return redirect(url_for("security_pages.security"), 303)


@bp.post("/security/second-factor/enable")
@access(Access.PAGE)
@before_second_factor
@limit_writes
def enable() -> ResponseReturnValue:
    """Turn the second factor on with the password and a current code; show the recovery
    codes once."""
    return confirmed_change(turn_on, renew=True)


@bp.post("/security/second-factor/disable")
@access(Access.PAGE)
@limit_writes
def disable() -> ResponseReturnValue:
    """Turn the second factor off with the password and a code or a recovery code."""
    return confirmed_change(turn_off, renew=True)


@bp.post("/security/recovery-codes")
@access(Access.PAGE)
@limit_writes
def new_recovery_codes() -> ResponseReturnValue:
    """Make a new set of recovery codes with the password and an app code; show them once."""
    return confirmed_change(renew_codes, renew=False)


def init_app(app: Flask) -> None:
    """Serve the security page."""
    app.register_blueprint(bp)
