"""Sign-up by mail (AUTH_SIGN_UP): off by default; one answer whether or not an address is
taken (mail only for a free one); the account is unverified, refused a token (403, only after
a correct password) until the mailed link's token confirms it; the token works once, within its
lifetime, and dies when the address, password or sessions change; mails per address are
limited; with mail off, a 503 says so; the answers match the OpenAPI document.
"""

import contextlib
import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from {{ cookiecutter.package_name }}.auth import sign_in_limits, sign_up
from {{ cookiecutter.package_name }}.auth.accounts import User, user_by_email
from {{ cookiecutter.package_name }}.extensions import db
from tests.auth.test_api import EMAIL, PASSWORD, add_user, sign_in
from tests.conftest import SECRET
from tests.platform.test_mail import part
from tests.platform.test_openapi import assert_conforms, document

NEW = "new@example.com"
SIGN_UP, VERIFY, RESEND = "/api/auth/sign-up", "/api/auth/verify", "/api/auth/verification"


def sign_up_as(client, email=NEW, password=PASSWORD):
    """Sign up with ``email`` and ``password``; return the answer."""
    return client.post(SIGN_UP, json={"email": email, "password": password})


def verify(client, token):
    """Confirm an address with ``token``; return the answer."""
    return client.post(VERIFY, json={"token": token})


@contextlib.contextmanager
def signed_up(app, email=NEW):
    """Sign up ``email`` on ``app``; yield its stored user, in an app context."""
    sign_up_as(app.test_client(), email)
    with app.app_context():
        user = user_by_email(email)
        assert user is not None
        yield user


@pytest.fixture
def open_app(mail_app):
    """Return a function building an app that sends mail to its outbox, with sign-up on."""
    return lambda *factory, **overrides: mail_app(*factory, auth_sign_up=True, **overrides)


def test_sign_up_is_off_by_default(mail_app):
    """It answers 404 to every sign-up route unless AUTH_SIGN_UP is on, and documents none."""
    client = mail_app().test_client()
    assert sign_up_as(client).status_code == 404
    assert verify(client, "t").status_code == 404
    assert client.post(RESEND, json={"email": NEW}).status_code == 404
    assert SIGN_UP not in document(client)["paths"]


def test_taken_and_free_addresses_get_the_same_answer_and_only_a_free_one_gets_mail(open_app):
    """It answers 202 with one body for a free address and a taken one (in any of its
    forms), mails a link to PUBLIC_URL to the free one only, and leaves the taken account's
    password as it was."""
    app = open_app()
    add_user(app)
    client = app.test_client()
    answers = [sign_up_as(client, NEW), sign_up_as(client, " Ada@Example.com", "other password")]
    assert {(a.status_code, a.get_data()) for a in answers} == {(202, answers[0].get_data())}
    [sent] = app.outbox
    assert sent["To"] == NEW and sent["Subject"] == sign_up.SUBJECT
    assert "https://app.example.com/verify-email?token=" in part(sent, "html")
    assert sign_in(client).status_code == 201  # the taken account's password is unchanged


def test_an_unverified_account_gets_no_token_until_the_link_confirms_it(open_app):
    """It answers a correct password of an unverified account with a 403 asking to confirm
    the address, a wrong one with the usual 401; after the link (204), a token (201)."""
    app = open_app()
    client = app.test_client()
    sign_up_as(client)
    refused = sign_in(client, NEW)
    assert refused.status_code == 403
    assert refused.json["error"]["detail"] == sign_in_limits.UNVERIFIED
    assert sign_in(client, NEW, "a wrong password").status_code == 401
    assert verify(client, app.outbox.token()).status_code == 204
    assert sign_in(client, NEW).status_code == 201


def test_a_link_works_once(open_app):
    """It refuses a token already used, with a 403 naming the token."""
    app = open_app()
    client = app.test_client()
    sign_up_as(client)
    token = app.outbox.token()
    assert verify(client, token).status_code == 204
    again = verify(client, token)
    assert again.status_code == 403
    assert again.json["error"]["detail"][0]["field"] == "token"


@pytest.mark.parametrize("change", ["email", "password_hash", "login_generation"])
def test_a_link_dies_when_the_address_password_or_sessions_change(open_app, change):
    """It refuses a token once the account's address, password or login generation changed."""
    app = open_app()
    client = app.test_client()
    with signed_up(app) as user:
        setattr(user, change, {"email": "moved@example.com", "password_hash": "x"}.get(change, 1))
        db.session.commit()
    assert verify(client, app.outbox.token()).status_code == 403


