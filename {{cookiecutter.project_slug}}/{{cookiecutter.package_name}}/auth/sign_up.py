"""Sign-up by mail, when AUTH_SIGN_UP is on: POST /api/auth/sign-up stores an unverified account
and mails a link to its address, POST /api/auth/verify proves the address with the link's token,
POST /api/auth/verification mails a new link. An unverified account gets no token and no
session (sign_in_limits.py refuses it, after a correct password only).

The token is signed with SECRET_KEY (its own salt), expires after AUTH_VERIFY_LIFETIME, and names
a digest of the account's address, password hash and login generation: it dies once used (the
account is verified), or once any of them changes. A sign-up is answered the same whether or not
the address is taken (the same body, status and work: the password is hashed and the mail
rendered either way); a taken address gets no mail and its account is left as it is. Sign-ups
and new links are limited per client address (with the sign-ins) and per address
(RATELIMIT_MAIL_ACCOUNT, with the password resets), taken or not.
"""

import hashlib
import logging
import math

from flask import Blueprint, Flask, current_app
from flask.typing import ResponseReturnValue
from itsdangerous import URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..platform import mail
from ..platform.errors import json_error
from ..platform.operations import Operation
from ..platform.rate_limits import limit_sign_in
from ..platform.timestamps import utc_now
from .accounts import HASHING, MAX_PASSWORD_LENGTH, User, hasher, normalised, user_by_email
from .api import no_content
from .recovery import BAD_TOKEN, Accepted, ResetIn, bound_user, count_mail, json_body, mail_link

bp = Blueprint("auth_sign_up", __name__, template_folder="templates")
log = logging.getLogger(__name__)
SUBJECT = "Confirm your address"
ON_ITS_WAY = "If this address has no verified account yet, a link to confirm it is on its way."


class SignUpIn(BaseModel):
    """The body of a sign-up: an email and a password (as ``flask users create`` takes)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: str = Field(max_length=254)
    password: str = Field(min_length=8, max_length=MAX_PASSWORD_LENGTH)


class VerifyIn(BaseModel):
    """The body proving an address: the token the mail's link carries."""

    model_config = ConfigDict(extra="forbid", strict=True)

    token: str = Field(max_length=512)


def serializer() -> URLSafeTimedSerializer:
    """Return the signer of verification tokens (its own salt: a reset token is none)."""
    secret = current_app.extensions["settings"].secret_key.get_secret_value()
    return URLSafeTimedSerializer(secret, salt="email-verification")


def state(user: User) -> str:
    """Return what a verification token is bound to: a digest of the address, the password
    hash and the login generation."""
    bound = f"{user.email}:{user.password_hash}:{user.login_generation}"
    return hashlib.sha256(bound.encode()).hexdigest()


def verification_token(user: User) -> str:
    """Return a token that verifies ``user``'s address once, within AUTH_VERIFY_LIFETIME."""
    return str(serializer().dumps([user.id, state(user)]))


def user_to_verify(token: str) -> User | None:
    """Return the active, unverified user whose address ``token`` proves, else None (forged,
    expired, used, or the address, password or sessions changed since it was made)."""
    lifetime = current_app.extensions["settings"].auth_verify_lifetime
    user = bound_user(serializer(), token, lifetime, state)
    return user if user is not None and user.email_verified_at is None else None


def mail_verification(user: User | None) -> None:
    """Mail a verification link to ``user``; render it alike for None (no mail then)."""
    hours = math.ceil(current_app.extensions["settings"].auth_verify_lifetime / 3600)
    token = verification_token(user) if user else "none"
    mail_link(user, token, SUBJECT, "verify_email", "/verify-email", hours=hours)


def sign_up(email: str, password: str) -> None:
    """Store an unverified account and mail it a link, unless the address is taken (then do
    the same work and send nothing); raise 503 with mail off, 429 past the limit, ValueError
    for a malformed address."""
    mail.require_mail()
    address = normalised(email)
    count_mail(address)
    password_hash = HASHING.submit(hasher.hash, password).result()  # taken or not, alike
    user = None
    if user_by_email(address) is None:
        user = User(email=address, password_hash=password_hash, email_verified_at=None)
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:  # signed up at the same moment by another request: taken
            db.session.rollback()
            user = None
    if user is not None:
        log.info("signed up", extra={"user_id": user.id})
    mail_verification(user)


def resend(email: str) -> None:
    """Mail a new link to the active, unverified account with this email, if there is one,
    doing the same work either way; raise 503 with mail off, 429 past the limit."""
    mail.require_mail()
    count_mail(email)
    user = user_by_email(email)
    if user is not None and (not user.is_active or user.email_verified_at is not None):
        user = None
    mail_verification(user)


def verify(token: str) -> bool:
    """Mark the address of the token's account verified; False when the token is invalid,
    expired or used."""
    user = user_to_verify(token)
    if user is None:
        return False
    user.email_verified_at = utc_now()
    db.session.commit()
    log.info("address verified", extra={"user_id": user.id})
    return True


@bp.post("/sign-up")
@limit_sign_in
def sign_up_view() -> ResponseReturnValue:
    """Sign up with an email and password; mail a link confirming the address."""
    mail.require_mail()  # before the body: a client learns at once that no mail will come
    given = SignUpIn.model_validate(json_body())
    try:
        sign_up(given.email, given.password)
    except ValueError as exc:
        return json_error(422, "Unprocessable Content", [{"field": "email", "message": str(exc)}])
    return Accepted(detail=ON_ITS_WAY).model_dump(), 202


@bp.post("/verification")
@limit_sign_in
def resend_view() -> tuple[dict[str, object], int]:
    """Mail a new link confirming the address of an unverified account, if there is one."""
    mail.require_mail()
    resend(ResetIn.model_validate(json_body()).email)
    return Accepted(detail=ON_ITS_WAY).model_dump(), 202


@bp.post("/verify")
@limit_sign_in
def verify_view() -> ResponseReturnValue:
    """Confirm an account's address with the mailed token: it may sign in from now on."""
    if not verify(VerifyIn.model_validate(json_body()).token):
        return json_error(403, "Forbidden", [{"field": "token", "message": BAD_TOKEN}])
    return no_content()


SAME = "The same answer, whether or not the address is taken."
OPERATIONS = {
    "auth_sign_up.sign_up_view": Operation(
        {"202": (SAME, Accepted, ())}, ("400", "413", "415", "422", "503"), body=SignUpIn
    ),
    "auth_sign_up.resend_view": Operation(
        {"202": (SAME, Accepted, ())}, ("400", "413", "415", "422", "503"), body=ResetIn
    ),
    "auth_sign_up.verify_view": Operation(
        {"204": ("The address is confirmed: the account may sign in.", None, ())},
        ("400", "403", "413", "415", "422", "503"),
        body=VerifyIn,
        media_type="",
    ),
}


def init_app(app: Flask) -> None:
    """Serve the sign-up and verification routes when AUTH_SIGN_UP is on."""
    if app.extensions["settings"].auth_sign_up:
        app.register_blueprint(bp, url_prefix="/api/auth")
