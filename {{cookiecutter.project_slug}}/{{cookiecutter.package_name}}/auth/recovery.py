"""Password reset by mail: POST /api/auth/password-reset mails a link to an account's address,
POST /api/auth/password sets a new password with the link's token, ending every token and
browser session of the account (as ``flask users password`` does).

The token is signed with SECRET_KEY (itsdangerous, Flask's own dependency), expires after
AUTH_RESET_LIFETIME, and names a digest of the account's password hash and login generation:
once used, or once the password changes another way, it matches no more. It is spent by one
request only: the new password is stored by an update conditional on that same state, so of
requests arriving at once with one token, one sets it and the others are refused. Setting it
also confirms the address (the link reached it).

A request is answered the same whether or not the address has an account, after the same work:
the address is checked and counted, and a mail job handed over (platform/mail.py); the job
looks the account up in the background. Requests are limited per client address (with the
sign-ins) and per address asked about (RATELIMIT_MAIL_ACCOUNT), known or not.
"""

import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Callable

from flask import Blueprint, Flask, abort, current_app, request
from flask.typing import ResponseReturnValue
from itsdangerous import BadData, URLSafeTimedSerializer
from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, update
from werkzeug.exceptions import TooManyRequests

from ..extensions import db
from ..platform import mail
from ..platform.database import rows_changed
from ..platform.errors import json_error
from ..platform.operations import Answer, Operation, no_content
from ..platform.rate_limits import limit_sign_in
from ..platform.routes import Access, access
from ..platform.timestamps import utc_now
from .accounts import (
    HASHING,
    MAX_PASSWORD_LENGTH,
    Address,
    Token,
    User,
    account_key,
    hasher,
    normalised,
    user_by_email,
)
from .audit import Action, record
from .sign_in_limits import seconds_left

# The mail templates (mail/<name>.txt and .html) live in this feature's templates folder.
bp = Blueprint("auth_recovery", __name__, template_folder="templates")
log = logging.getLogger(__name__)
SUBJECT = "Set a new password"
ON_ITS_WAY = "If an account has this address, a link to set its password is on its way."
BAD_TOKEN = "This link is invalid, expired or used: ask for a new one."  # noqa: S105  (no secret)
RESET_JOB = "password_reset"  # the mail job's name (platform/mail.py)
# What a 403 of a mailed link's route means, in the OpenAPI document.
LINK_REFUSED = {"403": "The mailed link's token is invalid, expired or used: ask for a new link."}


class ResetIn(BaseModel):
    """The body asking for a password reset: the account's email."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Address


class NewPasswordIn(BaseModel):
    """The body setting a new password: the token the mail's link carries, and the password."""

    model_config = ConfigDict(extra="forbid", strict=True)

    token: str = Field(max_length=512)
    password: str = Field(min_length=8, max_length=MAX_PASSWORD_LENGTH)


class Accepted(Answer):
    """The request is taken: a sentence saying what happens next."""

    detail: str


def serializer() -> URLSafeTimedSerializer:
    """Return the signer of reset tokens (its own salt: no other signed value passes as one)."""
    keys = current_app.extensions["settings"].secret_keys()  # SECRET_KEY signs; all verify
    return URLSafeTimedSerializer(keys, salt="password-reset")


def state(user: User) -> str:
    """Return what a reset token is bound to: a digest of the password hash and generation."""
    return hashlib.sha256(f"{user.password_hash}:{user.login_generation}".encode()).hexdigest()


def reset_token(user: User) -> str:
    """Return a token that sets ``user``'s password once, within AUTH_RESET_LIFETIME; random
    bits make two tokens asked for in the same second differ."""
    return str(serializer().dumps([user.id, state(user), secrets.token_urlsafe(8)]))


def user_for_reset(token: str) -> User | None:
    """Return the active user whose password ``token`` may set, else None (forged, expired,
    used, or the password or the sessions changed since it was made)."""
    lifetime = current_app.extensions["settings"].auth_reset_lifetime
    return bound_user(serializer(), token, lifetime, state)


def bound_user(
    signer: URLSafeTimedSerializer, token: str, lifetime: int, state: Callable[[User], str]
) -> User | None:
    """Return the active user a token of ``signer`` names, if it is younger than ``lifetime``
    seconds and the user's ``state`` is still the one it was made with, else None."""
    try:
        user_id, bound, _ = signer.loads(token, max_age=lifetime)
    except (BadData, TypeError, ValueError):  # ValueError/TypeError: a payload of another shape
        return None
    if not (isinstance(user_id, int) and isinstance(bound, str)):
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.is_active or not hmac.compare_digest(state(user), bound):
        return None
    return user


def inbox(address: str) -> str:
    """Return the inbox a stored address reaches, for counting its mail: without a ``+tag``
    (RFC 5233 subaddresses, which most providers deliver to the one inbox)."""
    local, _, domain = address.rpartition("@")
    return f"{local.partition('+')[0] or local}@{domain}"