def test_a_link_expires(open_app, monkeypatch):
    """It refuses a token older than AUTH_VERIFY_LIFETIME, and takes one just younger."""
    app = open_app(auth_verify_lifetime=300)
    client = app.test_client()
    for age, status, email in ((301, 403, "a@example.com"), (295, 204, "b@example.com")):
        made_ago = lambda self, age=age: int(time.time()) - age  # noqa: E731
        monkeypatch.setattr(TimestampSigner, "get_timestamp", made_ago)
        sign_up_as(client, email)
        monkeypatch.undo()
        assert verify(client, app.outbox.token()).status_code == status


@pytest.mark.parametrize(
    ("secret", "salt"),
    [(SECRET, "password-reset"), ("another-secret-of-good-length", "email-verification")],
)
def test_a_forged_or_foreign_token_is_refused(open_app, secret, salt):
    """It refuses, with a 403, a token of the right account and state signed with another key
    or for another purpose (a reset), and tokens that are none; the same signed with its own
    key and salt confirms the address."""
    app = open_app()
    client = app.test_client()
    with signed_up(app) as user:
        payload = [user.id, sign_up.state(user)]
    for token in ("", "not a token", URLSafeTimedSerializer(secret, salt=salt).dumps(payload)):
        assert verify(client, token).status_code == 403
    own = URLSafeTimedSerializer(SECRET, salt="email-verification").dumps(payload)
    assert verify(client, own).status_code == 204


def test_a_new_link_is_mailed_to_an_unverified_account_only(open_app):
    """It answers 202 alike for an unverified account, a verified one and an unknown address,
    and mails a new link to the unverified one only; that link confirms it."""
    app = open_app()
    add_user(app)
    client = app.test_client()
    sign_up_as(client)
    answers = [client.post(RESEND, json={"email": e}) for e in (NEW, EMAIL, "nobody@example.com")]
    assert {(a.status_code, a.get_data()) for a in answers} == {(202, answers[0].get_data())}
    assert [sent["To"] for sent in app.outbox] == [NEW, NEW]
    assert verify(client, app.outbox.token()).status_code == 204


def test_mails_per_address_are_limited_alike_for_taken_and_free(open_app, limited_app):
    """It answers 429 once RATELIMIT_MAIL_ACCOUNT is spent for an address, by sign-ups and new
    links together, taken or free alike, and mails no more to it."""
    app = open_app(limited_app, ratelimit_mail_account="2 per hour", ratelimit_sign_in="50/minute")
    add_user(app)
    client = app.test_client()
    for email in (EMAIL, NEW):
        answers = [sign_up_as(client, email).status_code]
        answers += [client.post(RESEND, json={"email": email}).status_code for _ in range(2)]
        assert answers == [202, 202, 429], (email, answers)
    assert len(app.outbox) == 2


def test_with_mail_off_sign_up_answers_503_saying_so(make_app):
    """It answers 503 naming MAIL_URL, and stores no account."""
    app = make_app(auth_sign_up=True)
    answer = sign_up_as(app.test_client())
    assert answer.status_code == 503
    assert "MAIL_URL is unset" in answer.json["error"]["detail"]
    with app.app_context():
        assert db.session.query(User).count() == 0


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (SIGN_UP, [], 400),
        (SIGN_UP, {"email": NEW, "password": "short"}, 422),
        (SIGN_UP, {"email": "not an address", "password": PASSWORD}, 422),
        (SIGN_UP, {"email": NEW, "password": PASSWORD, "more": 1}, 422),
        (VERIFY, {"token": "t" * 513}, 422),
        (RESEND, {"email": 1}, 422),
    ],
)
def test_bad_bodies_are_refused_clearly(open_app, path, body, status):
    """It refuses a body that is not the operation's object with a JSON 400 or 422."""
    answer = open_app().test_client().post(path, json=body)
    assert answer.status_code == status and answer.json["error"]["status"] == status


def test_the_answers_match_the_document(open_app):
    """It answers the three operations (202, 204, 400, 403, 422) as the document says."""
    app = open_app()
    client = app.test_client()
    doc = document(client)
    assert_conforms(doc, SIGN_UP, "post", sign_up_as(client))
    assert_conforms(doc, SIGN_UP, "post", client.post(SIGN_UP, json=[]))
    assert_conforms(doc, RESEND, "post", client.post(RESEND, json={"email": NEW}))
    assert_conforms(doc, VERIFY, "post", verify(client, "bad"))
    assert "204" in doc["paths"][VERIFY]["post"]["responses"]
