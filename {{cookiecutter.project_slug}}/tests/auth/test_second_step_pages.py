"""The second step of a page sign-in: after a right password, an account whose second factor is
on gets the code form, not a session; the code (or a recovery code) signs it in, in a new
session; the step expires, ends with the account's sessions, and is counted per account."""

import time

from sqlalchemy import update

from {{ cookiecutter.package_name }}.auth.accounts import User
from {{ cookiecutter.package_name }}.auth.pages import SECOND_STEP, STEP_ENDED, WRONG_CODE
from {{ cookiecutter.package_name }}.extensions import db
from tests.auth.test_api import EMAIL, PASSWORD
from tests.auth.test_cli import users
from tests.auth.test_pages import form_token, shows_the_form, sign_in
from tests.auth.test_second_step import current, with_factor


def post_code(client, code: str, **kwargs):
    """Open the code form and post ``code``; return the answer."""
    token = form_token(client.get("/sign-in/code").text)
    return client.post("/sign-in/code", data={"code": code, "csrf_token": token}, **kwargs)


def after_password(app):
    """Return a client that posted EMAIL's right password, and the factor's secret and codes."""
    secret, codes = with_factor(app)
    client = app.test_client()
    answer = sign_in(client, EMAIL, PASSWORD)
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/sign-in/code")
    return client, secret, codes


def test_a_right_password_leads_to_the_code_form_and_signs_nobody_in(app):
    """The session only names whose code comes next: the item form is not shown, and an item
    posted with the session's CSRF token is refused."""
    client, _, _ = after_password(app)
    page = client.get("/sign-in/code")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text
    assert not shows_the_form(client)
    token = form_token(page.text)  # the session's
    refused = client.post("/items", data={"name": "no", "csrf_token": token})
    assert refused.status_code in (303, 403)
    assert refused.status_code == 403 or refused.headers["Location"].endswith("/sign-in")


def test_the_code_signs_in_in_a_new_session(app):
    """The current code signs the account in; the second step's key is gone from the session."""
    client, secret, _ = after_password(app)
    answer = post_code(client, current(secret))
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/")
    assert shows_the_form(client)
    with client.session_transaction() as session:
        assert SECOND_STEP not in session


def test_a_wrong_code_shows_the_form_again_and_a_recovery_code_signs_in_once(app):
    """A wrong code gets 422 and the form with one sentence; a recovery code signs in, once."""
    client, secret, codes = after_password(app)
    wrong = f"{(int(current(secret)) + 1) % 1_000_000:06d}"
    answer = post_code(client, wrong)
    assert answer.status_code == 422 and WRONG_CODE in answer.text
    assert post_code(client, codes[0]).status_code == 303
    again = app.test_client()
    assert sign_in(again, EMAIL, PASSWORD).headers["Location"].endswith("/sign-in/code")
    assert post_code(again, codes[0]).status_code == 422
    assert not shows_the_form(again)


def expect_to_sign_in_again(client, answer) -> None:
    """Assert ``answer`` sends the browser to sign in again, saying why, and signs nobody in."""
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/sign-in")
    assert STEP_ENDED in client.get("/sign-in").text
    assert not shows_the_form(client)


def test_an_expired_step_sends_back_to_sign_in_and_signs_nobody_in(app):
    """Past STEP_SECONDS a current code signs nobody in; nor without a password first."""
    client, secret, _ = after_password(app)
    token = form_token(client.get("/sign-in/code").text)
    with client.session_transaction() as session:
        user_id, generation, _ = session[SECOND_STEP]
        session[SECOND_STEP] = [user_id, generation, time.time() - 1]
    posted = client.post("/sign-in/code", data={"code": current(secret), "csrf_token": token})
    expect_to_sign_in_again(client, posted)
    fresh = app.test_client()
    expect_to_sign_in_again(fresh, fresh.get("/sign-in/code"))


def test_a_new_password_ends_the_step(app):
    """A password changed between the two steps (the login generation) ends the step."""
    client, secret, _ = after_password(app)
    token = form_token(client.get("/sign-in/code").text)
    assert users(app, "password", EMAIL, password="another long password").exit_code == 0
    posted = client.post("/sign-in/code", data={"code": current(secret), "csrf_token": token})
    expect_to_sign_in_again(client, posted)


def test_an_unconfirmed_address_ends_the_step(app):
    """The code signs in only an account the password's check would let in: a confirmed one."""
    client, secret, _ = after_password(app)
    token = form_token(client.get("/sign-in/code").text)
    with app.app_context():
        db.session.execute(update(User).values(email_verified_at=None))
        db.session.commit()
    posted = client.post("/sign-in/code", data={"code": current(secret), "csrf_token": token})
    expect_to_sign_in_again(client, posted)


def test_codes_posted_on_the_page_count_per_account(limited_app):
    """The right password counts until its code passes, and each wrong code counts, from any
    address: past RATELIMIT_SIGN_IN_ACCOUNT even the right code gets 429."""
    app = limited_app(ratelimit_sign_in_account="3 per minute")
    client, secret, _ = after_password(app)
    right = current(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for address in ("192.0.2.1", "192.0.2.2"):
        answer = post_code(client, wrong, environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 422
    refused = post_code(client, right, environ_base={"REMOTE_ADDR": "192.0.2.3"})
    assert refused.status_code == 429
    assert not shows_the_form(client)
