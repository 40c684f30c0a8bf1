"""The passkey ceremonies and page: assets/src/passkeys.js asks for options, has the browser's
authenticator answer them (navigator.credentials), and posts the answer back as JSON with the
page's CSRF token. A signed-in user adds, lists and removes passkeys at /passkeys; anyone signs
in with one from the sign-in form, no email typed (the passkey names its user).

Every failed sign-in gets one answer, as with passwords; the per-address sign-in limit counts
passkey attempts too (a forged signature cannot be guessed, so no account count is needed).
"""

import secrets

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..platform.database import rows_changed
from ..platform.errors import json_error
from ..platform.rate_limits import limit_sign_in, limit_writes
from ..platform.routes import Access, access
from ..platform.timestamps import utc_now
from ..web.security import send_policy
from . import sso
from .accounts import User
from .api import before_second_factor
from .audit import Action, record
from .pages import BY_PASSKEY, NOT_SIGNED_IN, SignedIn, require_sign_in
from .passkeys import (
    DEFAULT_NAME,
    MAX_PASSKEYS_PER_USER,
    Passkey,
    clean_name,
    distinct_name,
    from_base64url,
    new_challenge,
    passkeys_of,
    relying_party,
    take_challenge,
    to_base64url,
)

# The ceremonies' WebAuthn side (passkey_ceremonies.py) is imported by the views that run one: a
# process that runs none never loads py_webauthn.
bp = Blueprint("passkeys", __name__, template_folder="templates")  # auth/templates/auth/
bp.after_request(send_policy)  # as the other pages
# The one answer to every failed passkey sign-in (unknown passkey, bad signature, stale challenge).
FAILED = "That passkey did not sign you in: try again, or use your email and password."
OPEN = frozenset({"passkeys.authentication_options", "passkeys.sign_in"})  # the rest: signed in


@bp.before_request
def signed_in_but_to_sign_in() -> ResponseReturnValue | None:
    """Send anyone not signed in to the sign-in form (a ceremony's JSON request: 403), but from
    the passkey sign-in itself."""
    if request.endpoint in OPEN or current_user.is_authenticated:
        return None
    if request.is_json:
        return json_error(403, "Forbidden", NOT_SIGNED_IN)
    return require_sign_in()


def options_answer(options: str) -> Response:
    """Answer a ceremony's options, JSON the browser's WebAuthn API takes (bytes in base64url)."""
    return Response(options, mimetype="application/json")


def refused(detail: str) -> ResponseReturnValue:
    """Answer a ceremony that failed: 422 and why."""
    return json_error(422, "Unprocessable Content", detail)


def lock_passkeys(user_id: int) -> None:
    """Keep other changes of this user's passkeys waiting until the commit: their user's row is
    locked (SELECT ... FOR UPDATE), so a count or a name read next holds. SQLite ignores the
    lock; it takes one write at a time, so a check made after a write holds there, and the
    unique index on (user_id, name) refuses a name taken in between."""
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update())


@bp.post("/passkeys/new/options")
@access(Access.PAGE)
@limit_writes
def registration_options() -> ResponseReturnValue:
    """Start adding a passkey: a new challenge, and the passkeys the authenticator must not
    duplicate; the user handle is the one the user's other passkeys carry, else a new one."""
    from .passkey_ceremonies import creation_options

    rp_id, _ = relying_party()
    kept = passkeys_of(current_user.id)
    handle = kept[0].user_handle if kept else secrets.token_bytes(32)
    challenge = new_challenge("register", handle=to_base64url(handle))
    kept_ids = [passkey.credential_id for passkey in kept]
    return options_answer(creation_options(rp_id, current_user.email, handle, challenge, kept_ids))


@bp.post("/passkeys/new")
@access(Access.PAGE)
@limit_writes
def register() -> ResponseReturnValue:
    """Verify the authenticator's new credential and store it under the name given (JSON:
    ``{"credential": ..., "name": ...}``); 201, or 422 saying why not."""
    from .passkey_ceremonies import Refused, verified_registration

    taken = take_challenge("register")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        return refused("Expected a JSON object with the authenticator's credential.")
    if taken is None:
        return refused("This passkey request expired or was used: add the passkey again.")
    challenge, held = taken
    name = clean_name(str(body.get("name") or "")) or DEFAULT_NAME
    rp_id, origins = relying_party()
    try:
        verified = verified_registration(body["credential"], challenge, rp_id, origins)
    except Refused as exc:
        return refused(f"The authenticator's answer was refused: {exc}")
    user_id = current_user.id
    for _attempt in range(3):  # again when another add took the name first (SQLite)
        lock_passkeys(user_id)
        known = select(Passkey.id).where(Passkey.credential_id == verified.credential_id)
        if db.session.scalar(known) is not None:
            db.session.rollback()
            return refused("This passkey is registered already.")
        taken_names = {passkey.name for passkey in passkeys_of(user_id)}
        passkey = Passkey(
            user_id=user_id,
            credential_id=verified.credential_id,
            user_handle=from_base64url(held["handle"]),
            public_key=verified.public_key,
            sign_count=verified.sign_count,
            backup_eligible=verified.backup_eligible,
            backed_up=verified.backed_up,
            name=distinct_name(name, taken_names),  # "Passkey 2" after "Passkey"
        )
        db.session.add(passkey)
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            continue
        if len(passkeys_of(user_id)) > MAX_PASSKEYS_PER_USER:  # counted after the write
            db.session.rollback()
            return refused(f"You have {MAX_PASSKEYS_PER_USER} passkeys: remove one first.")
        record(Action.PASSKEY_ADDED, user_id, detail=str(passkey.id))
        db.session.commit()
        flash(f"Passkey “{passkey.name}” added.")  # shown by the page passkeys.js reloads
        return jsonify(id=passkey.id, name=passkey.name), 201
    return refused("Passkeys were being added at the same time: add this one again.")


