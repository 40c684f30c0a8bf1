"""Limit the password checks of each account, and the codes of its second factor, to
RATELIMIT_SIGN_IN_ACCOUNT a window, whichever surface (the API, the pages' forms) signs in, from
any address.

A check is counted before it runs, in one atomic step of `limits`' strategy on the rate limits'
own storage (shared by every worker when rate_limits names a shared one): requests arriving at
once for one account cannot all pass, as they would if each were counted after its answer. A
check that succeeds clears its account's count, so only failures hold an account back (with a
second factor on, a right password clears nothing: only its code, which counts too, does). A body
or form post without an email and a password (or with an empty one) never gets here (the API's
TokenIn refuses it on both surfaces). platform/rate_limits.py counts attempts per
address. An account whose address is not verified yet (auth/sign_up.py) is refused here too,
with a 403 that only a correct password gets: it tells nothing to whoever does not know it.
"""

import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

from flask import current_app
from limits import RateLimitItem, parse_many
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import Forbidden, TooManyRequests

from ..extensions import db
from ..platform.rate_limits import RateLimits
from . import second_factor
from .accounts import User, account_key, credentials
from .accounts import authenticate as check_password
from .audit import Action, record

log = logging.getLogger(__name__)
T = TypeVar("T")
CONFIRMATIONS = "confirm-"  # the count of a signed-in user's confirmations (password and code)
UNVERIFIED = (
    "Confirm your address first: open the link mailed to it "
    "(POST /api/auth/verification mails a new one)."
)


class SecondStepNeeded(Exception):
    """A right password of an account whose second factor is on: a code of it comes next."""

    def __init__(self, user: User) -> None:
        """Keep the user whose code is asked for."""
        super().__init__("the account's second factor asks for a code")
        self.user = user


def authenticate(email: str, password: str, code: str | None = None) -> User | None:
    """Return the user of a counted check (counted_check); raise 403 when their address is
    not verified yet: only after a correct password, so it reveals nothing to others. A
    failure is in the audit trail, under the account the email names, if any (the same look-up,
    the same row, the same work, known or not: accounts.credentials)."""
    user = counted_check(email, password, code)
    if user is None:
        failed(credentials(email).id, "credentials")
    elif user.email_verified_at is None:
        failed(user, "unverified")
        raise Forbidden(UNVERIFIED)
    return user


def failed(user: User | int | None, why: str) -> None:
    """Save a failed sign-in of ``user``'s account (or its id; None: no account) in the audit
    trail."""
    record(Action.SIGN_IN_FAILED, user, detail=why)
    db.session.commit()


def counted_check(email: str, password: str, code: str | None = None) -> User | None:
    """Return the user of this email and password, and of ``code`` when their second factor is
    on (second_step), the check counted against the email's account first; raise 429 instead
    of checking once the account's checks are spent this window."""
    return counted(email, lambda: second_step(check_password(email, password), code))


def counted_code_check(user: User, code: str) -> bool:
    """Say whether ``code`` passes ``user``'s second factor (the pages' second step), counted
    against the account as a password check is; a wrong one is in the audit trail."""
    passed = counted(user.email, lambda: second_factor.passes(user, code))
    if not passed:
        failed(user, "code")
    return passed


def counted_confirmation(user: User, password: str, then: Callable[[], T]) -> T | None:
    """Return ``then()`` (a check of a code, say) when ``password`` is ``user``'s, else None
    without calling it: a signed-in change of the second factor asks for the password again.
    Counted against the account under RATELIMIT_SIGN_IN_ACCOUNT's limits, in a count of its own:
    a stolen session cannot guess the password, nor lock its owner's sign-in by trying."""

    def check() -> T | None:
        confirmed = check_password(user.email, password)
        return then() if confirmed is not None and confirmed.id == user.id else None

    return counted(user.email, check, CONFIRMATIONS)


def second_step(user: User | None, code: str | None) -> User | None:
    """Return ``user`` when it needs no code or ``code`` passes its second factor, None when
    the code does not; raise SecondStepNeeded when none was given."""
    if user is None or not second_factor.is_on(user):
        return user
    if code is None:
        raise SecondStepNeeded(user)
    return user if second_factor.passes(user, code) else None


def counted(email: str, check: Callable[[], T], count: str = "") -> T:
    """Return ``check()``, counted against the email's account first (in the count named
    ``count``; the sign-ins': ""); raise 429 instead of checking once the account's checks are
    spent this window. A check that answers something true clears the account's count; one that
    raises (SecondStepNeeded) leaves it counted."""
    limiter: RateLimits = current_app.extensions["rate_limits"]
    if not limiter.enabled:
        return check()
    account = count + account_key(email)
    limits = parse_many(current_app.extensions["settings"].ratelimit_sign_in_account)
    try:
        spent = limiter.run(lambda strategy: [x for x in limits if not strategy.hit(x, account)])
    except Exception:  # as rate_limits.count does: logged, let through
        log.exception("counting a sign-in of an account failed: checked uncounted")
        return check()
    if spent:
        raise TooManyRequests(
            f"Too many failed sign-ins for this account: {spent[0]}.",
            retry_after=seconds_left(limiter, spent[0], account),
        )
    passed = check()
    if passed:
        try:
            limiter.run(lambda strategy: clear_counts(strategy, limits, account))
        except Exception:  # the success stays counted as a failure until its window ends
            log.exception("clearing the sign-in count of an account failed")
    return passed


def clear_counts(
    strategy: FixedWindowRateLimiter, limits: list[RateLimitItem], account: str
) -> None:
    """Forget an account's counts of ``limits``: a right password clears its failures."""
    for limit in limits:
        strategy.clear(limit, account)


def seconds_left(limiter: RateLimits, limit: RateLimitItem, account: str) -> int:
    """Return the seconds until the account's count of ``limit`` starts afresh (at least 1)."""
    try:
        reset = limiter.run(lambda strategy: strategy.get_window_stats(limit, account).reset_time)
    except Exception:  # the storage failed since counting: wait a whole window, the most
        log.exception("reading the sign-in count of an account failed")
        return limit.get_expiry()
    return max(1, math.ceil(reset - time.time()))
