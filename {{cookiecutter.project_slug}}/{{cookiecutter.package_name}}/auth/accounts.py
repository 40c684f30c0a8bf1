"""Accounts: users with argon2 password hashes, their API tokens (stored as SHA-256 hashes only),
and revocation. No password, token or hash is ever logged (auth/cli.py manages users).
"""

import hashlib
import secrets
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    String,
    delete,
    func,
    literal,
    outerjoin,
    select,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..platform.timestamps import utc_now

# argon2id with OWASP's first configuration (19 MiB, 2 passes, 1 lane): about 20 ms, and 19 MiB
# per sign-in at once (RFC 9106's 64 MiB one, times a worker's threads, would crowd a 512 MiB
# container). Changed parameters rehash each password at its next sign-in (check_needs_rehash).
hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
MAX_PASSWORD_LENGTH = 1024  # hashing is slow on purpose: a longer password is refused, not hashed
# Verified for an unknown email, so that it takes as long as a wrong password. Made at import,
# once per process: made at the first unknown email, it would make that answer the slower one.
DUMMY_HASH = hasher.hash(secrets.token_urlsafe(32))
MAX_TOKENS_PER_USER = 20  # live tokens a user may hold: a new one ends the oldest past this
# Every hash of a request runs on these 2 threads of the process: a burst of sign-ins waits its
# turn instead of taking 19 MiB for each of a worker's threads at once. glibc's malloc keeps
# the memory a thread freed for that thread's next allocation, so the process keeps 19 MiB per
# thread that ever hashed: 2 threads here, not every thread of the app server.
HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


class Role(StrEnum):
    """What a user may do: USER, what its routes let any signed-in user do; ADMIN, also call the
    routes that declare Access.ADMIN (platform/routes.py). ``flask users promote`` makes one."""

    USER = "user"
    ADMIN = "admin"


class User(db.Model):  # type: ignore[name-defined, misc]  # made at run time: mypy#8603
    """Someone who signs in; ``login_generation`` grows when their sessions must end."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="users_role_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # normalised(): one form each
    # None: no password (an account single sign-on made) until a reset link sets one.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    login_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, server_default=func.now()
    )
    # When the address was proved (auth/sign_up.py), or the operator made the account; None:
    # not yet, so no sign-in.
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    role: Mapped[str] = mapped_column(String(16), default=Role.USER, server_default="user")


class Token(db.Model):  # type: ignore[name-defined, misc]  # made at run time: mypy#8603
    """An API token: only the SHA-256 of the random value the client holds is stored."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def normalised(email: str) -> str:
    """Return the one stored form of an address: a single plain addr-spec (no display name,
    list, comment or route), its domain IDNA-encoded, in lower case; raise ValueError.

    email-validator checks the syntax (RFC 5322 and 6531, and what mail servers accept). A
    non-ASCII local part is refused: delivering it needs SMTPUTF8 of every server on its way.
    Its test_environment takes addresses at .test (RFC 2606's domain for tests, which API
    fuzzers send, and nothing delivers to) as the other special-use names are not.
    """
    email = unicodedata.normalize("NFKC", email).strip()
    try:
        checked = validate_email(
            email,
            check_deliverability=False,
            allow_smtputf8=False,
            strict=True,
            test_environment=True,
        )
    except EmailNotValidError as exc:
        raise ValueError(f"not an email address: {exc}") from None
    # ascii_email: the domain in its IDNA (xn--) form; always set when SMTPUTF8 is not allowed.
    return str(checked.ascii_email).lower()


# An address in a request body: refused with 422 unless normalised() takes it; its stored form.
# Documented as an email (OpenAPI's format), so clients and fuzzers send addresses.
Address = Annotated[
    str, Field(max_length=254, json_schema_extra={"format": "email"}), AfterValidator(normalised)
]


def checked_password(password: str) -> str:
    """Return a password fit to hash (8 to MAX_PASSWORD_LENGTH characters); raise ValueError."""
    if not 8 <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password has 8 to {MAX_PASSWORD_LENGTH} characters")
    return password


def user_by_email(email: str) -> User | None:
    """Return the user with this email, given in any of its forms, else None."""
    try:
        address = normalised(email)
    except ValueError:
        return None  # a malformed email has no account
    user: User | None = db.session.scalar(select(User).where(User.email == address))
    return user


