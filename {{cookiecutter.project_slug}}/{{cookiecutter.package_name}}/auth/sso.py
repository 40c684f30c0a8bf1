"""Single sign-on's identities: a user's account at an OpenID Connect provider, named by the pair
(issuer, subject) of the provider's ID tokens, and the rules that link one to an account here.

An identity signs in the user it is linked to. A first sign-in links by address only when the
provider says it checked the address (``email_verified``) and the account here confirmed it too,
so that nobody takes an account over through a provider that hands out unchecked addresses; and
it makes a new account only when OIDC_SIGN_UP allows it. No token of the provider is stored.
"""

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..platform.database import rows_changed
from ..platform.timestamps import utc_now
from .accounts import User, normalised, user_by_email
from .audit import Action, record
from .passkeys import Passkey

MAX_CLAIM_LENGTH = 255  # OpenID Connect's subject has 255 ASCII characters at most


class Identity(db.Model):  # type: ignore[name-defined, misc]  # made at run time: mypy#8603
    """A user's account at a provider: its issuer and subject, never a token."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("issuer", "subject", name="identities_issuer_subject"),
        # One identity per provider and account, even linked at the same moment.
        UniqueConstraint("user_id", "issuer", name="identities_user_issuer"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    issuer: Mapped[str] = mapped_column(String(MAX_CLAIM_LENGTH))
    subject: Mapped[str] = mapped_column(String(MAX_CLAIM_LENGTH))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, server_default=func.now()
    )


@dataclass(frozen=True)
class Claims:
    """What a verified ID token says of its user."""

    issuer: str
    subject: str
    email: str | None  # as the provider gives it
    email_verified: bool  # the provider checked that the user reads this address


class Refused(Exception):
    """The identity signs nobody in: ``reason`` for the log, ``sentence`` for the user."""

    def __init__(self, reason: str, sentence: str) -> None:
        """Keep why, and what the user is told."""
        super().__init__(reason)
        self.reason, self.sentence = reason, sentence


# What the sign-in page says of a flow that failed (auth/sso_provider.py).
UNREACHABLE = "The sign-in provider did not answer: retry in a moment."
FAILED = "The sign-in with the provider failed: retry, or sign in with your password."
CANCELLED = "The sign-in at the provider was cancelled or refused."
INACTIVE = "This account is deactivated."
NO_ADDRESS = "The provider gave no address this service can use: ask its administrator."
UNVERIFIED_THERE = "The provider has not confirmed your address: confirm it there, then retry."
# An account has the address, but the rules above do not let the identity take it over.
LINK_FROM_SECURITY = (
    "An account here has this address: sign in with its password, then link the provider "
    "from the account's security page."
)
NO_ACCOUNT = "No account here has this address, and the provider's users cannot sign up here."
TAKEN = "This identity at the provider is linked to another account here."
# An account's address, claimed by a second identity at the same provider (an address the
# provider gave anew to another user, say): the account's own identity stays the one.
ALREADY_THERE = "The account of this address is linked to another identity at this provider."
ALREADY = "Your account is linked to another identity at this provider: unlink that one first."
LAST_WAY_IN = (
    'This is the last way into your account: set a password first (by "Forgot your '
    'password?"), or add a passkey.'
)


def claims_of(issuer: str, userinfo: dict[str, object]) -> Claims:
    """Return the claims of a verified ID token (its issuer checked to be ``issuer``); raise
    Refused when its subject is unfit to store."""
    subject = userinfo.get("sub")
    if not (isinstance(subject, str) and is_subject(subject)):
        raise Refused("subject", NO_ADDRESS)
    email = userinfo.get("email")
    verified = userinfo.get("email_verified")  # a few providers send the string "true"
    return Claims(
        issuer=issuer,
        subject=subject,
        email=email if isinstance(email, str) else None,
        email_verified=verified is True or verified == "true",
    )


def is_subject(value: str) -> bool:
    """Say whether ``value`` is a subject as OpenID Connect defines one: 1 to 255 printable ASCII
    characters (and not only blanks)."""
    fit = value.isascii() and value.isprintable() and len(value) <= MAX_CLAIM_LENGTH
    return fit and bool(value.strip())


def identity_of(claims: Claims) -> Identity | None:
    """Return the stored identity these claims name, else None."""
    found: Identity | None = db.session.scalar(
        select(Identity).where(Identity.issuer == claims.issuer, Identity.subject == claims.subject)
    )
    return found


def user_for(claims: Claims, sign_up: bool) -> User:
    """Return the active user these claims sign in: the one their identity is linked to; else
    the confirmed account of their address, which the provider confirmed too (linked now); else
    a new account (``sign_up``) with that address, confirmed, and no password. Raise Refused."""
    identity = identity_of(claims)
    if identity is not None:
        owner = db.session.get(User, identity.user_id)
        if owner is None or not owner.is_active:
            raise Refused("inactive", INACTIVE)
        return owner
    address = checked_address(claims)
    user = user_by_email(address)
    if user is not None and not user.is_active:
        raise Refused("inactive", INACTIVE)
    if user is not None and user.email_verified_at is None:
        raise Refused("unconfirmed_account", LINK_FROM_SECURITY)
    linked = linked_identity(user, claims.issuer) if user is not None else None
    if linked is not None and linked.subject != claims.subject:
        raise Refused("another_identity", ALREADY_THERE)
    if user is not None and linked is not None:  # this identity, linked by a request at once
        return user
    if user is None and not sign_up:
        raise Refused("no_account", NO_ACCOUNT)
    return stored(claims, user, address)


def checked_address(claims: Claims) -> str:
    """Return the stored form of the address the provider confirmed; raise Refused. An address
    that normalised() would change other than by case (blanks around it, a compatibility form of
    a character) is refused: the provider confirmed that very string, not the one it becomes."""
    email = claims.email or ""
    if email != unicodedata.normalize("NFKC", email).strip():
        raise Refused("address_form", NO_ADDRESS)
    try:
        address = normalised(email)
    except ValueError:
        raise Refused("no_address", NO_ADDRESS) from None
    if not claims.email_verified:
        raise Refused("unverified_address", UNVERIFIED_THERE)
    return address


def stored(claims: Claims, user: User | None, address: str) -> User:
    """Link the identity to ``user``, or to a new account of ``address`` (None), and return the
    user; when a request at the same moment stored the same identity or address first, return
    the user its identity names."""
    try:
        if user is None:
            user = User(email=address, password_hash=None, email_verified_at=utc_now())
            db.session.add(user)
            db.session.flush()  # its id, for the identity
            record(Action.USER_CREATED, user, detail="provider")
        db.session.add(Identity(user_id=user.id, issuer=claims.issuer, subject=claims.subject))
        record(Action.IDENTITY_LINKED, user)
        db.session.commit()
    except IntegrityError:  # the same identity (or a new account's address) was taken at once
        db.session.rollback()
        identity = identity_of(claims)
        winner = db.session.get(User, identity.user_id) if identity is not None else None
        if winner is None or not winner.is_active:
            raise Refused("taken_at_once", TAKEN) from None
        return winner
    return user


def link(user: User, claims: Claims) -> None:
    """Link the identity to ``user``, who signed in here; raise Refused when it is another's, or
    ``user`` has another identity at this provider."""
    identity = identity_of(claims)
    if identity is not None and identity.user_id != user.id:
        raise Refused("linked_to_another", TAKEN)
    if identity is not None:
        return
    if linked_identity(user, claims.issuer) is not None:
        raise Refused("another_identity", ALREADY)
    db.session.add(Identity(user_id=user.id, issuer=claims.issuer, subject=claims.subject))
    record(Action.IDENTITY_LINKED, user)
    try:
        db.session.commit()
    except IntegrityError:  # linked by another request at the same moment
        db.session.rollback()
        raise Refused("linked_at_once", TAKEN) from None


def linked_identity(user: User, issuer: str) -> Identity | None:
    """Return ``user``'s identity at the provider ``issuer``, else None."""
    found: Identity | None = db.session.scalar(
        select(Identity).where(Identity.user_id == user.id, Identity.issuer == issuer)
    )
    return found


def unlink(user: User, issuer: str) -> None:
    """Unlink ``user``'s identity at ``issuer``; raise Refused when no other way in is left (a
    password or a passkey)."""
    if user.password_hash is None and not count(Passkey, user):
        raise Refused("last_way_in", LAST_WAY_IN)
    mine = (Identity.user_id == user.id) & (Identity.issuer == issuer)
    if rows_changed(db.session.execute(delete(Identity).where(mine))):
        record(Action.IDENTITY_UNLINKED, user)
    db.session.commit()


def may_remove_a_passkey(user: User) -> bool:
    """Say whether ``user`` keeps a way in without one of their passkeys: a password, an
    identity, or another passkey (auth/passkey_pages.py asks before removing one)."""
    return user.password_hash is not None or count(Identity, user) > 0 or count(Passkey, user) > 1


def count(model: type[Identity] | type[Passkey], user: User) -> int:
    """Return how many rows of ``model`` belong to ``user``."""
    return db.session.scalar(select(func.count()).where(model.user_id == user.id)) or 0