@bp.post("/passkeys/sign-in/options")
@access(Access.PAGE)
@before_second_factor
@limit_writes
def authentication_options() -> ResponseReturnValue:
    """Start a passkey sign-in: a new challenge, no credentials listed (the browser offers the
    passkeys it holds for this site: no email needed)."""
    from .passkey_ceremonies import request_options

    rp_id, _ = relying_party()
    return options_answer(request_options(rp_id, new_challenge("sign-in")))


@bp.post("/passkeys/sign-in")
@access(Access.PAGE)
@before_second_factor
@limit_sign_in
def sign_in() -> ResponseReturnValue:
    """Sign in with a passkey's signature of this session's challenge, in a new session; answer
    where to go next, or 422 with one message whatever failed."""
    from .passkey_ceremonies import Refused, parsed_assertion, verified_assertion

    taken = take_challenge("sign-in")
    try:
        credential = parsed_assertion(request.get_json(silent=True))
    except Refused:
        return refused(FAILED)
    passkey = db.session.scalar(select(Passkey).where(Passkey.credential_id == credential.raw_id))
    handle = credential.response.user_handle
    if taken is None or passkey is None or handle not in (None, passkey.user_handle):
        return refused(FAILED)
    user = db.session.get(User, passkey.user_id)
    rp_id, origins = relying_party()
    try:
        counted = verified_assertion(
            credential, taken[0], rp_id, origins, passkey.public_key, passkey.sign_count
        )
    except Refused:
        return refused(FAILED)
    if user is None or not user.is_active:
        return refused(FAILED)
    passkey.sign_count, passkey.backed_up = counted
    passkey.last_used_at = utc_now()
    record(Action.SIGNED_IN, user, detail="passkey")
    db.session.commit()
    session.clear()  # a new session, as a password sign-in starts
    login_user(SignedIn(user))
    session[BY_PASSKEY] = True  # two factors in one step (pages.hold_back)
    return jsonify(next=url_for("pages.index"))


@bp.get("/passkeys")
@access(Access.PAGE)
def passkey_list() -> ResponseReturnValue:
    """Show the signed-in user's passkeys, with a button to add one, and to rename or remove
    each."""
    return render_template("auth/passkeys.html", passkeys=passkeys_of(current_user.id))


@bp.post("/passkeys/<int:passkey_id>/remove")
@access(Access.PAGE)
@limit_writes
def remove(passkey_id: int) -> ResponseReturnValue:
    """Remove one of the signed-in user's passkeys; it signs in no more. The last way into an
    account is not removed (an account single sign-on made has no password)."""
    user = db.get_or_404(User, current_user.id)
    if not sso.may_remove_a_passkey(user):
        flash(sso.LAST_WAY_IN)
        return redirect(url_for("passkeys.passkey_list"), 303)
    mine = (Passkey.id == passkey_id) & (Passkey.user_id == current_user.id)
    if rows_changed(db.session.execute(delete(Passkey).where(mine))):
        record(Action.PASSKEY_REMOVED, user, detail=str(passkey_id))
        flash("Passkey removed: it signs in no more.")
    db.session.commit()
    return redirect(url_for("passkeys.passkey_list"), 303)


@bp.post("/passkeys/<int:passkey_id>/rename")
@access(Access.PAGE)
@limit_writes
def rename(passkey_id: int) -> ResponseReturnValue:
    """Rename one of the signed-in user's passkeys (the form's ``name``, cleaned; blank once
    cleaned: unchanged); a name another of their passkeys has is refused, saying so."""
    name = clean_name(request.form.get("name", ""))
    mine = select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == current_user.id)
    passkey = db.session.scalar(mine)  # another user's is found no more than a missing one
    if not name or passkey is None:
        return redirect(url_for("passkeys.passkey_list"), 303)
    lock_passkeys(current_user.id)
    if name in {other.name for other in passkeys_of(current_user.id) if other.id != passkey_id}:
        db.session.rollback()
        flash(f"Another passkey is named “{name}”: choose a name of its own.")
        return redirect(url_for("passkeys.passkey_list"), 303)
    passkey.name = name
    try:
        db.session.commit()
    except IntegrityError:  # renamed to the same name at the same moment (SQLite)
        db.session.rollback()
        flash(f"Another passkey is named “{name}”: choose a name of its own.")
    else:
        flash(f"Passkey renamed “{name}”.")
    return redirect(url_for("passkeys.passkey_list"), 303)


def offer_passkeys() -> dict[str, bool]:
    """Tell the templates whether passkeys are offered (PASSKEY_ORIGINS names the site)."""
    return {"passkeys": bool(relying_party()[1])}


def init_app(app: Flask) -> None:
    """Serve the ceremonies and the passkey page when PASSKEY_ORIGINS names the pages' site."""
    app.context_processor(offer_passkeys)
    if app.extensions["settings"].passkey_origins.strip():
        app.register_blueprint(bp)
