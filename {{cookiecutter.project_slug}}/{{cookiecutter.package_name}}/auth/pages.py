"""Sign in to the pages and out, with Flask-Login: the session cookie (HttpOnly, SameSite=Lax,
Secure in production: web/security.py) names the user and their login generation, so a new
password, a deactivation (accounts.revoke) or a sign-out ends every browser session of theirs.

Only the pages read this cookie: the API takes bearer tokens alone, and is exempt from CSRF
checks because no cookie of the browser's can authorise a request there.
"""

import time

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import UserMixin, current_user, login_user, logout_user
from pydantic import ValidationError
from werkzeug.exceptions import Forbidden

from ..extensions import db, login_manager
from ..platform.errors import json_error
from ..platform.rate_limits import limit_sign_in
from ..platform.routes import Access, access, access_of
from ..web.htmx import is_htmx
from ..web.security import send_policy
from .accounts import User
from .api import SETTING_UP, TokenIn, before_second_factor, held_back
from .audit import Action, record
from .sign_in_limits import SecondStepNeeded, authenticate, counted_code_check

bp = Blueprint("auth_pages", __name__, template_folder="templates")  # auth/templates/auth/
bp.after_request(send_policy)  # as the other pages
# The one answer to every failed sign-in (unknown email, wrong password, inactive user).
FAILED = "Wrong email or password."
# The answer to a post missing a field, or with one empty or longer than the form allows.
INCOMPLETE = "Type your email and your password to sign in."
# Why the HTMX and JSON requests of anyone not signed in are refused (main.js shows it).
NOT_SIGNED_IN = "You are not signed in, or your session ended: sign in."
# The page's answer to a right password of an account whose address is not confirmed (the API's
# names its own route); sign_in.html adds the way to a new link.
UNVERIFIED = "Confirm your address first: open the link mailed to it."
SIGN_IN_AS = "sign_in_as"  # the session's key for the address the next sign-in form shows
# The session's key for the second step: the user's id and login generation, and until when.
SECOND_STEP = "second_step"
STEP_SECONDS = 300  # the time a right password leaves for the code
MAX_CODE_LENGTH = 64
STEP_ENDED = "Sign in again: the time for the code ran out, or the account changed."
NO_CODE = "Type the code your authenticator app shows, or one of your recovery codes."
WRONG_CODE = "Wrong code: type the one your authenticator app shows now, or a recovery code."
# The session's key saying a passkey signed it in: two factors in one step, which
# AUTH_REQUIRE_SECOND_FACTOR holds back from nothing.
BY_PASSKEY = "by_passkey"
# The session's key saying a provider signed it in (auth/sso_pages.py): the provider's rules on
# factors hold, not AUTH_REQUIRE_SECOND_FACTOR.
BY_PROVIDER = "by_provider"
SECOND_FACTOR_FIRST = "This service asks every account for a second factor: turn yours on first."


class SignedIn(UserMixin):  # type: ignore[misc]  # Flask-Login ships no type hints
    """The user a session names, as Flask-Login wants it; its id holds the login generation."""

    def __init__(self, user: User) -> None:
        """Keep what the pages show and what the session's id is made of."""
        self.id, self.email, self.generation = user.id, user.email, user.login_generation

    def get_id(self) -> str:
        """Return the id the session stores: ``<user id>:<login generation>``."""
        return f"{self.id}:{self.generation}"


def load_user(session_id: str) -> SignedIn | None:
    """Return the user a session names if still active at the same generation, else None."""
    user_id, _, generation = session_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit() and generation.isascii()):
        return None  # not an id this module wrote
    user = db.session.get(User, int(user_id))
    if user is None or not user.is_active or str(user.login_generation) != generation:
        return None
    return SignedIn(user)


def ask_to_sign_in() -> ResponseReturnValue:
    """Send a browser to the sign-in form; tell HTMX why (main.js shows the detail). A 403, as
    a 401 must name an HTTP authentication scheme (RFC 9110) and a form is none."""
    if is_htmx():
        return json_error(403, "Forbidden", NOT_SIGNED_IN)
    return redirect(url_for("auth_pages.sign_in_form"), 303)


def require_sign_in() -> ResponseReturnValue | None:
    """Let a signed-in user's request go on (None); send anyone else to the sign-in form, as
    Flask-Login's unauthorized handler does (ask_to_sign_in). The pages that need a signed-in
    user call it, or run it before each request of their blueprint."""
    if current_user.is_authenticated:
        return None
    answer: ResponseReturnValue = login_manager.unauthorized()
    return answer


def form(
    email: str = "", error: str | None = None, status: int = 200, unverified: bool = False
) -> ResponseReturnValue:
    """Render the sign-in form, the email kept as typed, with the failure's message if any
    (``unverified``: with the way to a new link confirming the address)."""
    sign_up = current_app.extensions["settings"].auth_sign_up
    page = render_template(
        "auth/sign_in.html", email=email, error=error, sign_up=sign_up, unverified=unverified
    )
    return page, status


def to_sign_in(email: str, message: str) -> ResponseReturnValue:
    """Send the browser to the sign-in form, which shows ``message`` once and ``email`` typed in
    (kept in the session, never in the URL, where logs and history would keep it)."""
    session[SIGN_IN_AS] = email
    flash(message)
    return redirect(url_for("auth_pages.sign_in_form"), 303)


@bp.get("/sign-in")
@access(Access.PAGE)
@before_second_factor
def sign_in_form() -> ResponseReturnValue:
    """Show the sign-in form, with the address a step before it left (to_sign_in)."""
    return form(session.pop(SIGN_IN_AS, ""))


