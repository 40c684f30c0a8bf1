"""The sign-up pages, when AUTH_SIGN_UP is on: a form to sign up with an address (linked from
the sign-in form; at /verification, named "Send a new link", it mails a lost link again), and
the page the mail's link opens, where the password is chosen and a button creates the account;
both do what the API does (auth/sign_up.py), with the forms' CSRF check. The link's page
confirms nothing by itself: mail scanners open links, and a GET must not spend the token.
"""

from flask import Blueprint, Flask, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import ServiceUnavailable

from ..platform.rate_limits import limit_sign_in
from ..platform.routes import Access, access
from ..web.security import keeps_its_link_secret, send_policy
from .accounts import checked_password
from .pages import to_sign_in
from .recovery import BAD_TOKEN
from .sign_up import ON_ITS_WAY, sign_up, verify

bp = Blueprint("sign_up_pages", __name__, template_folder="templates")  # auth/templates/auth/
Page = tuple[str, int]
bp.after_request(send_policy)  # as the other pages


def sign_up_form(
    email: str = "", sent: str | None = None, error: str | None = None, new_link: bool = False
) -> str:
    """Render the sign-up form, or the sentence saying the link is on its way; ``new_link``:
    the same form under the name "Send a new link", for an address whose link was lost."""
    return render_template(
        "auth/sign_up.html", email=email, sent=sent, error=error, new_link=new_link
    )


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
    return mail_a_link(new_link=False)


@bp.get("/verification")
@access(Access.PAGE)
def new_link_form() -> ResponseReturnValue:
    """Show the form mailing a new link to confirm an address (the sign-up form, renamed)."""
    return sign_up_form(new_link=True)


@bp.post("/verification")
@access(Access.PAGE)
@limit_sign_in
def new_link() -> ResponseReturnValue:
    """Mail a new link confirming an address: a sign-up, answered as one."""
    return mail_a_link(new_link=True)


def mail_a_link(new_link: bool) -> ResponseReturnValue:
    """Hand over the mail of a link for the form's address (sign_up.sign_up); answer the
    same page whether or not the address is taken, 422 with the reason for a malformed
    address, 503 with mail off."""
    email = request.form.get("email", "")  # checked whole: a cut one could be another address
    try:
        sign_up(email)
    except ValueError as exc:
        return sign_up_form(email[:254], error=f"Check the form: {exc}.", new_link=new_link), 422
    except ServiceUnavailable as exc:
        return sign_up_form(email[:254], error=exc.description, new_link=new_link), 503
    return sign_up_form(email[:254], sent=ON_ITS_WAY, new_link=new_link)


def confirm_page(
    token: str, error: str | None = None, status: int = 200, spent: bool = False
) -> Page:
    """Render the page the mail's link opens: the password to choose, and a button; ``spent``:
    the link is of no use, and the page offers a new one."""
    page = render_template("auth/verify_email.html", token=token, error=error, spent=spent)
    return page, status


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
    form, saying so; 422 with the reason."""
    token, password = request.form.get("token", "")[:512], request.form.get("password", "")
    try:
        checked_password(password)
    except ValueError as exc:
        return confirm_page(token, f"Choose another password: {exc}.", 422)
    email = verify(token, password)
    if email is None:
        return confirm_page(token, BAD_TOKEN, 422, spent=True)
    return to_sign_in(email, "Your address is confirmed: sign in with the password you chose.")


def init_app(app: Flask) -> None:
    """Serve the sign-up pages when AUTH_SIGN_UP is on."""
    if app.extensions["settings"].auth_sign_up:
        app.register_blueprint(bp)
