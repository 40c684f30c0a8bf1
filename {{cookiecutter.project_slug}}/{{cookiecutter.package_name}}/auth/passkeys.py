"""Passkeys (WebAuthn, verified by py_webauthn): a user's credentials, and the challenges of the
two ceremonies that add one (registration) and sign in with one (authentication).

Only a credential's public key is stored: nothing here can sign in anywhere if it leaks, and the
browser offers a passkey to its own site only. A challenge is random, held in the session of the
browser that asked for it, and stored as a digest with its expiry: verifying takes it from both,
so it serves once, in that session, before it expires (a replayed session cookie finds no row).
"""

import base64
import hashlib
import secrets
import unicodedata
from datetime import datetime, timedelta

from flask import current_app, session
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    delete,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..platform.database import rows_changed
from ..platform.timestamps import utc_now
from ..settings.passkeys import origins_of

MAX_PASSKEYS_PER_USER = 20  # enough for every device of one person; registration refuses more
MAX_NAME_LENGTH = 64
DEFAULT_NAME = "Passkey"  # a passkey added with no name, or none left once cleaned
# Characters dropped from a name: controls, formats (bidi overrides, zero-width joiners) and lone
# surrogates would disguise it on the page and in the users command; whitespace becomes spaces.
HIDDEN = frozenset({"Cc", "Cf", "Cs"})
SESSION_KEY = "passkey_ceremony"  # the session's one pending ceremony: its kind and challenge


class Passkey(db.Model):  # type: ignore[name-defined, misc]  # made at run time: mypy#8603
    """A user's passkey: its credential id and public key, and what its authenticator reports."""

    __tablename__ = "passkeys"
    # A user's passkeys, found by user; two of them never share a name, even added at once.
    __table_args__ = (Index("ix_passkeys_user_id_name", "user_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)  # WebAuthn's most
    # The WebAuthn user handle the authenticator stores with the credential: random, one per user.
    user_handle: Mapped[bytes] = mapped_column(LargeBinary(64))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE-encoded
    sign_count: Mapped[int] = mapped_column(BigInteger)  # the authenticator's counter; 0: none
    backup_eligible: Mapped[bool] = mapped_column(Boolean)  # a synced (multi-device) passkey
    backed_up: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, server_default=func.now()
    )
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasskeyChallenge(db.Model):  # type: ignore[name-defined, misc]  # made at run time: mypy#8603
    """A ceremony's challenge, unused yet: its SHA-256 and when it expires."""

    __tablename__ = "passkey_challenges"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


def passkeys_of(user_id: int) -> list[Passkey]:
    """Return a user's passkeys, oldest first."""
    mine = select(Passkey).where(Passkey.user_id == user_id)
    return list(db.session.scalars(mine.order_by(Passkey.id)))


def relying_party() -> tuple[str, list[str]]:
    """Return the relying party id and the origins the settings name (none: no passkeys)."""
    settings = current_app.extensions["settings"]
    return settings.passkey_rp_id, origins_of(settings.passkey_origins)


def new_challenge(kind: str, **extra: str) -> bytes:
    """Return a new challenge for a ``kind`` of ceremony, stored and held by this session (with
    ``extra`` values), replacing the session's previous one; expired challenges are dropped."""
    challenge, now = secrets.token_bytes(32), utc_now()
    lifetime = timedelta(seconds=current_app.extensions["settings"].passkey_challenge_seconds)
    db.session.execute(delete(PasskeyChallenge).where(PasskeyChallenge.expires_at <= now))
    db.session.add(PasskeyChallenge(digest=digest(challenge), expires_at=now + lifetime))
    db.session.commit()
    session[SESSION_KEY] = {"kind": kind, "challenge": to_base64url(challenge), **extra}
    return challenge


def take_challenge(kind: str) -> tuple[bytes, dict[str, str]] | None:
    """Return this session's challenge of ``kind`` and its extra values, used up; None when the
    session holds none of that kind, or it expired or served already."""
    held = session.pop(SESSION_KEY, None)
    if not isinstance(held, dict) or held.get("kind") != kind:
        return None
    challenge = from_base64url(held["challenge"])
    taken = db.session.execute(
        delete(PasskeyChallenge).where(
            PasskeyChallenge.digest == digest(challenge), PasskeyChallenge.expires_at > utc_now()
        )
    )
    db.session.commit()
    if rows_changed(taken) != 1:
        return None
    return challenge, held


def clean_name(name: str) -> str:
    """Return a passkey name as stored: hidden characters dropped, any run of whitespace (line
    breaks and separators included) one space, cut to MAX_NAME_LENGTH; "" when nothing is left."""
    shown = "".join(c for c in name if c.isspace() or unicodedata.category(c) not in HIDDEN)
    return " ".join(shown.split())[:MAX_NAME_LENGTH].rstrip()


def distinct_name(name: str, taken: set[str]) -> str:
    """Return ``name`` if it is not ``taken``, else the first of "name 2", "name 3", ... that is
    not (cut to MAX_NAME_LENGTH): two passkeys of one user never look alike on the page."""
    candidate, number = name, 1
    while candidate in taken:  # at most len(taken) + 1 steps: each number gives another name
        number += 1
        suffix = f" {number}"
        candidate = name[: MAX_NAME_LENGTH - len(suffix)].rstrip() + suffix
    return candidate


def to_base64url(value: bytes) -> str:
    """Return ``value`` in base64url without padding, as WebAuthn's JSON carries bytes."""
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def from_base64url(text: str) -> bytes:
    """Return the bytes of base64url ``text``, padded or not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def digest(challenge: bytes) -> str:
    """Return the stored form of a challenge."""
    return hashlib.sha256(challenge).hexdigest()
