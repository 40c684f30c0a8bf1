"""API tokens: POST /api/auth/tokens trades an email and password for a token, DELETE
/api/auth/tokens/current ends it, and every route that declares it (platform/routes.py) takes
``Authorization: Bearer <token>``: the writes of a SIGNED_IN_TO_WRITE route, the default (its
reads too with AUTH_PRIVATE_READS), every request of a SIGNED_IN one, and every request of an
ADMIN one, whose token must be an admin's (403 otherwise); its user then on ``flask.g.user``.
Pages (PAGE) and public routes (ANYONE) never read one.

Only the bearer token counts, never a cookie: a browser sends its cookies with the requests
other sites make it send, so a cookie accepted here would let any site write in its user's name.
"""

import functools
import logging
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from flask.typing import ResponseReturnValue, RouteCallable
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from ..extensions import db
from ..platform.database import rows_changed
from ..platform.operations import Answer, no_content
from ..platform.rate_limits import limit_sign_in
from ..platform.routes import Access, access, access_of, guard
from ..platform.timestamps import UtcTimestamp
from . import accounts, second_factor, sign_in_limits
from .audit import Action, record

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)
READS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer"}}  # in the OpenAPI document
# One answer for an unknown email, a wrong password, an inactive user and a malformed email:
# which one it was would tell a caller which addresses have accounts.
WRONG_CREDENTIALS = "Wrong email or password."
# After a right password only, so they tell nothing to whoever does not know it.
CODE_NEEDED = (
    "This account has a second factor: send a current code of its authenticator app, or one of"
    " its recovery codes, as code."
)
WRONG_CODE = "Wrong email, password or code."
NO_BEARER = "This needs an 'Authorization: Bearer <token>' header: POST /api/auth/tokens gives one."
BAD_BEARER = "The token is unknown, expired or revoked: POST /api/auth/tokens gives a new one."
NOT_AN_ADMIN = "Only an admin may do this."
SECOND_FACTOR_FIRST = (
    "This service asks every account for a second factor: turn yours on first"
    " (POST /api/auth/second-factor, then POST /api/auth/second-factor/enable)."
)
SETTING_UP = "open_before_second_factor"  # set on a view by before_second_factor()
GUARDED = (Access.SIGNED_IN, Access.SIGNED_IN_TO_WRITE, Access.ADMIN)  # routes that may need one


class TokenIn(BaseModel):
    """The body of a sign-in: the account's email and password, neither empty, and with a
    second factor on, its ``code``: the authenticator app's, or one of its recovery codes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=accounts.MAX_PASSWORD_LENGTH)
    code: str | None = Field(default=None, min_length=1, max_length=64)


class TokenOut(Answer):
    """A new token, shown once: send it as ``Authorization: Bearer <token>`` until it expires."""

    token: str
    expires_at: UtcTimestamp


def unauthorized(detail: str, invalid_token: bool = False) -> Unauthorized:
    """Return a 401 whose WWW-Authenticate asks for a bearer token (RFC 6750)."""
    params: dict[str, str | None] = {"realm": "api"}
    if invalid_token:
        params["error"] = "invalid_token"
    return Unauthorized(detail, www_authenticate=WWWAuthenticate("bearer", params))


def bearer_token() -> str:
    """Return the request's bearer token; raise 401 when it has none."""
    credentials = request.authorization
    if credentials is None or credentials.type != "bearer" or not credentials.token:
        raise unauthorized(NO_BEARER)
    return credentials.token


def token_asked(rule: Access, methods: Collection[str], private_reads: bool) -> bool:
    """Say whether a request with one of ``methods`` to a route declaring ``rule`` needs a
    bearer token: every request of a SIGNED_IN or ADMIN route, the writes of a
    SIGNED_IN_TO_WRITE one (its reads too with ``private_reads``), none of a page or a public
    route."""
    if rule in (Access.SIGNED_IN, Access.ADMIN):
        return True
    asked = set(methods) - {"OPTIONS"} if private_reads else set(methods) - READS
    return rule is Access.SIGNED_IN_TO_WRITE and bool(asked)


def needs_token(app: Flask, endpoint: str, methods: Collection[str]) -> bool:
    """Say whether a request to ``endpoint`` with one of ``methods`` needs a bearer token, as
    its route declared (the OpenAPI document asks this of each route)."""
    private_reads = app.extensions["settings"].auth_private_reads
    return token_asked(access_of(app, endpoint), methods, private_reads)


