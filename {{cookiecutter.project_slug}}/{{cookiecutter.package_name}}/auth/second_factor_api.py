"""Setting the second factor up through the API, with a token (the pages' security page does the
same for a browser):

- GET /api/auth/second-factor says whether it is on, and how many recovery codes are left;
- POST /api/auth/second-factor starts setting it up: a new secret, shown once, as text and as
  the otpauth:// URI an authenticator app scans (off until it is turned on);
- POST /api/auth/second-factor/enable turns it on with the password and a current code of that
  secret, and answers the ten recovery codes (shown once) and a new token;
- POST /api/auth/second-factor/disable turns it off with the password and a current code or a
  recovery code, and answers a new token;
- POST /api/auth/second-factor/recovery-codes makes a new set with the password and a current
  code; the old set stops working.

Turning it on or off ends every token and session of the account, the caller's too: a thief's
copy of it then works no more, and the caller goes on with the new token answered. The password
is asked again so that a token alone cannot lock its owner out; each check of a password and a
code counts against the account under RATELIMIT_SIGN_IN_ACCOUNT, apart from its sign-ins. With
AUTH_REQUIRE_SECOND_FACTOR, a token of an account without the factor gets only the first three
routes, and its own sign-out (auth/api.py's held_back).
"""

from dataclasses import asdict
from datetime import timedelta

from flask import Blueprint, Flask, current_app, g
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import Conflict, Forbidden

from ..platform.operations import Answer, Operation
from ..platform.rate_limits import limit_writes
from ..platform.routes import Access, access
from ..platform.timestamps import UtcTimestamp, utc_now
from . import accounts, second_factor
from .api import TokenOut, before_second_factor
from .recovery import json_body
from .sign_in_limits import counted_confirmation

bp = Blueprint("second_factor", __name__)
ISSUER = "{{ cookiecutter.project_name | replace('"', '\\"') }}"  # the name the apps show
WRONG = "Wrong password or code."
IS_ON = "The second factor is on already: turn it off first."
IS_OFF = "The second factor is off: start setting it up first."
NO_STORE = {"Cache-Control": "no-store"}  # secrets and tokens: kept by no cache


class FactorState(Answer):
    """Whether the second factor is on, or being set up, and the recovery codes left."""

    on: bool
    being_set_up: bool = Field(description="A secret was made, not yet turned on by a code.")
    recovery_codes_left: int = Field(ge=0)


class NewSecret(Answer):
    """A new secret, shown once: add it to an authenticator app, then turn the factor on."""

    secret: str = Field(description="The base32 secret, for typing into the app.")
    uri: str = Field(description="The otpauth:// URI, for a QR code the app scans.")


class Confirmation(BaseModel):
    """The account's password again, and a code: the authenticator app's current one (where
    the route says so, or one of the recovery codes)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    password: str = Field(min_length=1, max_length=accounts.MAX_PASSWORD_LENGTH)
    code: str = Field(min_length=1, max_length=64)


class RecoveryCodes(Answer):
    """The new recovery codes, shown once: each signs in once in place of a code."""

    recovery_codes: list[str]


class TurnedOn(TokenOut):
    """The factor is on: its recovery codes, shown once, and a new token (the old ones ended)."""

    recovery_codes: list[str]


def new_token(user: accounts.User) -> tuple[str, UtcTimestamp]:
    """Return a new token of ``user``, for the caller whose token a change just ended."""
    lifetime = timedelta(seconds=current_app.extensions["settings"].auth_token_lifetime)
    return accounts.issue_token(user, lifetime)


@bp.get("")
@access(Access.SIGNED_IN)
@before_second_factor
def state() -> ResponseReturnValue:
    """Say whether the caller's second factor is on, and how many recovery codes are left."""
    return FactorState.model_validate(asdict(second_factor.state_of(g.user))).model_dump()


@bp.post("")
@access(Access.SIGNED_IN)
@before_second_factor
@limit_writes
def start() -> ResponseReturnValue:
    """Make a new secret for the caller's second factor (a secret made before stops counting);
    the factor stays off until /enable takes a current code of it."""
    secret, uri = new_secret(g.user)
    return NewSecret(secret=secret, uri=uri).model_dump(), 201, NO_STORE


def new_secret(user: accounts.User) -> tuple[str, str]:
    """Make a new secret for ``user``'s second factor (off until turned on); return it and the
    otpauth:// URI an app scans. Raise 409 when the factor is on."""
    try:
        secret = second_factor.start(user)
    except ValueError as exc:  # on already, or changed by another request meanwhile
        raise Conflict(IS_ON if second_factor.is_on(user) else str(exc)) from None
    return secret, second_factor.provisioning_uri(secret, user, ISSUER)


