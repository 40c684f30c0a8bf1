"""Sign-up by mail, when AUTH_SIGN_UP is on: POST /api/auth/sign-up mails a link to an address,
and POST /api/auth/verify, with the link's token and a password, creates the account (or
completes one made unverified before), its address confirmed. POST /api/auth/verification is
the same as a sign-up: it mails a new link.

The password is chosen when the link is opened, never before: an account cannot be taken by
someone who signs up an address they do not own with a password of their own (pre-hijacking),
since no password exists until the address's owner sets one. An unverified account (made
before this rule, or by an older version) gets no token and no session (sign_in_limits.py
refuses it after a correct password only), and its password is replaced when it is confirmed.

The token is signed with SECRET_KEY (its own salt) and names the address; it expires after
AUTH_VERIFY_LIFETIME and works once: the account it creates is verified, and a verified account
takes no link (two requests at once: the database's unique address lets one create it). A
sign-up is answered the same whether or not the address is taken, after the same work: the
address is checked and counted, and a mail job handed over (platform/mail.py), which looks the
address up in the background and mails a free or unverified one only. Sign-ups are limited per
client address (with the sign-ins) and per address (RATELIMIT_MAIL_ACCOUNT, with the password
resets), taken or not.
"""

import logging
import math
import secrets

from flask import Blueprint, Flask, current_app
from flask.typing import ResponseReturnValue
from itsdangerous import BadData, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..platform import mail
from ..platform.database import rows_changed
from ..platform.errors import json_error
from ..platform.operations import Operation, no_content
from ..platform.rate_limits import limit_sign_in
from ..platform.routes import Access, access
from ..platform.timestamps import utc_now
from .accounts import (
    HASHING,
    MAX_PASSWORD_LENGTH,
    Address,
    Token,
    User,
    hasher,
    normalised,
    user_by_email,
)
from .audit import Action, record
from .recovery import BAD_TOKEN, LINK_REFUSED, Accepted, count_mail, json_body, link_mail

bp = Blueprint("auth_sign_up", __name__, template_folder="templates")
log = logging.getLogger(__name__)
SUBJECT = "Confirm your address"
ON_ITS_WAY = "If this address has no verified account yet, a link to confirm it is on its way."
SIGN_UP_JOB = "sign_up"  # the mail job's name (platform/mail.py)


class SignUpIn(BaseModel):
    """The body of a sign-up: the address (the password is chosen when the link is opened)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Address


class VerifyIn(BaseModel):
    """The body confirming an address: the token the mail's link carries, and the password."""

    model_config = ConfigDict(extra="forbid", strict=True)

    token: str = Field(max_length=512)
    password: str = Field(min_length=8, max_length=MAX_PASSWORD_LENGTH)


def serializer() -> URLSafeTimedSerializer:
    """Return the signer of sign-up tokens (its own salt: a reset token is none)."""
    keys = current_app.extensions["settings"].secret_keys()  # SECRET_KEY signs; all verify
    return URLSafeTimedSerializer(keys, salt="sign-up")


def sign_up_token(address: str) -> str:
    """Return a token that creates the account of ``address`` once, within
    AUTH_VERIFY_LIFETIME; random bits make two tokens of one second differ."""
    return str(serializer().dumps([address, secrets.token_urlsafe(8)]))


def address_to_confirm(token: str) -> str | None:
    """Return the address ``token`` proves, else None (forged, expired, or another shape)."""
    lifetime = current_app.extensions["settings"].auth_verify_lifetime
    try:
        address, _ = serializer().loads(token, max_age=lifetime)
    except (BadData, TypeError, ValueError):  # ValueError/TypeError: a payload of another shape
        return None
    return address if isinstance(address, str) else None


def sign_up_mail(address: str) -> mail.Envelope | None:
    """Return the mail with a link confirming ``address``, unless it has an account that is
    verified or deactivated (then None: nothing is sent), after the same work either way (the
    message rendered and written out), so the requests that follow are not slowed by one kind
    more than the other."""
    user = user_by_email(address)
    hours = math.ceil(current_app.extensions["settings"].auth_verify_lifetime / 3600)
    token = sign_up_token(address)
    envelope = link_mail(address, token, SUBJECT, "verify_email", "/verify-email", hours=hours)
    if user is not None and (user.email_verified_at is not None or not user.is_active):
        envelope.message.as_string()  # as smtplib writes out a mail it sends
        return None
    log.info("sign-up mailed", extra={"user_id": user.id if user else None})
    return envelope


