"""Password reset by mail: one answer whether or not an address has an account (mail only to a
real one); an address that is not one plain address is refused, stored or not; the link's token
sets the password once, within its lifetime, also against a request at the same moment, and dies
when the password or the sessions change; the new password ends every token and session of the
account and confirms its address; requests are limited per address asked about, known or not;
with mail off, a 503 says so; the answers match the OpenAPI document.
"""

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from {{ cookiecutter.package_name }}.auth import recovery
from {{ cookiecutter.package_name }}.auth.accounts import User, hasher, user_for_token
from {{ cookiecutter.package_name }}.extensions import db
from tests.auth.test_api import EMAIL, add_user, sign_in, token_of
from tests.auth.test_sign_up import REFUSED
from tests.conftest import SECRET
from tests.platform.test_mail import part
from tests.platform.test_openapi import assert_conforms, document

NEW_PASSWORD = "a new and better password"
REQUEST, SET = "/api/auth/password-reset", "/api/auth/password"


def reset(client, email=EMAIL):
    """Ask for a password reset of ``email``; return the answer."""
    return client.post(REQUEST, json={"email": email})


def set_password(client, token, password=NEW_PASSWORD):
    """Set a new password with ``token``; return the answer."""
    return client.post(SET, json={"token": token, "password": password})


def test_known_and_unknown_addresses_get_the_same_answer_and_only_a_real_one_gets_mail(mail_app):
    """It answers 202 with one body for an account, an unknown address and a deactivated
    account, and mails only the account, with a link to PUBLIC_URL and the templates' parts."""
    app = mail_app()
    add_user(app)
    add_user(app, "off@example.com", active=False)
    client = app.test_client()
    answers = [reset(client, email) for email in (EMAIL, "nobody@example.com", "off@example.com")]
    assert {(a.status_code, a.get_data()) for a in answers} == {(202, answers[0].get_data())}
    assert [job for job, _ in app.outbox.jobs] == ["password_reset"] * 3  # handed over alike
    [sent] = app.outbox
    assert app.outbox.recipients == [EMAIL]
    assert sent["To"] == EMAIL and sent["Subject"] == recovery.SUBJECT
    assert "https://app.example.com/reset-password?token=" in part(sent, "html")


def test_the_link_names_public_url_whatever_host_the_request_named(mail_app):
    """It builds the mail's link on PUBLIC_URL, never on the request's Host (a forged Host
    would otherwise send the victim's token to another site)."""
    app = mail_app()
    add_user(app)
    app.test_client().post(REQUEST, json={"email": EMAIL}, base_url="https://evil.example")
    assert "evil.example" not in part(app.outbox[-1], "plain")
    assert app.outbox.token()


def test_the_link_sets_the_password_and_ends_every_token_and_session(mail_app):
    """It sets the password with the mailed token (204), after which the old password and the
    account's old API tokens are refused and its login generation (its sessions) moved on."""
    app = mail_app()
    user_id = add_user(app)
    client = app.test_client()
    old_token = token_of(client)
    reset(client)
    assert set_password(client, app.outbox.token()).status_code == 204
    assert sign_in(client).status_code == 401
    assert sign_in(client, password=NEW_PASSWORD).status_code == 201
    with app.app_context():
        assert user_for_token(old_token) is None
        user = db.session.get(User, user_id)
        assert user is not None and user.login_generation == 1


def test_a_link_works_once(mail_app):
    """It refuses a token already used (403 naming the token), the password set once."""
    app = mail_app()
    add_user(app)
    client = app.test_client()
    reset(client)
    token = app.outbox.token()
    assert set_password(client, token).status_code == 204
    again = set_password(client, token, password="yet another password")
    assert again.status_code == 403
    assert again.json["error"]["detail"] == [{"field": "token", "message": recovery.BAD_TOKEN}]
    assert sign_in(client, password=NEW_PASSWORD).status_code == 201


def test_a_link_dies_when_the_password_changes_another_way(mail_app):
    """It refuses a token once the account's password changed (`flask users password`)."""
    app = mail_app()
    add_user(app)
    client = app.test_client()
    reset(client)
    operator = app.test_cli_runner()
    result = operator.invoke(args=["users", "password", EMAIL], input="changed-by-operator\n")
    assert result.exit_code == 0, result.output
    assert set_password(client, app.outbox.token()).status_code == 403
    assert sign_in(client, password="changed-by-operator").status_code == 201