def admins_only(app: Flask, endpoint: str) -> bool:
    """Say whether a route answers only admins: a valid token of anyone else gets 403 (the
    OpenAPI document asks this of each route)."""
    return access_of(app, endpoint) is Access.ADMIN


def before_second_factor(view: RouteCallable) -> RouteCallable:
    """Declare that the view below answers an account that AUTH_REQUIRE_SECOND_FACTOR holds
    back (held_back): the routes that turn the factor on, and signing in and out."""
    setattr(view, SETTING_UP, True)
    return view


def held_back(user: accounts.User) -> bool:
    """Say whether AUTH_REQUIRE_SECOND_FACTOR holds ``user`` back: it is on, and the user's
    second factor is not; such a user gets only the routes declared before_second_factor."""
    required: bool = current_app.extensions["settings"].auth_require_second_factor
    return required and not second_factor.is_on(user)


def token_user(token: str) -> accounts.User:
    """Return the active user of a bearer token; raise 401 unless it is live."""
    user = accounts.user_for_token(token)
    if user is None:
        raise unauthorized(BAD_BEARER, invalid_token=True)
    return user


def require_token(view: RouteCallable, rule: Access) -> RouteCallable:
    """Wrap a view that may need a token (the guard platform/routes.py applies to each route):
    a request of it that needs one (token_asked) gets the bearer's user on ``g.user`` and its
    token on ``g.token``, or 401 (and 403 on an ADMIN route, unless the user is an admin; 403 on
    a route not declared before_second_factor when held_back asks for a second factor), after
    the rate limits wrapped around the view counted it (a write's limits count in the view, not
    before it): refusals count. Pages and public routes are left as they are."""
    if rule not in GUARDED:
        return view
    open_before = getattr(view, SETTING_UP, False)

    @functools.wraps(view)
    def checked(**view_args: Any) -> ResponseReturnValue:
        private_reads = current_app.extensions["settings"].auth_private_reads
        if token_asked(rule, {request.method}, private_reads):
            g.token = bearer_token()
            g.user = token_user(g.token)
            if rule is Access.ADMIN and g.user.role != accounts.Role.ADMIN:
                raise Forbidden(NOT_AN_ADMIN)
            if not open_before and held_back(g.user):
                raise Forbidden(SECOND_FACTOR_FIRST)
        answer: ResponseReturnValue = current_app.ensure_sync(view)(**view_args)
        return answer

    return checked


@bp.post("/tokens")
@access(Access.ANYONE)
@limit_sign_in
def sign_in() -> tuple[dict[str, object], int, dict[str, str]]:
    """Trade an email and password for an API token."""
    body = request.get_json()
    if not isinstance(body, dict):
        abort(400, description="The body must be a JSON object.")
    given = TokenIn.model_validate(body)  # a body refused here counts against no account
    try:
        user = sign_in_limits.authenticate(given.email, given.password, given.code)
    except sign_in_limits.SecondStepNeeded:
        raise unauthorized(CODE_NEEDED) from None
    if user is None:
        raise unauthorized(WRONG_CODE if given.code is not None else WRONG_CREDENTIALS)
    lifetime = timedelta(seconds=current_app.extensions["settings"].auth_token_lifetime)
    record(Action.TOKEN_ISSUED, user, detail="password" if given.code is None else "code")
    token, expires_at = accounts.issue_token(user, lifetime)  # saves the event too
    log.info("token issued", extra={"user_id": user.id})
    answer = TokenOut(token=token, expires_at=expires_at).model_dump(mode="json")
    return answer, 201, {"Cache-Control": "no-store"}


@bp.delete("/tokens/current")
@access(Access.SIGNED_IN)
@before_second_factor
def sign_out() -> Response:
    """End the token this request carries; 401, as for any token no longer live, when another
    request ended it since require_token found it live (sent at once, one sign-out ends the
    token and is in the audit trail)."""
    digest = accounts.token_digest(g.token)
    ended = db.session.execute(delete(accounts.Token).where(accounts.Token.token_hash == digest))
    if not rows_changed(ended):
        db.session.rollback()
        raise unauthorized(BAD_BEARER, invalid_token=True)
    record(Action.TOKEN_REVOKED, g.user)
    db.session.commit()
    return no_content()


def init_app(app: Flask) -> None:
    """Serve the token routes; have every route that declares it ask for a token, whichever
    feature registers it, before or after this (platform/routes.py applies the guard)."""
    app.register_blueprint(bp, url_prefix="/api/auth")
    guard(app, require_token)
