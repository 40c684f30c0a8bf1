"""Accounts: one stored form of each email, argon2 hashes rehashed when the parameters change,
one verification whatever fails, two hashes at most at once, and API tokens stored only as
hashes, expiring and revocable."""

import threading
import time
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from {{ cookiecutter.package_name }}.auth import accounts
from {{ cookiecutter.package_name }}.auth.accounts import (
    Token,
    User,
    authenticate,
    issue_token,
    normalised,
    revoke,
    token_digest,
    user_for_token,
)
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform.timestamps import utc_now
from tests.conftest import hash_of

PASSWORD = "correct horse battery staple"
# Cheaper than the app's parameters: a hash made with it must be rehashed at the next sign-in.
OLD_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


class CountingHasher(PasswordHasher):
    """The app's hasher, keeping each hash it is asked to verify."""

    def __init__(self):
        super().__init__()
        self.verified = []

    def verify(self, stored, password):
        self.verified.append(stored)
        return super().verify(stored, password)


def add_user(email="ada@example.com", password=PASSWORD, active=True, password_hash=None):
    """Store a user directly (the CLI's own tests cover the commands) and return it."""
    user = User(
        email=email,
        password_hash=password_hash or hash_of(password),
        is_active=active,
        email_verified_at=utc_now(),
    )
    db.session.add(user)
    db.session.commit()
    return user


@pytest.fixture
def context(app):
    """Run the test inside an app context, its session removed afterwards."""
    with app.app_context():
        yield
        db.session.remove()


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada@Example.COM\n", "ada@example.com"),
        ("\uff21\uff24\uff21@example.com", "ada@example.com"),  # full-width "ADA" (NFKC)
    ],
)
def test_an_email_has_one_stored_form(given, stored):
    """It trims, folds compatibility forms and lowers the case, so one address is one account."""
    assert normalised(given) == stored


@pytest.mark.parametrize(
    "given",
    ["", "ada", "ada@", "@example.com", "ada@localhost", "a da@x.org", "a@b@", "a\x00@x.org"],
)
def test_a_malformed_email_is_refused(given):
    """It refuses what is not an address rather than storing it."""
    with pytest.raises(ValueError, match="not an email address"):
        normalised(given)


def test_the_database_refuses_a_second_account_for_an_email(context):
    """It keeps emails unique in the schema itself, not only in the code that checks first."""
    add_user()
    with pytest.raises(IntegrityError):
        add_user()
    db.session.rollback()


def test_the_right_password_signs_in_whatever_the_email_case(context):
    """It finds the user by the stored form of the email given."""
    user = add_user()
    assert authenticate(" ADA@example.com", PASSWORD) == user


@pytest.mark.parametrize(
    ("email", "password", "active"),
    [
        ("ada@example.com", "wrong password", True),
        ("nobody@example.com", PASSWORD, True),
        ("not an email", PASSWORD, True),
        ("ada@example.com", PASSWORD, False),
        ("ada@example.com", PASSWORD + "x" * accounts.MAX_PASSWORD_LENGTH, True),
    ],
    ids=["wrong-password", "unknown-email", "malformed-email", "inactive", "too-long"],
)
def test_each_failed_sign_in_verifies_one_hash_and_answers_none(
    context, monkeypatch, email, password, active
):
    """It verifies exactly one argon2 hash whatever fails (a dummy one for an unknown email), so
    a failure takes about the same time, and answers the same None."""
    add_user(active=active)
    counting = CountingHasher()
    monkeypatch.setattr(accounts, "hasher", counting)
    assert authenticate(email, password) is None
    assert len(counting.verified) == 1
    assert counting.verified[0].startswith("$argon2id$")
    if email != "ada@example.com":
        assert counting.verified == [accounts.DUMMY_HASH]


def test_the_dummy_hash_costs_what_a_stored_one_does():
    """It is made with the current parameters, so verifying it takes as long as a real one."""
    assert not accounts.hasher.check_needs_rehash(accounts.DUMMY_HASH)
    assert accounts.DUMMY_HASH.startswith("$argon2id$")


