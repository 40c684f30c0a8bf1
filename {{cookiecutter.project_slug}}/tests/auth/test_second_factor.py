"""The second factor's rules (auth/second_factor.py), each on a frozen clock: a code is taken once,
within one step of drift; the secret is stored encrypted; recovery codes are stored as hashes and
each is used once; turning the factor on or resetting it ends the user's tokens and sessions."""

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pyotp
import pytest
from sqlalchemy import select

from {{ cookiecutter.package_name }}.auth import second_factor
from {{ cookiecutter.package_name }}.auth.accounts import User, issue_token, user_for_token
from {{ cookiecutter.package_name }}.auth.second_factor import RecoveryCode, SecondFactor
from {{ cookiecutter.package_name }}.extensions import db
from tests.auth.test_accounts import add_user
from tests.auth.test_cli import users

NOW = datetime(2026, 11, 29, 12, 0, 15, tzinfo=UTC)  # 15 s into a 30-second step
STEP = timedelta(seconds=30)
RACERS = 8
T = TypeVar("T")


def code_at(secret: str, when: datetime) -> str:
    """Return the code an authenticator app shows at ``when``."""
    return pyotp.TOTP(secret).at(when)


@pytest.fixture
def context(app):
    """Run the test inside an app context, its session removed afterwards."""
    with app.app_context():
        yield
        db.session.remove()


def enabled_user(when: datetime = NOW):
    """Store a user whose factor was turned on at ``when``; return it, its secret and codes."""
    user = add_user()
    secret = second_factor.start(user)
    codes = second_factor.enable(user, code_at(secret, when), when)
    assert codes is not None
    return user, secret, codes


def test_a_factor_is_off_until_a_current_code_of_its_secret_turns_it_on(context):
    """``start`` stores a secret that takes no code yet; a wrong code leaves it off; a current
    one turns it on and gives RECOVERY_CODES different recovery codes."""
    user = add_user()
    secret = second_factor.start(user)
    assert not second_factor.is_on(user)
    assert not second_factor.take_code(user, code_at(secret, NOW), NOW)  # not on: no sign-in
    wrong = f"{(int(code_at(secret, NOW)) + 1) % 1_000_000:06d}"
    assert second_factor.enable(user, wrong, NOW) is None
    assert not second_factor.is_on(user)
    codes = second_factor.enable(user, code_at(secret, NOW), NOW)
    assert codes is not None and len(set(codes)) == second_factor.RECOVERY_CODES
    assert second_factor.is_on(user)
    with pytest.raises(ValueError, match="on already"):
        second_factor.start(user)


def test_the_uri_names_the_account_and_the_issuer(context):
    """Apps scan it: otpauth://totp/ with the issuer, the address and the secret."""
    user = add_user()
    secret = second_factor.start(user)
    uri = second_factor.provisioning_uri(secret, user, "My Service")
    assert uri.startswith("otpauth://totp/My%20Service:ada%40example.com?")
    assert f"secret={secret}" in uri and "issuer=My%20Service" in uri


def test_a_code_is_taken_once_and_no_earlier_one_after_it(context):
    """The code that turned the factor on, sent again, is refused; the next step's code is taken
    once; the previous step's code, still within the drift, is refused after it."""
    user, secret, _ = enabled_user()
    assert not second_factor.take_code(user, code_at(secret, NOW), NOW)
    later = NOW + STEP
    assert second_factor.take_code(user, code_at(secret, later), later)
    assert not second_factor.take_code(user, code_at(secret, later), later)
    assert not second_factor.take_code(user, code_at(secret, NOW), later)


@pytest.mark.parametrize(("steps", "taken"), [(-2, False), (-1, True), (1, True), (2, False)])
def test_a_code_within_one_step_of_the_clock_is_taken(context, steps, taken):
    """A code one step (30 s) early or late is taken: clocks drift; two steps away is refused."""
    user, secret, _ = enabled_user(NOW - 10 * STEP)
    assert second_factor.take_code(user, code_at(secret, NOW + steps * STEP), NOW) is taken


