"""A second factor: authenticator-app codes (TOTP, RFC 6238, by pyotp: 6 digits, 30 s, SHA-1, as
the apps expect, one step of clock drift either side) and single-use recovery codes.

A user sets the factor up in two steps: ``start`` stores a new secret, shown once (as text and as
the ``provisioning_uri`` apps scan); ``enable`` turns it on only with a current code from it, and
returns the recovery codes, shown once too. Until then the factor is off.

- The secret is stored encrypted (Fernet: AES and an HMAC) with a key derived from SECRET_KEY
  (HKDF, its own label): a dump of the database alone gives no codes. A key of
  SECRET_KEY_FALLBACKS still reads what it encrypted, and ``rekey`` (``flask users mfa-rekey``)
  encrypts every secret again with SECRET_KEY's; a secret no key reads takes no code, and its
  owner signs in with a recovery code, or the operator's ``flask users mfa-reset``.
- A code is taken once: accepting it records its time step in the same UPDATE that checks that
  no later or equal step was taken before, so the same code sent twice, even at once to two
  workers, is accepted once.
- A recovery code is about 79 random bits, stored as its SHA-256 only (as tokens are: random enough
  that no salt or slow hash is needed); using it marks it used in one conditional UPDATE.
"""

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    String,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..platform.database import rows_changed
from ..platform.timestamps import utc_now
from .accounts import User, revoke
from .audit import Action, record
from .notices import notify

log = logging.getLogger(__name__)
DIGITS = 6  # pyotp's default, as authenticator apps expect
DRIFT = 1  # time steps accepted either side of the current one (30 s each)
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
RECOVERY_LENGTH = 16  # 16 characters of 31: about 79 bits
KEY_LABEL = b"second factor secrets"  # HKDF's info: this key serves nothing else


class SecondFactor(db.Model):  # type: ignore[name-defined, misc]  # made at run time: mypy#8603
    """A user's authenticator secret (encrypted), on once ``enabled_at`` is set."""

    __tablename__ = "second_factors"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(255))  # a Fernet token of the base32 secret
    enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The time step of the last code taken: a code of this step or an earlier one is refused.
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(db.Model):  # type: ignore[name-defined, misc]  # made at run time: mypy#8603
    """One of a user's recovery codes: only its SHA-256 is stored; usable until ``used_at``."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, server_default=func.now()
    )


def cipher() -> MultiFernet:
    """Return the cipher of the stored secrets: it encrypts with SECRET_KEY's key and decrypts
    with that one or a key of SECRET_KEY_FALLBACKS (each derived through HKDF)."""
    keys = current_app.extensions["settings"].secret_keys()
    return MultiFernet([fernet(key) for key in reversed(keys)])  # the first one encrypts


def fernet(secret_key: str) -> Fernet:
    """Return the Fernet cipher of one secret key: its own key, derived under KEY_LABEL."""
    derive = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_LABEL)
    return Fernet(base64.urlsafe_b64encode(derive.derive(secret_key.encode())))


def readable_secret(factor: SecondFactor) -> str | None:
    """Return the factor's base32 secret; None when no key (SECRET_KEY, SECRET_KEY_FALLBACKS)
    reads it."""
    try:
        return cipher().decrypt(factor.secret.encode()).decode()
    except InvalidToken:
        return None


def factor_of(user: User) -> SecondFactor | None:
    """Return the user's factor, on or being set up, if any."""
    factor: SecondFactor | None = db.session.get(SecondFactor, user.id)
    return factor


@dataclass(frozen=True)
class State:
    """A user's second factor as the API and the security page show it."""

    on: bool  # signing in with the password asks for a code
    being_set_up: bool  # a secret is made, no code has turned it on yet
    recovery_codes_left: int  # unused ones, while it is on


def state_of(user: User) -> State:
    """Return the state of ``user``'s second factor."""
    factor = factor_of(user)
    on = factor is not None and factor.enabled_at is not None
    left = recovery_codes_left(user) if on else 0
    return State(on=on, being_set_up=factor is not None and not on, recovery_codes_left=left)


def is_on(user: User) -> bool:
    """Say whether signing in as ``user`` with a password needs a code."""
    factor = factor_of(user)
    return factor is not None and factor.enabled_at is not None


def start(user: User) -> str:
    """Store a new secret for ``user``'s factor, off until ``enable``; return it (shown once).
    Raise ValueError when the factor is on already (turning it off comes first)."""
    if is_on(user):
        raise ValueError("the second factor is on already")
    secret = pyotp.random_base32()
    stored = cipher().encrypt(secret.encode()).decode()
    pending = (
        update(SecondFactor)
        .where(SecondFactor.user_id == user.id, SecondFactor.enabled_at.is_(None))
        .values(secret=stored, last_step=None)
    )
    if rows_changed(db.session.execute(pending)) != 1:
        db.session.add(SecondFactor(user_id=user.id, secret=stored))
    try:
        db.session.commit()
    except IntegrityError:  # another request stored one, or turned it on, at the same moment
        db.session.rollback()
        raise ValueError("the second factor changed meanwhile: start again") from None
    return secret