def test_at_most_two_hashes_are_computed_at_once(monkeypatch):
    """It makes a burst of sign-ins take turns, two at a time: a worker's threads cannot each
    hold a hash's memory at once."""
    at_once, most, lock = 0, 0, threading.Lock()

    class SlowHasher(PasswordHasher):
        def verify(self, stored, password):
            nonlocal at_once, most
            with lock:
                at_once += 1
                most = max(most, at_once)
            time.sleep(0.05)
            with lock:
                at_once -= 1
            return super().verify(stored, password)

    monkeypatch.setattr(accounts, "hasher", SlowHasher())
    burst = [threading.Thread(target=authenticate, args=("x", PASSWORD)) for _ in range(6)]
    for thread in burst:
        thread.start()
    for thread in burst:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in burst)
    assert most == 2


def test_a_hash_made_with_old_parameters_is_replaced_at_sign_in(context):
    """It rehashes with the current parameters once the password is known to be right."""
    user = add_user(password_hash=OLD_HASHER.hash(PASSWORD))
    old = user.password_hash
    assert accounts.hasher.check_needs_rehash(old)
    assert authenticate("ada@example.com", PASSWORD) == user
    db.session.expire_all()
    new = db.session.scalars(select(User)).one().password_hash
    assert new is not None and new != old
    assert not accounts.hasher.check_needs_rehash(new)
    assert accounts.hasher.verify(new, PASSWORD)


def test_a_wrong_password_leaves_an_old_hash_alone(context):
    """It rehashes only after a successful verification."""
    user = add_user(password_hash=OLD_HASHER.hash(PASSWORD))
    old = user.password_hash
    assert authenticate("ada@example.com", "wrong password") is None
    db.session.expire_all()
    assert db.session.scalars(select(User)).one().password_hash == old


def test_a_token_is_stored_only_as_its_sha256(context):
    """It gives the token once; the database holds its SHA-256, never the token itself."""
    user = add_user()
    token, expires_at = issue_token(user, timedelta(hours=1))
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    (stored,) = db.session.scalars(select(Token)).all()
    assert stored.token_hash == token_digest(token) != token
    assert token not in repr([getattr(stored, c.key) for c in Token.__table__.columns])
    assert user_for_token(token) == user
    assert expires_at > utc_now()


def test_two_tokens_differ(context):
    """It draws each token at random: the same user gets a new one each time."""
    user = add_user()
    assert issue_token(user, timedelta(hours=1))[0] != issue_token(user, timedelta(hours=1))[0]


def test_a_new_token_ends_the_expired_ones_and_the_oldest_past_the_cap(context, monkeypatch):
    """It keeps a user's tokens bounded: expired rows go, and the oldest live ones past
    MAX_TOKENS_PER_USER; another user's tokens stay."""
    monkeypatch.setattr(accounts, "MAX_TOKENS_PER_USER", 2)
    user, other = add_user(), add_user(email="grace@example.com")
    expired, _ = issue_token(user, timedelta(seconds=-1))
    others = issue_token(other, timedelta(hours=1))[0]
    first, second, third = (issue_token(user, timedelta(hours=1))[0] for _ in range(3))
    live = [user_for_token(token) for token in (first, second, third)]
    assert live == [None, user, user]
    hashes = set(db.session.scalars(select(Token.token_hash)))
    assert hashes == {token_digest(token) for token in (second, third, others)}
    assert token_digest(expired) not in hashes


def test_an_expired_token_is_refused(context):
    """It accepts a token only before its expiry."""
    user = add_user()
    token, _ = issue_token(user, timedelta(seconds=-1))
    assert user_for_token(token) is None


def test_an_unknown_token_is_refused(context):
    """It accepts only a token it issued, not one of the same shape."""
    user = add_user()
    token, _ = issue_token(user, timedelta(hours=1))
    assert user_for_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_revoking_ends_every_token_and_browser_session(context):
    """It deletes the user's tokens and advances the generation browser sessions are bound to."""
    user, other = add_user(), add_user(email="grace@example.com")
    tokens = [issue_token(user, timedelta(hours=1))[0] for _ in range(2)]
    kept, _ = issue_token(other, timedelta(hours=1))
    generation = user.login_generation
    revoke(user)
    db.session.commit()
    assert [user_for_token(token) for token in tokens] == [None, None]
    assert user_for_token(kept) == other
    assert user.login_generation == generation + 1


def test_the_token_of_a_deactivated_user_is_refused(context):
    """It refuses the tokens of an inactive user even if one was left in the table."""
    user = add_user()
    token, _ = issue_token(user, timedelta(hours=1))
    user.is_active = False
    db.session.commit()
    assert user_for_token(token) is None