@pytest.mark.parametrize(
    "typed", ["", "12345", "1234567", "abcdef", "\u0661\u0662\u0663\u0664\u0665\u0666", "12345x"]
)
def test_a_malformed_code_is_refused_without_an_error(context, typed):
    """Only six ASCII digits are a code (Arabic-Indic digits are digits to Python, not here)."""
    user, _, _ = enabled_user(NOW - 10 * STEP)
    assert not second_factor.take_code(user, typed, NOW)


def test_a_code_typed_with_spaces_is_taken(context):
    """Apps show "123 456": the spaces are not part of the code."""
    user, secret, _ = enabled_user(NOW - 10 * STEP)
    code = code_at(secret, NOW)
    assert second_factor.take_code(user, f" {code[:3]} {code[3:]} ", NOW)


def at_once(app, user_id: int, calls: list[Callable[[User], T]]) -> list[T]:
    """Run each of ``calls`` on the user ``user_id``, each in a thread with an app context and a
    database session of its own, let go together as requests to two workers would be; return
    the answers in the order of ``calls`` (an error in one is raised here)."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[User], T]) -> T:
        with app.app_context():
            racer = db.session.get(User, user_id)
            assert racer is not None
            start.wait(timeout=10)
            try:
                return call(racer)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_the_same_code_sent_at_once_by_many_requests_is_taken_once(app):
    """RACERS requests take the same current code at once: one is accepted."""
    with app.app_context():
        user, secret, _ = enabled_user(NOW - 10 * STEP)
        user_id, code = user.id, code_at(secret, NOW)
        db.session.remove()
    take = functools.partial(second_factor.take_code, code=code, now=NOW)
    answers = at_once(app, user_id, [take] * RACERS)
    assert sorted(answers) == [False] * (RACERS - 1) + [True], answers


def test_of_three_enables_at_once_with_different_codes_one_turns_the_factor_on(app):
    """Three requests turn the factor on at once, each with a code of another step (all within
    the drift): one gets recovery codes, and the codes stored are that one's."""
    with app.app_context():
        user = add_user()
        secret = second_factor.start(user)
        user_id = user.id
        db.session.remove()
    codes = [code_at(secret, NOW + steps * STEP) for steps in (-1, 0, 1)]
    enables: list[Callable[[User], list[str] | None]] = [
        functools.partial(second_factor.enable, code=code, now=NOW) for code in codes
    ]
    (won,) = [answer for answer in at_once(app, user_id, enables) if answer is not None]
    with app.app_context():
        racer = db.session.get(User, user_id)
        assert racer is not None and second_factor.is_on(racer)
        assert second_factor.use_recovery_code(racer, won[0])


def test_a_secret_stored_while_a_code_turns_the_factor_on_stays_off(app, monkeypatch):
    """Another request storing a new secret right after a code of the old one was taken (an
    enable and a start at once) cannot have the new secret turned on, which no code confirmed:
    the factor that is on is the code's."""
    with app.app_context():
        user = add_user()
        secret = second_factor.start(user)
        user_id = user.id
        db.session.remove()
    take = second_factor.take_code
    late: list[str] = []

    def then_a_start(racer: User, *args, **kwargs) -> bool:
        taken = take(racer, *args, **kwargs)
        late.append("".join(at_once(app, user_id, [start_or_refused])))  # another request
        return taken

    monkeypatch.setattr(second_factor, "take_code", then_a_start)
    with app.app_context():
        racer = db.session.get(User, user_id)
        assert racer is not None
        assert second_factor.enable(racer, code_at(secret, NOW), NOW) is not None
        assert late == ["refused"]  # on already: a new secret waits for turning it off
        assert readable(racer) == secret and second_factor.is_on(racer)