class Credentials(NamedTuple):
    """What a password check reads of the account an email names: all None when it names none."""

    id: int | None
    password_hash: str | None
    is_active: bool | None


def credentials(email: str) -> Credentials:
    """Return the credentials of the account this email names, given in any of its forms, read
    as one row whether it exists or not: an outer join from a one-row table, so a known and an
    unknown address cost the same query, the same row and no ORM object (their sign-in failures
    take as long: the answer's time does not tell which addresses have accounts). A malformed
    email names none, and is known to be malformed to whoever sent it: it is not looked up."""
    try:
        address = normalised(email)
    except ValueError:
        return Credentials(None, None, None)
    one_row = select(literal(1)).subquery()
    found = outerjoin(one_row, User, User.email == address)
    query = select(User.id, User.password_hash, User.is_active).select_from(found)
    return Credentials(*db.session.execute(query).one())


def authenticate(email: str, password: str) -> User | None:
    """Return the active user with this email and password, else None, after the same look-up
    and one verification whatever failed (unknown email, wrong password, no password,
    inactive); rehash on new parameters."""
    account = credentials(email)
    try:
        checked = password if len(password) <= MAX_PASSWORD_LENGTH else ""
        HASHING.submit(hasher.verify, account.password_hash or DUMMY_HASH, checked).result()
    except (VerificationError, InvalidHashError):
        return None
    if account.id is None or not account.is_active or account.password_hash is None:
        return None
    user = db.session.get_one(User, account.id)  # only now, for a right password
    if hasher.check_needs_rehash(account.password_hash):
        user.password_hash = HASHING.submit(hasher.hash, password).result()
        db.session.commit()
    return user


def token_digest(token: str) -> str:
    """Return the stored form of a token: SHA-256, enough for 256 random bits (no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User, lifetime: timedelta) -> tuple[str, datetime]:
    """Store a new token of ``user`` and return it (shown once) with its expiry; drop the user's
    expired tokens, and the oldest live ones past MAX_TOKENS_PER_USER."""
    token, now = secrets.token_urlsafe(32), utc_now()
    live = select(Token.id).where(Token.user_id == user.id, Token.expires_at > now)
    kept = db.session.scalars(live.order_by(Token.id.desc()).limit(MAX_TOKENS_PER_USER - 1)).all()
    db.session.execute(delete(Token).where(Token.user_id == user.id, Token.id.not_in(kept)))
    expires_at = now + lifetime
    db.session.add(Token(user_id=user.id, token_hash=token_digest(token), expires_at=expires_at))
    db.session.commit()
    return token, expires_at


def user_for_token(token: str) -> User | None:
    """Return the active user holding this unexpired token, else None."""
    query = select(User).join(Token).where(Token.token_hash == token_digest(token))
    user: User | None = db.session.scalar(query.where(Token.expires_at > utc_now(), User.is_active))
    return user


def is_last_admin(user: User) -> bool:
    """Say whether ``user`` is the only active admin. The active admins' rows stay locked until
    the commit (SELECT ... FOR UPDATE, in id order: two such checks wait for each other instead
    of deadlocking), so of two admins demoting each other at once, the second sees the first's
    change."""
    admins = select(User.id).where(User.role == Role.ADMIN, User.is_active).order_by(User.id)
    return list(db.session.scalars(admins.with_for_update())) == [user.id]


def end_tokens(user: User) -> None:
    """End every API token of ``user``."""
    db.session.execute(delete(Token).where(Token.user_id == user.id))


def revoke(user: User) -> None:
    """End every token and browser session of ``user`` (deactivation, a new password)."""
    end_tokens(user)
    # Counted by the database (UPDATE ... SET login_generation = login_generation + 1): two
    # requests ending sessions at once both count, where reading and writing it back would not.
    user.login_generation = User.login_generation + 1


def account_key(email: str) -> str:
    """Return the rate limiter's key of the account an email names: a digest of its stored
    form, so no address is kept; every malformed email shares one key; unknown ones count as
    known ones."""
    try:
        address = normalised(email)
    except ValueError:
        address = ""
    return "sign-in:" + hashlib.sha256(address.encode()).hexdigest()