def provisioning_uri(secret: str, user: User, issuer: str) -> str:
    """Return the otpauth:// URI an authenticator app scans (as a QR code) to add the secret."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer)


def matched_step(secret: str, code: str, now: datetime) -> int | None:
    """Return the time step whose code ``code`` is, within DRIFT steps of ``now``, else None."""
    code = "".join(code.split())  # apps show "123 456"
    if not (len(code) == DIGITS and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for offset in range(-DRIFT, DRIFT + 1):
        if hmac.compare_digest(totp.at(now, counter_offset=offset), code):
            return current + offset
    return None


def take_code(user: User, code: str, now: datetime, enabling: bool = False) -> bool:
    """Take a code of ``user``'s factor (on, or being set up when ``enabling``): True once per
    time step, whichever request sends it first; the step is recorded in the same UPDATE, and
    when ``enabling`` the factor is turned on in it too: only while its secret is still the one
    that matched the code (a new secret stored meanwhile stays off)."""
    factor = factor_of(user)
    if factor is None or (factor.enabled_at is None) is not enabling:
        return False
    secret = readable_secret(factor)
    step = matched_step(secret, code, now) if secret is not None else None
    if step is None:
        return False
    state = SecondFactor.enabled_at.is_(None) if enabling else SecondFactor.enabled_at.is_not(None)
    turned_on = {"enabled_at": utc_now()} if enabling else {}
    taken = db.session.execute(
        update(SecondFactor)
        .where(SecondFactor.user_id == user.id, SecondFactor.secret == factor.secret, state)
        .where((SecondFactor.last_step.is_(None)) | (SecondFactor.last_step < step))
        .values(last_step=step, **turned_on)
        .execution_options(synchronize_session=False)
    )
    won = rows_changed(taken) == 1
    if won and enabling:
        record(Action.SECOND_FACTOR_ON, user)
    db.session.commit()
    return won


def passes(user: User, code: str) -> bool:
    """Say whether ``code`` is a current code of ``user``'s factor (taken, then) or one of its
    unused recovery codes (spent, then; and every session and token of the user ends)."""
    if take_code(user, code, utc_now()):
        return True
    if not use_recovery_code(user, code):
        return False
    revoke(user)
    db.session.commit()
    log.info("recovery code used", extra={"user_id": user.id})
    notify(user, "recovery_code_used")
    return True


def enable(user: User, code: str, now: datetime) -> list[str] | None:
    """Turn ``user``'s factor on with a current code of the secret ``start`` stored; return the
    new recovery codes (shown once), or None when the code is not one."""
    if not take_code(user, code, now, enabling=True):  # taken and turned on in one UPDATE
        return None
    revoke(user)  # every other session and token ends: the caller's own is renewed by its route
    codes = new_recovery_codes(user)
    notify(user, "second_factor_on")
    return codes


def code_digest(code: str) -> str:
    """Return the stored form of a recovery code, read as typed: case, spaces and dashes aside."""
    cleaned = "".join(c for c in code.lower() if c not in " -")
    return hashlib.sha256(cleaned.encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Replace ``user``'s recovery codes with RECOVERY_CODES new ones; return them (shown once)."""
    codes = [
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        for _ in range(RECOVERY_CODES)
    ]
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=code_digest(c)) for c in codes)
    db.session.commit()
    return ["-".join(c[i : i + 4] for i in range(0, RECOVERY_LENGTH, 4)) for c in codes]


def use_recovery_code(user: User, code: str) -> bool:
    """Spend one of ``user``'s unused recovery codes: True once, whichever request is first."""
    used = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == code_digest(code))
        .where(RecoveryCode.used_at.is_(None))
        .values(used_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return rows_changed(used) == 1


def recovery_codes_left(user: User) -> int:
    """Return how many of ``user``'s recovery codes are unused."""
    unused = select(func.count()).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
    )
    return int(db.session.scalar(unused) or 0)


def remove(user: User) -> bool:
    """Remove ``user``'s factor and recovery codes, and end its sessions and tokens (not
    committed); say whether there was a factor."""
    had = factor_of(user) is not None
    db.session.execute(delete(SecondFactor).where(SecondFactor.user_id == user.id))
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    revoke(user)
    return had


def turn_off(user: User, actor: User | None = None, detail: str | None = None) -> bool:
    """Remove ``user``'s factor (remove) and commit, in the audit trail when there was one (by
    ``actor``: an admin; the user themself when None), and mail the owner a notice when the
    factor was on; say whether there was one."""
    was_on = is_on(user)
    had = remove(user)
    if had:
        record(Action.SECOND_FACTOR_OFF, user, actor, detail)
    db.session.commit()
    if was_on:
        notify(user, "second_factor_off")
    return had


def rekey() -> tuple[int, int]:
    """Encrypt every stored secret again with SECRET_KEY's key (after a rotation, those a key of
    SECRET_KEY_FALLBACKS encrypted); return how many were, and how many no key reads (left)."""
    rekeyed = unreadable = 0
    keys = cipher()
    for factor in db.session.scalars(select(SecondFactor)):
        try:
            factor.secret = keys.rotate(factor.secret.encode()).decode()
        except InvalidToken:
            unreadable += 1
        else:
            rekeyed += 1
    db.session.commit()
    return rekeyed, unreadable