@bp.post("/sign-in")
@access(Access.PAGE)
@before_second_factor
@limit_sign_in
def sign_in() -> ResponseReturnValue:
    """Sign in with the form's email and password in a new session, then go to the items;
    answer 422 with the form and one message whatever failed (a 401 would need an HTTP
    authentication scheme to name); the limits count it as the API's sign-in. A post the API
    would refuse as a body (TokenIn) is refused before any password check: 422, uncounted."""
    email = request.form.get("email", "")
    fields = {field: request.form.get(field) for field in ("email", "password")}
    try:
        given = TokenIn.model_validate(fields)
    except ValidationError:  # the inputs are required and bounded: a crafted post, one sentence
        return form(email, INCOMPLETE, 422)
    try:
        user = authenticate(given.email, given.password)
    except Forbidden:  # the password is right, the address not confirmed yet
        return form(email, UNVERIFIED, 403, unverified=True)
    except SecondStepNeeded as needed:  # the password is right: the code comes next
        session.clear()  # not signed in: the session only names whose code the next form takes
        pending = needed.user
        session[SECOND_STEP] = [pending.id, pending.login_generation, time.time() + STEP_SECONDS]
        return redirect(url_for("auth_pages.code_form"), 303)
    if user is None:
        return form(email, FAILED, 422)
    return signed_in(user, "password")


def signed_in(user: User, how: str) -> ResponseReturnValue:
    """Sign ``user`` in, in a new session (the audit trail says ``how``), and go to the items."""
    start_session(user)
    record(Action.SIGNED_IN, user, detail=how)
    db.session.commit()
    return redirect(url_for("pages.index"), 303)


def start_session(user: User) -> None:
    """Sign ``user`` in, in a new session: nothing set before (its CSRF token) is kept."""
    session.clear()
    login_user(SignedIn(user))


def pending_user() -> User | None:
    """Return the user whose right password this session's second step follows, while it is
    fresh (STEP_SECONDS) and the user active, confirmed and at the same login generation (as
    the password's check asks); else None."""
    step = session.get(SECOND_STEP)
    if not (isinstance(step, list) and len(step) == 3 and time.time() < step[2]):
        return None
    user = db.session.get(User, step[0])
    if user is None or not user.is_active or user.email_verified_at is None:
        return None
    return user if user.login_generation == step[1] else None


def code_page(error: str | None = None, status: int = 200) -> ResponseReturnValue:
    """Render the second step's form, with the failure's message if any."""
    return render_template("auth/sign_in_code.html", error=error), status


@bp.get("/sign-in/code")
@access(Access.PAGE)
@before_second_factor
def code_form() -> ResponseReturnValue:
    """Ask for the code of the second factor, after a right password in this session."""
    if pending_user() is None:
        return to_sign_in("", STEP_ENDED)
    return code_page()


@bp.post("/sign-in/code")
@access(Access.PAGE)
@before_second_factor
@limit_sign_in
def sign_in_with_code() -> ResponseReturnValue:
    """Sign in with the code (or a recovery code) of the account whose password this session
    took, counted against the account as a password is; 422 with the form when it is wrong."""
    user = pending_user()
    if user is None:
        return to_sign_in("", STEP_ENDED)
    code = request.form.get("code", "")
    if not 1 <= len(code) <= MAX_CODE_LENGTH:
        return code_page(NO_CODE, 422)
    if not counted_code_check(user, code):
        return code_page(WRONG_CODE, 422)
    return signed_in(user, "code")


@bp.post("/sign-out")
@access(Access.PAGE)
@before_second_factor
def sign_out() -> ResponseReturnValue:
    """Sign out, ending this user's other browser sessions too (a copied cookie included)."""
    if current_user.is_authenticated:
        user = db.session.get(User, current_user.id)
        if user is not None:
            user.login_generation = User.login_generation + 1  # counted by the database
            record(Action.SIGNED_OUT, user)
            db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("pages.index"), 303)


def hold_back() -> ResponseReturnValue | None:
    """Before each page, with AUTH_REQUIRE_SECOND_FACTOR: send a session that a password signed
    in, of an account without a second factor (held_back), to the security page from any page
    not declared before_second_factor; an HTMX or JSON request gets 403 saying why."""
    if not current_app.extensions["settings"].auth_require_second_factor:
        return None
    endpoint = request.endpoint
    if endpoint is None or not current_user.is_authenticated:
        return None
    if session.get(BY_PASSKEY) or session.get(BY_PROVIDER):
        return None
    view = current_app.view_functions[endpoint]
    if access_of(current_app, endpoint) is not Access.PAGE or getattr(view, SETTING_UP, False):
        return None  # the API's routes: the token guard holds them back
    user = db.session.get(User, current_user.id)
    if user is None or not held_back(user):
        return None
    if is_htmx() or request.is_json:
        return json_error(403, "Forbidden", SECOND_FACTOR_FIRST)
    flash(SECOND_FACTOR_FIRST)
    return redirect(url_for("security_pages.security"), 303)


def init_app(app: Flask) -> None:
    """Load the signed-in user from the session; serve the sign-in form and sign-out; stand
    before the pages' forms that change something (auth/templates/auth/gate.html)."""
    # "basic": a session seen from another address or browser is marked not fresh, not ended
    # ("strong" would sign out a phone at each change of network).
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(ask_to_sign_in)
    login_manager.init_app(app)
    app.jinja_env.globals["gate"] = "auth/gate.html"
    app.before_request(hold_back)
    app.register_blueprint(bp)
