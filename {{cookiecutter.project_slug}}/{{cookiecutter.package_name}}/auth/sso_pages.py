"""Single sign-on on the pages, served when OIDC_ISSUER names a provider: "Sign in with
<OIDC_NAME>" by OpenID Connect's Authorization Code flow with PKCE, ``state`` and ``nonce``,
through Authlib's Flask client, which fetches the provider's discovery document and keys (JWKS)
and verifies the ID token: its signature, issuer, audience, expiry and nonce.

- GET /sign-in/sso sends the browser to the provider (a link, not a form: a form's
  ``form-action 'self'`` would stop the redirect to another site).
- GET /sign-in/sso/callback takes the provider's answer, limited as a sign-in is; auth/sso.py
  says which account it signs in, and the session is renewed. Every refusal logs one line with
  its reason and lands on the sign-in page with a sentence.
- POST /security/sso/link, with the account's password, lets the next answer within
  LINK_SECONDS link the identity to the signed-in account (from the security page);
  POST /security/sso/unlink unlinks it, unless it is the last way in.

Signing out ends the session here only: the provider's own session goes on (docs/auth.md).
"""

import logging
import time
from typing import TYPE_CHECKING, Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..extensions import db
from ..platform.rate_limits import limit_sign_in, limit_writes
from ..platform.routes import Access, access
from ..web.security import send_policy
from . import sso
from .accounts import User
from .api import before_second_factor
from .audit import Action, record
from .pages import BY_PROVIDER, require_sign_in, start_session, to_sign_in
from .sign_in_limits import counted_confirmation

if TYPE_CHECKING:
    from .sso_provider import Provider

bp = Blueprint("sso_pages", __name__)
bp.after_request(send_policy)  # as the other pages
log = logging.getLogger(__name__)
CLIENT = "sso"  # the app's extension holding the provider's client
# The session's key for a link the password confirmed: the user's id, generation, and until when.
LINKING = "sso_linking"
LINK_SECONDS = 300
WRONG_PASSWORD = "Wrong password."  # noqa: S105  (a sentence, not a password)


def init_app(app: Flask) -> None:
    """Tell the pages whether single sign-on is offered; serve it when OIDC_ISSUER is set."""
    app.jinja_env.globals["sso"] = offered
    settings = app.extensions["settings"]
    if not settings.oidc_issuer:
        return
    # Imported here: a process serving no single sign-on (a command, a background process, a
    # bake with no provider) never loads Authlib and requests.
    from .sso_provider import Provider

    app.extensions[CLIENT] = Provider(app, settings)
    app.register_blueprint(bp)


def provider() -> "Provider":
    """Return the app's provider."""
    found: Provider = current_app.extensions[CLIENT]
    return found


def offered() -> dict[str, Any] | None:
    """Return what the pages show of single sign-on: the provider's name, and for a signed-in
    user whether an identity is linked and whether a confirmed link waits; None when off."""
    settings = current_app.extensions["settings"]
    if not settings.oidc_issuer:
        return None
    shown: dict[str, Any] = {"name": settings.oidc_name, "linked": False, "linking": False}
    if current_user.is_authenticated:
        user = db.session.get(User, current_user.id)
        linked = user is not None and sso.linked_identity(user, settings.oidc_issuer) is not None
        shown["linked"] = linked
        shown["linking"] = linking_user() is not None
    return shown


@bp.get("/sign-in/sso")
@access(Access.PAGE)
@before_second_factor
def start() -> ResponseReturnValue:
    """Send the browser to the provider, which sends it back to the callback."""
    redirect_uri = current_app.extensions["settings"].public_url + url_for(".callback")
    try:
        return provider().redirect_to(redirect_uri)
    except sso.Refused as refused:  # its discovery document did not come
        log.warning("single sign-on unavailable", extra={"reason": refused.reason})
        return to_sign_in("", refused.sentence)


@bp.get("/sign-in/sso/callback")
@access(Access.PAGE)
@before_second_factor
@limit_sign_in
def callback() -> ResponseReturnValue:
    """Take the provider's answer: sign in the account its verified ID token names (or link it
    to the signed-in account, when its password confirmed that); else refuse, saying why."""
    linking = linking_user()
    session.pop(LINKING, None)  # one answer only
    settings = current_app.extensions["settings"]
    try:
        claims = provider().claims()
        if linking is not None:
            sso.link(linking, claims)
            flash(f"{settings.oidc_name} is linked: it signs you in.")
            return redirect(url_for("security_pages.security"), 303)
        user = sso.user_for(claims, sign_up=settings.oidc_sign_up)
    except sso.Refused as refused:
        log.warning("single sign-on refused", extra={"reason": refused.reason})
        if linking is not None:
            flash(refused.sentence)
            return redirect(url_for("security_pages.security"), 303)
        record(Action.SIGN_IN_FAILED, None, detail=f"sso:{refused.reason}"[:32])
        db.session.commit()
        return to_sign_in("", refused.sentence)
    start_session(user)
    session[BY_PROVIDER] = True  # its own rules, not AUTH_REQUIRE_SECOND_FACTOR, hold here
    record(Action.SIGNED_IN, user, detail="provider")
    db.session.commit()
    return redirect(url_for("pages.index"), 303)


def linking_user() -> User | None:
    """Return the signed-in user whose password confirmed a link within LINK_SECONDS, at the
    same login generation; else None."""
    held = session.get(LINKING)
    if not (isinstance(held, list) and len(held) == 3 and time.time() < held[2]):
        return None
    if not current_user.is_authenticated or current_user.id != held[0]:
        return None
    user = db.session.get(User, held[0])
    return user if user is not None and user.login_generation == held[1] else None


@bp.post("/security/sso/link")
@access(Access.PAGE)
@limit_writes
def link() -> ResponseReturnValue:
    """Confirm a link with the account's password (counted as the second factor's changes are):
    the provider's next answer within LINK_SECONDS links its identity to this account."""
    if (refused := require_sign_in()) is not None:
        return refused
    user: User = db.get_or_404(User, current_user.id)
    password = request.form.get("password", "")[:1024]
    if not password or not counted_confirmation(user, password, lambda: True):
        flash(WRONG_PASSWORD)
        return redirect(url_for("security_pages.security"), 303)
    session[LINKING] = [user.id, user.login_generation, time.time() + LINK_SECONDS]
    return redirect(url_for("security_pages.security"), 303)


@bp.post("/security/sso/unlink")
@access(Access.PAGE)
@limit_writes
def unlink() -> ResponseReturnValue:
    """Unlink the provider from the signed-in account, unless nothing else signs it in."""
    if (refused := require_sign_in()) is not None:
        return refused
    user: User = db.get_or_404(User, current_user.id)
    settings = current_app.extensions["settings"]
    try:
        sso.unlink(user, settings.oidc_issuer)
    except sso.Refused as last:
        flash(last.sentence)
    else:
        flash(f"{settings.oidc_name} is unlinked: it signs you in no more.")
    return redirect(url_for("security_pages.security"), 303)