def count_mail(address: str) -> None:
    """Count a mail to ``address``'s inbox (an account or not, alike) in the limiter's
    storage; raise 429 once RATELIMIT_MAIL_ACCOUNT is spent: an inbox is not flooded from
    anywhere, nor through its +tags."""
    limiter = current_app.extensions["rate_limits"]
    if not limiter.enabled:
        return
    key = "mail-" + account_key(inbox(address))
    limits = parse_many(current_app.extensions["settings"].ratelimit_mail_account)
    try:
        spent = limiter.run(lambda strategy: [x for x in limits if not strategy.hit(x, key)])
    except Exception:  # as rate_limits.count does: logged, let through
        log.exception("counting a mail to an account failed: sent uncounted")
        return
    if spent:
        raise TooManyRequests(
            f"Too many mails to this address: {spent[0]}.",
            retry_after=seconds_left(limiter, spent[0], key),
        )


def json_body() -> dict[str, object]:
    """Return the request's JSON object; raise 400 when it is none."""
    body = request.get_json()
    if not isinstance(body, dict):
        abort(400, description="The body must be a JSON object.")
    return body


def mail_reset(email: str) -> None:
    """Hand over the job mailing a link that sets a new password to ``email``'s account, the
    same whether or not it has one; raise 503 with mail off, 429 past the limit, ValueError
    for a malformed address."""
    mail.require_mail()
    address = normalised(email)
    count_mail(address)
    mail.send_later(RESET_JOB, address)


def reset_mail(address: str) -> mail.Envelope | None:
    """Return the mail with a link setting a new password for the active account with this
    address, else None (no account, or a deactivated one: it could not sign in anyway), after
    the same work: a token signed and the message rendered and written out either way, so the
    requests that follow are not slowed by one kind more than the other."""
    user = user_by_email(address)
    active = user is not None and user.is_active
    token = reset_token(user) if user is not None and active else unsent_token()
    minutes = math.ceil(current_app.extensions["settings"].auth_reset_lifetime / 60)
    path = "/reset-password"
    envelope = link_mail(address, token, SUBJECT, "password_reset", path, minutes=minutes)
    if user is None or not active:
        envelope.message.as_string()  # as smtplib writes out a mail it sends
        return None
    log.info("password reset mailed", extra={"user_id": user.id})
    return envelope


def unsent_token() -> str:
    """Return a token signed like a reset token, for a message that is never sent."""
    return str(serializer().dumps([0, "0" * 64, secrets.token_urlsafe(8)]))


def link_mail(
    address: str, token: str, subject: str, template: str, path: str, **context: object
) -> mail.Envelope:
    """Return the message ``template`` to ``address``, with a link to PUBLIC_URL's ``path``
    carrying ``token``."""
    link = f"{current_app.extensions['settings'].public_url}{path}?token={token}"
    return mail.Envelope(address, mail.message(address, subject, template, link=link, **context))


def reset_password(token: str, password: str) -> str | None:
    """Set a new password with a reset token, ending the account's tokens and browser
    sessions and confirming its address; return the address. None when the token is invalid,
    expired or used (by this request or one at the same moment)."""
    user = user_for_reset(token)
    if user is None:
        return None
    email = user.email  # read before the commit expires it
    new_hash = HASHING.submit(hasher.hash, password).result()
    # Only while the state the token is bound to holds: of requests at once, one wins.
    spent = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            User.password_hash.is_not_distinct_from(user.password_hash),  # None: no password
            User.login_generation == user.login_generation,
        )
        .values(
            password_hash=new_hash,
            login_generation=User.login_generation + 1,
            email_verified_at=func.coalesce(User.email_verified_at, utc_now()),
        )
        .execution_options(synchronize_session=False)
    )
    if rows_changed(spent) != 1:
        db.session.rollback()
        return None
    db.session.execute(delete(Token).where(Token.user_id == user.id))
    record(Action.PASSWORD_RESET, user)
    db.session.commit()
    return email


@bp.post("/password-reset")
@access(Access.ANYONE)
@limit_sign_in
def request_reset() -> tuple[dict[str, object], int]:
    """Mail a link setting a new password to the account with this email, if there is one."""
    mail.require_mail()  # before the body: a client learns at once that no mail will come
    mail_reset(ResetIn.model_validate(json_body()).email)
    return Accepted(detail=ON_ITS_WAY).model_dump(), 202


@bp.post("/password")
@access(Access.ANYONE)
@limit_sign_in
def set_password() -> ResponseReturnValue:
    """Set a new password with a reset token; end the account's tokens and browser sessions."""
    given = NewPasswordIn.model_validate(json_body())
    if reset_password(given.token, given.password) is None:
        return json_error(403, "Forbidden", [{"field": "token", "message": BAD_TOKEN}])
    return no_content()


OPERATIONS = {
    "auth_recovery.request_reset": Operation(
        {"202": ("The same answer, whether or not the address has an account.", Accepted, ())},
        ("400", "413", "415", "422", "503"),
        body=ResetIn,
    ),
    "auth_recovery.set_password": Operation(
        {"204": ("The password is set; the account's tokens and sessions ended.", None, ())},
        ("400", "403", "413", "415", "422", "503"),
        body=NewPasswordIn,
        media_type="",
        texts=LINK_REFUSED,
    ),
}


def init_app(app: Flask) -> None:
    """Serve the password reset routes; register the reset mail's job."""
    mail.register(app, RESET_JOB, reset_mail)
    app.register_blueprint(bp, url_prefix="/api/auth")
