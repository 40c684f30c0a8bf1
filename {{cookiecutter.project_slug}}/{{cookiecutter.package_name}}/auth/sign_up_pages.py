"""The sign-up pages, when AUTH_SIGN_UP is on: a form to sign up with an address (linked from
the sign-in form), and the page the mail's link opens, where the password is chosen and a button
creates the account; both do what the API does (auth/sign_up.py), with the forms' CSRF check.
The link's page confirms nothing by itself: mail scanners open links, and a GET must not spend
the token.
"""

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import ServiceUnavailable

from ..platform.rate_limits import limit_sign_in
from ..platform.routes import Access, access
from ..web.security import keeps_its_link_secret, send_policy
from .accounts import checked_password
from .recovery import BAD_TOKEN
from .sign_up import ON_ITS_WAY, sign_up, verify

bp = Blueprint("sign_up_pages", __name__, template_folder="templates")  # auth/templates/auth/
Page = tuple[str, int]
bp.after_request(send_policy)  # as the other pages


def sign_up_form(email: str = "", sent: str | None = None, error: str | None = None) -> str:
    """Render the sign-up form, or the sentence saying the link is on its way."""
    return render_template("auth/sign_up.html", email=email, sent=sent, error=error)


@bp.get("/sign-up")
@access(Access.PAGE)
def form() -> ResponseReturnValue:
    """Show the sign-up form."""
    return sign_up_form()


@bp.post("/sign-up")
@access(Access.PAGE)
@limit_sign_in
def submit() -> ResponseReturnValue:
    """Sign up; answer the same page whether or not the address is taken, 422 with the
    reason for a malformed address, 503 with mail off."""
    email = request.form.get("email", "")  # checked whole: a cut one could be another address
    try:
        sign_up(email)
    except ValueError as exc:
        return sign_up_form(email[:254], error=f"Check the form: {exc}."), 422
    except ServiceUnavailable as exc:
        return sign_up_form(email[:254], error=exc.description), 503
    return sign_up_form(email[:254], sent=ON_ITS_WAY)


def confirm_page(token: str, error: str | None = None, status: int = 200) -> Page:
    """Render the page the mail's link opens: the password to choose, and a button."""
    return render_template("auth/verify_email.html", token=token, error=error), status


@bp.get("/verify-email")
@access(Access.PAGE)
@keeps_its_link_secret
def confirm_form() -> ResponseReturnValue:
    """Show the page the mail's link opens: choosing the password confirms the address."""
    return confirm_page(request.args.get("token", "")[:512])


@bp.post("/verify-email")
@access(Access.PAGE)
@limit_sign_in
@keeps_its_link_secret
def confirm() -> ResponseReturnValue:
    """Create the account with the chosen password, then send the browser to the sign-in
    form; 422 with the reason."""
    token, password = request.form.get("token", "")[:512], request.form.get("password", "")
    try:
        checked_password(password)
    except ValueError as exc:
        return confirm_page(token, f"Choose another password: {exc}.", 422)
    if not verify(token, password):
        return confirm_page(token, BAD_TOKEN, 422)
    return redirect(url_for("auth_pages.sign_in_form"), 303)


def init_app(app: Flask) -> None:
    """Serve the sign-up pages when AUTH_SIGN_UP is on."""
    if app.extensions["settings"].auth_sign_up:
        app.register_blueprint(bp)