def turn_on(user: accounts.User, given: Confirmation) -> list[str]:
    """Turn ``user``'s second factor on with the password and a current code of the secret
    made last; return the recovery codes. Raise 409 unless it is being set up, 403 for a wrong
    password or code (the pages' security page calls this too)."""
    if second_factor.is_on(user):
        raise Conflict(IS_ON)
    if second_factor.factor_of(user) is None:
        raise Conflict(IS_OFF)
    codes = counted_confirmation(
        user, given.password, lambda: second_factor.enable(user, given.code, utc_now())
    )
    if codes is None:
        raise Forbidden(WRONG)
    return codes


def turn_off(user: accounts.User, given: Confirmation) -> None:
    """Turn ``user``'s second factor off with the password and a current code or a recovery
    code. Raise 409 when it is off, 403 for a wrong password or code."""
    if not second_factor.is_on(user):
        raise Conflict(IS_OFF)
    if not counted_confirmation(
        user, given.password, lambda: second_factor.passes(user, given.code)
    ):
        raise Forbidden(WRONG)
    second_factor.turn_off(user)


def renew_codes(user: accounts.User, given: Confirmation) -> list[str]:
    """Replace ``user``'s recovery codes with a new set, with the password and a current code
    of the authenticator app (not a recovery code: the set is being replaced); return it.
    Raise 409 when the factor is off, 403 for a wrong password or code."""
    if not second_factor.is_on(user):
        raise Conflict(IS_OFF)
    if not counted_confirmation(
        user, given.password, lambda: second_factor.take_code(user, given.code, utc_now())
    ):
        raise Forbidden(WRONG)
    return second_factor.new_recovery_codes(user)


@bp.post("/enable")
@access(Access.SIGNED_IN)
@before_second_factor
@limit_writes
def enable() -> ResponseReturnValue:
    """Turn the caller's second factor on with the password and a current code of the secret
    made last; answer the recovery codes and a new token (every other token ended)."""
    codes = turn_on(g.user, Confirmation.model_validate(json_body()))
    token, expires_at = new_token(g.user)
    answer = TurnedOn(recovery_codes=codes, token=token, expires_at=expires_at)
    return answer.model_dump(mode="json"), 201, NO_STORE


@bp.post("/disable")
@access(Access.SIGNED_IN)
@limit_writes
def disable() -> ResponseReturnValue:
    """Turn the caller's second factor off with the password and a current code or a recovery
    code; answer a new token (every other token ended)."""
    turn_off(g.user, Confirmation.model_validate(json_body()))
    token, expires_at = new_token(g.user)
    return TokenOut(token=token, expires_at=expires_at).model_dump(mode="json"), 200, NO_STORE


@bp.post("/recovery-codes")
@access(Access.SIGNED_IN)
@limit_writes
def new_recovery_codes() -> ResponseReturnValue:
    """Replace the caller's recovery codes with a new set, with the password and a current code
    of the authenticator app (not a recovery code)."""
    codes = renew_codes(g.user, Confirmation.model_validate(json_body()))
    return RecoveryCodes(recovery_codes=codes).model_dump(), 201, NO_STORE


CONFLICT = {"409": "The factor is not in the state this asks for (on, or being set up)."}
REFUSED = {"403": "The password or the code is wrong."}
OPERATIONS = {
    "second_factor.state": Operation({"200": ("The factor's state.", FactorState, ())}, ("503",)),
    "second_factor.start": Operation(
        {"201": ("A new secret, shown once.", NewSecret, ("Cache-Control",))},
        ("409", "503"),
        texts=CONFLICT,
    ),
    "second_factor.enable": Operation(
        {"201": ("The factor is on.", TurnedOn, ("Cache-Control",))},
        ("400", "403", "409", "413", "415", "422", "503"),
        body=Confirmation,
        texts={**CONFLICT, **REFUSED},
    ),
    "second_factor.disable": Operation(
        {"200": ("The factor is off; a new token.", TokenOut, ("Cache-Control",))},
        ("400", "403", "409", "413", "415", "422", "503"),
        body=Confirmation,
        texts={**CONFLICT, **REFUSED},
    ),
    "second_factor.new_recovery_codes": Operation(
        {"201": ("A new set of recovery codes.", RecoveryCodes, ("Cache-Control",))},
        ("400", "403", "409", "413", "415", "422", "503"),
        body=Confirmation,
        texts={**CONFLICT, **REFUSED},
    ),
}


def init_app(app: Flask) -> None:
    """Serve the second factor's routes."""
    app.register_blueprint(bp, url_prefix="/api/auth/second-factor")