def test_a_link_expires(mail_app, monkeypatch):
    """It refuses a token older than AUTH_RESET_LIFETIME, and takes one just younger."""
    app = mail_app(auth_reset_lifetime=300)
    add_user(app)
    client = app.test_client()
    for age, status in ((301, 403), (295, 204)):
        made_ago = lambda self, age=age: int(time.time()) - age  # noqa: E731
        monkeypatch.setattr(TimestampSigner, "get_timestamp", made_ago)
        reset(client)
        monkeypatch.undo()
        assert set_password(client, app.outbox.token()).status_code == status


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token",
        URLSafeTimedSerializer("another-secret-of-good-length", "password-reset").dumps([1, "x"]),
        URLSafeTimedSerializer("another-secret-of-good-length", "password-reset").dumps(
            [1, "x", "n"]
        ),
        URLSafeTimedSerializer(SECRET, salt="another-purpose").dumps([1, "x", "n"]),
        URLSafeTimedSerializer(SECRET, salt="password-reset").dumps([1, "x"]),
    ],
    ids=["empty", "garbage", "another key", "another key, new shape", "another salt", "old shape"],
)
def test_a_forged_or_foreign_token_is_refused(mail_app, token):
    """It refuses a token it did not sign for resets (another key, another salt), with a 403."""
    app = mail_app()
    add_user(app)
    assert set_password(app.test_client(), token).status_code == 403


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (REQUEST, [], 400),
        (REQUEST, {"email": 1}, 422),
        (REQUEST, {"email": "x" * 255}, 422),
        (REQUEST, {"email": EMAIL, "more": 1}, 422),
        (SET, {"token": "t", "password": "short"}, 422),
        (SET, {"token": "t"}, 422),
        (SET, {"token": "t" * 513, "password": NEW_PASSWORD}, 422),
    ],
)
def test_bad_bodies_are_refused_clearly(mail_app, path, body, status):
    """It refuses a body that is not the operation's object with a JSON 400 or 422."""
    answer = mail_app().test_client().post(path, json=body)
    assert answer.status_code == status and answer.json["error"]["status"] == status


@pytest.mark.parametrize("address", REFUSED)
def test_an_address_that_is_not_one_plain_address_is_refused(mail_app, address):
    """It answers 422 naming the email field, and hands no mail over, for anything but one
    plain address, even one an older version stored for an account."""
    app = mail_app()
    if len(address) <= 254:
        add_user(app, address)
    answer = reset(app.test_client(), address)
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["detail"][0]["field"] == "email"
    assert app.outbox.jobs == []


def test_two_links_asked_for_in_one_second_differ(mail_app):
    """It makes each link's token with random bits: two resets at once get two tokens."""
    app = mail_app()
    add_user(app)
    client = app.test_client()
    reset(client)
    first = app.outbox.token()
    reset(client)
    assert app.outbox.token() != first


def test_a_link_is_spent_by_one_request_of_two_at_once(mail_app, monkeypatch):
    """It stores a new password only while the account is still in the state the token was
    made in, checked by the update itself: a request that read the account before another
    spent the token is refused (403), and the first password stays."""
    app = mail_app()
    add_user(app)
    client = app.test_client()
    reset(client)
    token = app.outbox.token()
    with app.app_context():
        seen = recovery.user_for_reset(token)
        assert seen is not None
        before = User(
            id=seen.id,
            password_hash=seen.password_hash,
            login_generation=seen.login_generation,
            is_active=True,
        )
    assert set_password(client, token).status_code == 204
    monkeypatch.setattr(recovery, "user_for_reset", lambda token: before)
    assert set_password(client, token, "the other request's password").status_code == 403
    assert sign_in(client, password=NEW_PASSWORD).status_code == 201


def test_a_reset_confirms_the_address_it_reached(mail_app):
    """It marks an unverified account's address confirmed when its mailed link sets the
    password: the account signs in."""
    app = mail_app()
    with app.app_context():
        db.session.add(User(email=EMAIL, password_hash=hasher.hash("an older password")))
        db.session.commit()
    client = app.test_client()
    reset(client)
    assert set_password(client, app.outbox.token()).status_code == 204
    assert sign_in(client, password=NEW_PASSWORD).status_code == 201


def test_mails_per_address_are_limited_alike_for_known_and_unknown(mail_app, limited_app):
    """It answers 429 once RATELIMIT_MAIL_ACCOUNT is spent for an address, known or not (so
    the limit tells nothing about accounts), and mails no more to it."""
    app = mail_app(limited_app, ratelimit_mail_account="2 per hour", ratelimit_sign_in="50/minute")
    add_user(app)
    client = app.test_client()
    for email in (EMAIL, "nobody@example.com"):
        answers = [reset(client, email).status_code for _ in range(3)]
        assert answers == [202, 202, 429], (email, answers)
    assert len(app.outbox) == 2


def test_with_mail_off_a_reset_answers_503_saying_so(make_app):
    """It answers 503 naming MAIL_URL to every request, rather than pretending to send."""
    app = make_app()
    add_user(app)
    answer = reset(app.test_client())
    assert answer.status_code == 503
    assert "MAIL_URL is unset" in answer.json["error"]["detail"]


def test_the_answers_match_the_document(mail_app, monkeypatch):
    """It answers both operations (202, 204, 400, 403, 422, 503) as the document says."""
    app = mail_app()
    add_user(app)
    client = app.test_client()
    doc = document(client)
    assert_conforms(doc, REQUEST, "post", reset(client))
    assert_conforms(doc, REQUEST, "post", client.post(REQUEST, json=[]))
    assert_conforms(doc, SET, "post", set_password(client, "bad"))
    assert "204" in doc["paths"][SET]["post"]["responses"]
    assert set_password(client, app.outbox.token()).status_code == 204
    monkeypatch.setattr(app.extensions["settings"], "mail_url", None)
    assert_conforms(doc, REQUEST, "post", reset(client))