def sign_up(email: str) -> None:
    """Hand over the job mailing a link that confirms ``email``, the same whether or not it is
    taken; raise 503 with mail off, 429 past the limit, ValueError for a malformed address."""
    mail.require_mail()
    address = normalised(email)
    count_mail(address)
    mail.send_later(SIGN_UP_JOB, address)


def verify(token: str, password: str) -> str | None:
    """Create the verified account of the token's address with ``password`` (or confirm the
    unverified one, replacing its password) and return its address; None when the token is
    invalid or expired, or the address has a verified or deactivated account (the token is
    used)."""
    address = address_to_confirm(token)
    if address is None:
        return None
    password_hash = HASHING.submit(hasher.hash, password).result()
    user = user_by_email(address)
    if user is None:
        user = User(email=address, password_hash=password_hash, email_verified_at=utc_now())
        db.session.add(user)
        try:
            db.session.flush()  # its id, for the trail; or the address taken at the same moment
            record(Action.USER_CREATED, user, detail="sign_up")
            record(Action.ADDRESS_CONFIRMED, user)
            db.session.commit()
        except IntegrityError:  # created at the same moment by another request: used
            db.session.rollback()
            return None
    elif not confirm_unverified(user, password_hash):
        return None
    return address


def confirm_unverified(user: User, password_hash: str) -> bool:
    """Confirm an unverified, active account with a new password, ending any token and session
    of the one it had; False when it is verified or deactivated (also by a request at once)."""
    confirmed = db.session.execute(
        update(User)
        .where(User.id == user.id, User.email_verified_at.is_(None), User.is_active)
        .values(
            password_hash=password_hash,
            email_verified_at=utc_now(),
            login_generation=User.login_generation + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if rows_changed(confirmed) != 1:
        db.session.rollback()
        return False
    db.session.execute(delete(Token).where(Token.user_id == user.id))
    record(Action.ADDRESS_CONFIRMED, user)
    db.session.commit()
    return True


@bp.post("/sign-up")
@access(Access.ANYONE)
@limit_sign_in
def sign_up_view() -> tuple[dict[str, object], int]:
    """Sign up with an address: mail it a link that creates the account."""
    mail.require_mail()  # before the body: a client learns at once that no mail will come
    sign_up(SignUpIn.model_validate(json_body()).email)
    return Accepted(detail=ON_ITS_WAY).model_dump(), 202


@bp.post("/verification")
@access(Access.ANYONE)
@limit_sign_in
def resend_view() -> tuple[dict[str, object], int]:
    """Mail a new link confirming an address (the same as a sign-up)."""
    mail.require_mail()
    sign_up(SignUpIn.model_validate(json_body()).email)
    return Accepted(detail=ON_ITS_WAY).model_dump(), 202


@bp.post("/verify")
@access(Access.ANYONE)
@limit_sign_in
def verify_view() -> ResponseReturnValue:
    """Confirm an address with the mailed token and choose the account's password: it may
    sign in from now on."""
    given = VerifyIn.model_validate(json_body())
    if verify(given.token, given.password) is None:
        return json_error(403, "Forbidden", [{"field": "token", "message": BAD_TOKEN}])
    return no_content()


SAME = "The same answer, whether or not the address is taken."
OPERATIONS = {
    "auth_sign_up.sign_up_view": Operation(
        {"202": (SAME, Accepted, ())}, ("400", "413", "415", "422", "503"), body=SignUpIn
    ),
    "auth_sign_up.resend_view": Operation(
        {"202": (SAME, Accepted, ())}, ("400", "413", "415", "422", "503"), body=SignUpIn
    ),
    "auth_sign_up.verify_view": Operation(
        {"204": ("The account exists, its address confirmed: it may sign in.", None, ())},
        ("400", "403", "413", "415", "422", "503"),
        body=VerifyIn,
        media_type="",
        texts=LINK_REFUSED,
    ),
}


def init_app(app: Flask) -> None:
    """Register the sign-up mail's job (a worker runs it whatever its own AUTH_SIGN_UP says);
    serve the sign-up and verification routes when AUTH_SIGN_UP is on."""
    mail.register(app, SIGN_UP_JOB, sign_up_mail)
    if app.extensions["settings"].auth_sign_up:
        app.register_blueprint(bp, url_prefix="/api/auth")
