"""The sign-up pages, when AUTH_SIGN_UP is on: a form to sign up (linked from the sign-in form),
and the page the mail's link opens, whose button confirms the address; both do what the API
does (auth/sign_up.py), with the forms' CSRF check. The link's page confirms nothing by itself:
mail scanners open links, and a GET must not spend the token.
"""

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import ServiceUnavailable

from ..platform.rate_limits import limit_sign_in
from ..web.security import send_policy
from .accounts import checked_password
from .recovery import BAD_TOKEN
from .sign_up import ON_ITS_WAY, sign_up, verify

bp = Blueprint("sign_up_pages", __name__)
bp.after_request(send_policy)  # as the other pages


def sign_up_form(email: str = "", sent: str | None = None, error: str | None = None) -> str:
    """Render the sign-up form, or the sentence saying the link is on its way."""
    return render_template("pages/sign_up.html", email=email, sent=sent, error=error)


@bp.get("/sign-up")
def form() -> ResponseReturnValue:
    """Show the sign-up form."""
    return sign_up_form()


@bp.post("/sign-up")
@limit_sign_in
def submit() -> ResponseReturnValue:
    """Sign up; answer the same page whether or not the address is taken, 422 with the
    reason for a malformed address or password, 503 with mail off."""
    email, password = request.form.get("email", "")[:254], request.form.get("password", "")
    try:
        sign_up(email, checked_password(password))
    except ValueError as exc:
        return sign_up_form(email, error=f"Check the form: {exc}."), 422
    except ServiceUnavailable as exc:
        return sign_up_form(email, error=exc.description), 503
    return sign_up_form(email, sent=ON_ITS_WAY)


@bp.get("/verify-email")
def confirm_form() -> ResponseReturnValue:
    """Show the page the mail's link opens: a button that confirms the address."""
    token = request.args.get("token", "")[:512]
    return render_template("pages/verify_email.html", token=token, error=None)


@bp.post("/verify-email")
@limit_sign_in
def confirm() -> ResponseReturnValue:
    """Confirm the address, then send the browser to the sign-in form; 422 with the reason."""
    token = request.form.get("token", "")[:512]
    if not verify(token):
        return render_template("pages/verify_email.html", token=token, error=BAD_TOKEN), 422
    return redirect(url_for("auth_pages.sign_in_form"), 303)


def init_app(app: Flask) -> None:
    """Serve the sign-up pages when AUTH_SIGN_UP is on."""
    if app.extensions["settings"].auth_sign_up:
        app.register_blueprint(bp)
