"""The password reset pages: a form asking for the mail, and the form the mail's link opens to
set the new password; both do what the API does (auth/recovery.py), with the forms' CSRF check.
"""

from flask import Blueprint, Flask, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import ServiceUnavailable

from ..platform.rate_limits import limit_sign_in
from ..platform.routes import Access, access
from ..web.security import keeps_its_link_secret, send_policy
from .accounts import checked_password
from .pages import to_sign_in
from .recovery import BAD_TOKEN, ON_ITS_WAY, mail_reset, reset_password

bp = Blueprint("recovery_pages", __name__, template_folder="templates")  # auth/templates/auth/
Page = tuple[str, int]
bp.after_request(send_policy)  # as the other pages


@bp.get("/password-reset")
@access(Access.PAGE)
def request_form() -> ResponseReturnValue:
    """Show the form asking for a password reset mail."""
    return reset_form()


@bp.post("/password-reset")
@access(Access.PAGE)
@limit_sign_in
def request_reset() -> ResponseReturnValue:
    """Mail a reset link if the address has an account; answer the same page either way."""
    email = request.form.get("email", "")  # checked whole: a cut one could be another address
    try:
        mail_reset(email)
    except ValueError as exc:
        return reset_form(email[:254], error=f"Check the address: {exc}."), 422
    except ServiceUnavailable as exc:
        return reset_form(email[:254], error=exc.description), 503
    return reset_form(email[:254], sent=ON_ITS_WAY)


def reset_form(email: str = "", sent: str | None = None, error: str | None = None) -> str:
    """Render the form asking for a reset mail, or the sentence saying it is on its way."""
    return render_template("auth/password_reset.html", email=email, sent=sent, error=error)


def new_password_form(
    token: str, error: str | None = None, status: int = 200, spent: bool = False
) -> Page:
    """Render the form setting a new password, carrying the link's token; ``spent``: the link
    is of no use, and the page offers to ask for a new one."""
    page = render_template("auth/new_password.html", token=token, error=error, spent=spent)
    return page, status


@bp.get("/reset-password")
@access(Access.PAGE)
@keeps_its_link_secret
def new_password() -> ResponseReturnValue:
    """Show the form the mail's link opens."""
    return new_password_form(request.args.get("token", "")[:512])


@bp.post("/reset-password")
@access(Access.PAGE)
@limit_sign_in
@keeps_its_link_secret
def set_new_password() -> ResponseReturnValue:
    """Set the new password, then send the browser to the sign-in form, saying so; 422 with
    the reason."""
    token, password = request.form.get("token", "")[:512], request.form.get("password", "")
    try:
        checked_password(password)
    except ValueError as exc:
        return new_password_form(token, f"Choose another password: {exc}.", 422)
    email = reset_password(token, password)
    if email is None:
        return new_password_form(token, BAD_TOKEN, 422, spent=True)
    return to_sign_in(email, "Your password is changed and your other sessions are signed out.")


def init_app(app: Flask) -> None:
    """Serve the password reset pages."""
    app.register_blueprint(bp)