def start_or_refused(user: User) -> str:
    """Store a new secret for ``user``'s factor; return it, or "refused"."""
    try:
        return second_factor.start(user)
    except ValueError:
        return "refused"


def readable(user: User) -> str | None:
    """Return the secret of ``user``'s factor as this app reads it."""
    factor = second_factor.factor_of(user)
    assert factor is not None
    return second_factor.readable_secret(factor)


def test_the_secret_is_stored_encrypted_and_another_secret_key_reads_nothing(app, make_app):
    """The row holds a Fernet token, not the secret; an app with another SECRET_KEY cannot read
    it, and its factor then takes no code (no error either)."""
    with app.app_context():
        user, secret, _ = enabled_user(NOW - 10 * STEP)
        stored = db.session.scalars(select(SecondFactor)).one().secret
        assert secret not in stored and secret.lower() not in stored.lower()
        assert readable(user) == secret
        db.session.remove()
    other = make_app(secret_key="another-secret-key-for-this-test-only")
    # make_app empties the tables: store the same row again, as a dump restored elsewhere would.
    with other.app_context():
        user = add_user()
        db.session.add(SecondFactor(user_id=user.id, secret=stored, enabled_at=NOW))
        db.session.commit()
        assert readable(user) is None
        assert not second_factor.take_code(user, code_at(secret, NOW), NOW)
        db.session.remove()


def test_recovery_codes_are_stored_as_hashes_and_each_is_used_once(context):
    """No code is stored as typed; each is used once, however it is typed (case, dashes,
    spaces); a new set ends every code of the old one."""
    user, _, codes = enabled_user()
    stored = db.session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == second_factor.RECOVERY_CODES
    assert not {code.replace("-", "") for code in codes} & set(stored)
    assert second_factor.use_recovery_code(user, codes[0])
    assert not second_factor.use_recovery_code(user, codes[0])
    assert second_factor.use_recovery_code(user, f" {codes[1].upper().replace('-', ' ')} ")
    assert second_factor.recovery_codes_left(user) == second_factor.RECOVERY_CODES - 2
    assert not second_factor.use_recovery_code(user, "")
    fresh = second_factor.new_recovery_codes(user)
    assert not second_factor.use_recovery_code(user, codes[2])
    assert second_factor.use_recovery_code(user, fresh[2])


def test_turning_the_factor_on_ends_the_users_tokens_and_sessions(context):
    """Every token ends and the login generation grows (browser sessions end)."""
    user = add_user()
    token, _ = issue_token(user, timedelta(hours=1))
    generation = user.login_generation
    secret = second_factor.start(user)
    assert second_factor.enable(user, code_at(secret, NOW), NOW) is not None
    assert user_for_token(token) is None
    db.session.refresh(user)
    assert user.login_generation == generation + 1


def test_mfa_reset_turns_the_factor_off_and_ends_the_tokens(app, caplog):
    """``flask users mfa-reset EMAIL`` removes the factor and its recovery codes, ends the
    user's tokens and logs it; a user without a factor is told so."""
    with app.app_context():
        user, _, _ = enabled_user()
        token, _ = issue_token(user, timedelta(hours=1))
        db.session.remove()
    with caplog.at_level(logging.INFO):
        result = users(app, "mfa-reset", "Ada@example.com")
    assert result.exit_code == 0, result.output
    assert "Turned off the second factor of ada@example.com" in result.output
    logged = [(getattr(r, "action", None), getattr(r, "detail", None)) for r in caplog.records]
    assert ("second_factor_off", "reset") in logged
    with app.app_context():
        assert db.session.scalars(select(SecondFactor)).all() == []
        assert db.session.scalars(select(RecoveryCode)).all() == []
        assert user_for_token(token) is None
    result = users(app, "mfa-reset", "ada@example.com")
    assert result.exit_code == 1
    assert "ada@example.com has no second factor" in result.output
