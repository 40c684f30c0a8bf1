"""Setting the second factor up through the API (/api/auth/second-factor): a new secret, then on
with the password and a current code, answering recovery codes and a new token (every other
token ended); off with the password and a code or a recovery code; a new set of recovery codes
with the password and an app code. The password is asked again, and each check counts against
the account; the secret and the codes are never logged; the owner is mailed a notice."""

import time

import pyotp
import pytest

from {{ cookiecutter.package_name }}.auth.api import SECOND_FACTOR_FIRST
from tests.auth.test_api import EMAIL, PASSWORD, add_user, bearer, token_of
from tests.auth.test_second_step import with_code

BASE = "/api/auth/second-factor"


def code_at(secret: str, seconds: float = 0) -> str:
    """Return the code the authenticator app shows ``seconds`` from now (one step of drift is
    accepted: 30 s ahead is the next step's code, taken after the current one)."""
    return pyotp.TOTP(secret).at(time.time() + seconds)


def wrong_code(secret: str) -> str:
    """Return six digits that are none of the codes accepted now (one step either side)."""
    accepted = {code_at(secret, seconds) for seconds in (-30, 0, 30)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in accepted)


def started(client, token: str) -> str:
    """Start setting the factor up with ``token``; return the secret."""
    answer = client.post(BASE, headers=bearer(token))
    assert answer.status_code == 201, answer.json
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.json["secret"]


def turned_on(client, token: str) -> tuple[str, str, list[str]]:
    """Set the factor up and turn it on with ``token``; return the secret, the new token and
    the recovery codes."""
    secret = started(client, token)
    body = {"password": PASSWORD, "code": code_at(secret)}
    answer = client.post(f"{BASE}/enable", json=body, headers=bearer(token))
    assert answer.status_code == 201, answer.json
    return secret, answer.json["token"], answer.json["recovery_codes"]


def state(client, token: str) -> dict:
    """Return the factor's state the API answers ``token``'s user."""
    answer = client.get(BASE, headers=bearer(token))
    assert answer.status_code == 200, answer.json
    return answer.json


def test_turning_it_on_takes_a_current_code_and_ends_the_other_tokens(mail_app):
    """A new secret (and its otpauth URI) is off until the password and a current code turn it
    on; the answer holds ten recovery codes and a new token, the tokens before it end, the owner
    is mailed, and a password sign-in then asks for a code."""
    app = mail_app()
    client = app.test_client()
    add_user(app)
    token, other = token_of(client), token_of(client)
    assert state(client, token) == {"on": False, "being_set_up": False, "recovery_codes_left": 0}
    answer = client.post(BASE, headers=bearer(token))
    secret, uri = answer.json["secret"], answer.json["uri"]
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    scanned = pyotp.parse_uri(uri)  # as an authenticator app reads it
    assert isinstance(scanned, pyotp.TOTP) and scanned.now() == pyotp.TOTP(secret).now()
    assert state(client, token)["being_set_up"] is True
    assert (
        client.post("/api/auth/tokens", json={"email": EMAIL, "password": PASSWORD}).status_code
        == 201
    )
    body = {"password": PASSWORD, "code": code_at(secret)}
    on = client.post(f"{BASE}/enable", json=body, headers=bearer(token))
    assert on.status_code == 201, on.json
    assert on.headers["Cache-Control"] == "no-store"
    assert len(set(on.json["recovery_codes"])) == 10
    for ended in (token, other):
        assert client.get(BASE, headers=bearer(ended)).status_code == 401
    assert state(client, on.json["token"]) == {
        "on": True,
        "being_set_up": False,
        "recovery_codes_left": 10,
    }
    assert [job for job, _ in app.outbox.jobs] == ["second_factor_on"]
    assert "turned on" in app.outbox[-1]["Subject"] and app.outbox.recipients == [EMAIL]
    assert (
        client.post("/api/auth/tokens", json={"email": EMAIL, "password": PASSWORD}).status_code
        == 401
    )


@pytest.mark.parametrize(
    ("password", "code"),
    [("wrong password", "right"), (PASSWORD, "wrong"), (PASSWORD, "not a code")],
)
def test_turning_it_on_needs_the_password_and_a_code_of_the_new_secret(client, password, code):
    """A wrong password or code answers 403 and leaves it off; a wrong password takes no code:
    the same code turns it on with the password after."""
    add_user(client.application)
    token = token_of(client)
    secret = started(client, token)
    given = {"right": code_at(secret), "wrong": wrong_code(secret)}.get(code, code)
    body = {"password": password, "code": given}
    refused = client.post(f"{BASE}/enable", json=body, headers=bearer(token))
    assert refused.status_code == 403, refused.json
    assert refused.json["error"]["detail"] == "Wrong password or code."
    assert state(client, token)["on"] is False
    right = {"password": PASSWORD, "code": code_at(secret)}
    assert client.post(f"{BASE}/enable", json=right, headers=bearer(token)).status_code == 201


