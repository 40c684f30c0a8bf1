"""The second step of an API sign-in (POST /api/auth/tokens): an account whose second factor is on
gets a token only with ``code``, a current code of its authenticator app or one of its recovery
codes; no token exists before; a code is taken once; codes count in the per-account limit, and
a right password clears nothing until its code passes."""

from datetime import timedelta

import pyotp
from sqlalchemy import func, select

from {{ cookiecutter.package_name }}.auth import second_factor
from {{ cookiecutter.package_name }}.auth.accounts import Token, User, issue_token, user_for_token
from {{ cookiecutter.package_name }}.auth.api import CODE_NEEDED, WRONG_CODE
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform.timestamps import utc_now
from tests.auth.test_api import EMAIL, PASSWORD, add_user, sign_in


def with_factor(app) -> tuple[str, list[str]]:
    """Store EMAIL's user with its second factor on, turned on a minute ago (that step's code
    is taken); return the secret and the recovery codes."""
    user_id = add_user(app)
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        secret = second_factor.start(user)
        earlier = utc_now() - timedelta(minutes=2)
        codes = second_factor.enable(user, pyotp.TOTP(secret).at(earlier), earlier)
        assert codes is not None
        return secret, codes


def current(secret: str) -> str:
    """Return the code the authenticator app shows now."""
    return pyotp.TOTP(secret).now()


def tokens(app) -> int:
    """Return how many tokens are stored."""
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Token)) or 0)


def with_code(client, code, password=PASSWORD, **kwargs):
    """POST EMAIL, ``password`` and ``code`` to the token endpoint; return the answer."""
    body = {"email": EMAIL, "password": password, "code": code}
    return client.post("/api/auth/tokens", json=body, **kwargs)


def test_a_right_password_alone_gets_no_token_but_the_question(client):
    """It answers 401 saying a code is needed, and stores no token."""
    with_factor(client.application)
    answer = sign_in(client)
    assert answer.status_code == 401
    assert answer.json["error"]["detail"] == CODE_NEEDED
    assert tokens(client.application) == 0
    wrong = sign_in(client, password="wrong password")
    assert wrong.status_code == 401 and wrong.json["error"]["detail"] != CODE_NEEDED


def test_a_current_code_gets_a_token_once(client):
    """The password with the current code gets a token; the same code again is refused."""
    secret, _ = with_factor(client.application)
    code = current(secret)
    answer = with_code(client, code)
    assert answer.status_code == 201, answer.json
    assert user_for_token_of(client.application, answer.json["token"])
    again = with_code(client, code)
    assert again.status_code == 401
    assert again.json["error"]["detail"] == WRONG_CODE
    assert tokens(client.application) == 1


def user_for_token_of(app, token: str) -> bool:
    """Say whether ``token`` is live."""
    with app.app_context():
        return user_for_token(token) is not None


def test_a_code_with_a_wrong_password_gets_nothing(client):
    """A current code does not stand in for the password."""
    secret, _ = with_factor(client.application)
    answer = with_code(client, current(secret), password="wrong password")
    assert answer.status_code == 401
    assert tokens(client.application) == 0


def test_a_recovery_code_gets_a_token_once_and_ends_the_other_tokens(client):
    """A recovery code stands in for the app's code once; the account's other tokens end."""
    _, codes = with_factor(client.application)
    app = client.application
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        other, _ = issue_token(user, timedelta(hours=1))
    answer = with_code(client, codes[0])
    assert answer.status_code == 201, answer.json
    assert not user_for_token_of(app, other)
    assert user_for_token_of(app, answer.json["token"])
    assert with_code(client, codes[0]).status_code == 401


def test_an_account_without_a_factor_signs_in_whatever_code_is_sent(client):
    """``code`` is read only when the account's factor is on."""
    add_user(client.application)
    assert with_code(client, "123456").status_code == 201


def test_wrong_codes_count_per_account_and_a_right_password_clears_nothing(limited_client):
    """With the right password, each wrong code (and each post without one) counts as a failed
    check: past RATELIMIT_SIGN_IN_ACCOUNT the account gets 429, even with its right code."""
    client = limited_client(ratelimit_sign_in_account="3 per minute")
    secret, _ = with_factor(client.application)
    right = current(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for address in ("192.0.2.1", "192.0.2.2"):
        answer = with_code(client, wrong, environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 401
    assert sign_in(client, environ_base={"REMOTE_ADDR": "192.0.2.3"}).status_code == 401
    refused = with_code(client, right, environ_base={"REMOTE_ADDR": "192.0.2.4"})
    assert refused.status_code == 429
    assert tokens(client.application) == 0


def test_a_right_code_clears_the_accounts_count(limited_client):
    """A sign-in that passes both checks clears the failures counted before it."""
    client = limited_client(ratelimit_sign_in_account="2 per minute")
    secret, _ = with_factor(client.application)
    assert sign_in(client).status_code == 401  # counted: no code yet
    assert with_code(client, current(secret)).status_code == 201
    assert sign_in(client).status_code == 401
    assert sign_in(client).status_code == 401
    assert sign_in(client).status_code == 429