def test_each_change_asks_for_the_state_it_changes(client):
    """Enabling before a secret, or disabling and renewing codes while off, answer 409; so
    does starting or enabling while on."""
    add_user(client.application)
    token = token_of(client)
    body = {"password": PASSWORD, "code": "123456"}
    for path in ("/enable", "/disable", "/recovery-codes"):
        answer = client.post(f"{BASE}{path}", json=body, headers=bearer(token))
        assert answer.status_code == 409, (path, answer.json)
    _, token, _ = turned_on(client, token)
    for path in ("", "/enable"):
        answer = client.post(f"{BASE}{path}", json=body, headers=bearer(token))
        assert answer.status_code == 409, (path, answer.json)
    assert state(client, token)["on"] is True


def test_turning_it_off_takes_the_password_and_a_recovery_code(mail_app):
    """A recovery code (or a code) with the password turns it off and answers a new token, the
    others ended; the owner is mailed; a password alone signs in again."""
    app = mail_app()
    client = app.test_client()
    add_user(app)
    _, token, codes = turned_on(client, token_of(client))
    wrong = {"password": "wrong password", "code": codes[0]}
    assert client.post(f"{BASE}/disable", json=wrong, headers=bearer(token)).status_code == 403
    right = {"password": PASSWORD, "code": codes[0]}
    off = client.post(f"{BASE}/disable", json=right, headers=bearer(token))
    assert off.status_code == 200, off.json
    assert client.get(BASE, headers=bearer(token)).status_code == 401
    assert state(client, off.json["token"])["on"] is False
    jobs = [job for job, _ in app.outbox.jobs]
    assert jobs == ["second_factor_on", "recovery_code_used", "second_factor_off"]
    assert token_of(client)


def test_a_new_set_of_recovery_codes_ends_the_old_one(client):
    """The password and an app code make ten new codes; the old ones sign in no more, a new one
    does; a recovery code does not make a new set."""
    add_user(client.application)
    secret, token, old = turned_on(client, token_of(client))
    by_recovery = {"password": PASSWORD, "code": old[1]}
    answer = client.post(f"{BASE}/recovery-codes", json=by_recovery, headers=bearer(token))
    assert answer.status_code == 403
    body = {"password": PASSWORD, "code": code_at(secret, 30)}
    answer = client.post(f"{BASE}/recovery-codes", json=body, headers=bearer(token))
    assert answer.status_code == 201, answer.json
    new = answer.json["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert with_code(client, old[2]).status_code == 401
    assert with_code(client, new[0]).status_code == 201


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("post", ""),
        ("post", "/enable"),
        ("post", "/disable"),
        ("post", "/recovery-codes"),
    ],
)
def test_every_route_needs_a_token(client, method, path):
    """Without a bearer token each answers 401."""
    answer = getattr(client, method)(f"{BASE}{path}", json={"password": "x", "code": "1"})
    assert answer.status_code == 401


def test_password_and_code_checks_count_against_the_account(limited_client):
    """Wrong confirmations count under RATELIMIT_SIGN_IN_ACCOUNT: past it, a right one gets 429;
    in a count of their own, so the account still signs in (a stolen token cannot lock it)."""
    client = limited_client(
        ratelimit_sign_in_account="2 per minute", ratelimit_sign_in="100 per minute"
    )
    add_user(client.application)
    token = token_of(client)
    secret = started(client, token)
    for password in ("wrong password", "another wrong one"):
        body = {"password": password, "code": code_at(secret)}
        assert client.post(f"{BASE}/enable", json=body, headers=bearer(token)).status_code == 403
    right = {"password": PASSWORD, "code": code_at(secret)}
    assert client.post(f"{BASE}/enable", json=right, headers=bearer(token)).status_code == 429
    assert token_of(client)


def test_the_secret_and_the_codes_are_never_logged(client, caplog):
    """No log line holds the secret, its URI, a code or a recovery code."""
    add_user(client.application)
    with caplog.at_level("DEBUG"):
        secret, token, codes = turned_on(client, token_of(client))
        disable = {"password": PASSWORD, "code": codes[0]}
        assert (
            client.post(f"{BASE}/disable", json=disable, headers=bearer(token)).status_code == 200
        )
    logged = caplog.text
    for value in (secret, PASSWORD, *codes, *(c.replace("-", "") for c in codes)):
        assert value not in logged
    actions = [getattr(record, "action", None) for record in caplog.records]
    assert "second_factor_on" in actions and "second_factor_off" in actions


def test_a_required_factor_holds_a_token_back_until_it_is_on(make_app):
    """With AUTH_REQUIRE_SECOND_FACTOR, a token of an account without the factor gets 403 saying
    so on every other route (a write, a private read alike); the factor's own routes and the
    token's sign-out answer; once the factor is on, the new token gets the rest."""
    app = make_app(auth_require_second_factor=True, auth_private_reads=True)
    client = app.test_client()
    add_user(app)
    token, spare = token_of(client), token_of(client)
    item = {"name": "held back"}
    for refused in (
        client.post("/api/items", json=item, headers=bearer(token)),
        client.get("/api/items", headers=bearer(token)),
    ):
        assert refused.status_code == 403, refused.json
        assert refused.json["error"]["detail"] == SECOND_FACTOR_FIRST
    assert client.delete("/api/auth/tokens/current", headers=bearer(spare)).status_code == 204
    _, token, _ = turned_on(client, token)
    assert client.post("/api/items", json=item, headers=bearer(token)).status_code == 201
    assert client.get("/api/items", headers=bearer(token)).status_code == 200
