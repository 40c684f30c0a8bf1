"""Sign-up by mail (AUTH_SIGN_UP): off by default; an address is one plain addr-spec, refused
with 422 otherwise, and its mail goes to exactly itself; one answer whether or not an address is
taken (mail only for a free or unverified one); no account exists until the mailed link's token
and a password create it, verified; a password chosen before the address's owner confirmed never
survives it; the token works once, within its lifetime; mails per address are limited; with mail
off, a 503 says so; the answers match the OpenAPI document.
"""

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from {{ cookiecutter.package_name }}.auth import sign_in_limits, sign_up
from {{ cookiecutter.package_name }}.auth.accounts import User, hasher, user_by_email
from {{ cookiecutter.package_name }}.auth.audit import AuditEvent
from {{ cookiecutter.package_name }}.extensions import db
from tests.auth.test_api import EMAIL, PASSWORD, add_user, sign_in
from tests.conftest import SECRET
from tests.platform.test_mail import part
from tests.platform.test_openapi import assert_conforms, document

NEW = "new@example.com"
SIGN_UP, VERIFY, RESEND = "/api/auth/sign-up", "/api/auth/verify", "/api/auth/verification"
THEIRS = "the attacker's password"
# Addresses that carry other recipients, a display name, a route, a list, a header, or what
# mail servers do not take: each is refused before anything is stored or sent.
REFUSED = [
    "x<attacker@evil.example>@bank.example",
    "a@evil.example,victim@example.com",
    "a@evil.example victim@example.com",
    "Victim <victim@example.com>",
    "victim@example.com\r\nBcc: attacker@evil.example",
    "victim@example.com\nattacker@evil.example",
    '"attacker@evil.example"@bank.example',
    "owner@example.com.",
    "owner@.example.com",
    "owner@example",
    "@example.com",
    "owner@[127.0.0.1]",
    "üser@example.com",  # a non-ASCII local part needs SMTPUTF8 of every server on its way
    "a(comment)@example.com",
    "a@b@example.com",
    "a" * 65 + "@example.com",
]
# An address as typed -> the one form stored and mailed (the domain IDNA-encoded).
ACCEPTED = {
    " Owner@Example.COM ": "owner@example.com",
    "a.b+tag@sub.example.org": "a.b+tag@sub.example.org",
    "ada@bücher.example": "ada@xn--bcher-kva.example",
}


def sign_up_as(client, email=NEW):
    """Sign up with ``email``; return the answer."""
    return client.post(SIGN_UP, json={"email": email})


def verify(client, token, password=PASSWORD):
    """Confirm an address with ``token``, choosing ``password``; return the answer."""
    return client.post(VERIFY, json={"token": token, "password": password})


def add_unverified(app, email=NEW, password=THEIRS) -> None:
    """Store an unverified account with ``password``, as a sign-up of an older version did."""
    with app.app_context():
        db.session.add(User(email=email, password_hash=hasher.hash(password)))
        db.session.commit()


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


@pytest.mark.parametrize("path", [SIGN_UP, RESEND])
@pytest.mark.parametrize("address", REFUSED)
def test_an_address_that_is_not_one_plain_address_is_refused(open_app, path, address):
    """It answers 422 naming the email field, and hands no mail over, for anything but one
    plain address."""
    app = open_app()
    answer = app.test_client().post(path, json={"email": address})
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["detail"][0]["field"] == "email"
    assert app.outbox.jobs == []


@pytest.mark.parametrize(("typed", "stored"), ACCEPTED.items())
def test_an_address_is_mailed_exactly_itself_and_stored_in_one_form(open_app, typed, stored):
    """It mails one message whose envelope's one recipient and To header are the address's
    one form, and the link creates the account under that form."""
    app = open_app()
    client = app.test_client()
    assert sign_up_as(client, typed).status_code == 202
    assert app.outbox.recipients == [stored] and app.outbox[0]["To"] == stored
    assert verify(client, app.outbox.token()).status_code == 204
    with app.app_context():
        assert db.session.scalars(select(User.email)).all() == [stored]


def test_taken_and_free_addresses_get_the_same_answer_and_only_a_free_one_gets_mail(open_app):
    """It answers 202 with one body for a free address and a taken one (in any of its
    forms), hands both over alike, mails a link to PUBLIC_URL to the free one only, and
    leaves the taken account's password as it was."""
    app = open_app()
    add_user(app)
    client = app.test_client()
    answers = [sign_up_as(client, NEW), sign_up_as(client, " Ada@Example.com")]
    assert {(a.status_code, a.get_data()) for a in answers} == {(202, answers[0].get_data())}
    assert app.outbox.jobs == [("sign_up", NEW), ("sign_up", EMAIL)]
    [sent] = app.outbox
    assert sent["To"] == NEW and sent["Subject"] == sign_up.SUBJECT
    assert "https://app.example.com/verify-email?token=" in part(sent, "html")
    assert sign_in(client).status_code == 201  # the taken account's password is unchanged


def test_no_account_exists_until_the_link_and_a_password_create_it(open_app):
    """It stores nothing at sign-up (a sign-in is the unknown address's 401); the link with a
    password creates the account, verified: a token (201)."""
    app = open_app()
    client = app.test_client()
    sign_up_as(client)
    with app.app_context():
        assert user_by_email(NEW) is None
    assert sign_in(client, NEW).status_code == 401
    assert verify(client, app.outbox.token()).status_code == 204
    assert sign_in(client, NEW).status_code == 201


def test_a_password_chosen_before_the_owner_confirmed_never_survives(open_app, make_app):
    """It lets no one who signed up an address first hold its account: every link goes to the
    address, the owner's chosen password is the one that signs in, and a link of the other
    sign-up is then used. An unverified account of an older version loses its password too."""
    app = open_app()
    client = app.test_client()
    sign_up_as(client)  # the attacker's, first: its link reaches the owner only
    sign_up_as(client)  # the owner's
    assert app.outbox.recipients == [NEW, NEW]
    app.outbox.pop()  # the owner's own link: they open the one the attacker's sign-up mailed
    theirs = app.outbox.token()
    assert verify(client, theirs, PASSWORD).status_code == 204  # the owner opens a link
    assert verify(client, theirs, THEIRS).status_code == 403
    assert sign_in(client, NEW, THEIRS).status_code == 401
    assert sign_in(client, NEW, PASSWORD).status_code == 201

    older = open_app(make_app)  # on emptied tables again
    add_unverified(older)
    client = older.test_client()
    refused = sign_in(client, NEW, THEIRS)
    assert refused.status_code == 403
    assert refused.json["error"]["detail"] == sign_in_limits.UNVERIFIED
    sign_up_as(client)
    assert verify(client, older.outbox.token(), PASSWORD).status_code == 204
    assert sign_in(client, NEW, THEIRS).status_code == 401
    assert sign_in(client, NEW, PASSWORD).status_code == 201


def test_a_link_works_once(open_app):
    """It refuses a token already used, with a 403 naming the token, also with another
    password."""
    app = open_app()
    client = app.test_client()
    sign_up_as(client)
    token = app.outbox.token()
    assert verify(client, token).status_code == 204
    again = verify(client, token, "another password")
    assert again.status_code == 403
    assert again.json["error"]["detail"][0]["field"] == "token"
    assert sign_in(client, NEW).status_code == 201


def test_an_account_made_at_the_same_moment_uses_the_link(open_app, monkeypatch):
    """When another request creates the account between this one's look-up and its insert (one
    link sent twice at once), this one answers 403, never a 500, and writes no event."""
    app = open_app()
    client = app.test_client()
    sign_up_as(client)
    token = app.outbox.token()
    assert verify(client, token).status_code == 204
    monkeypatch.setattr(sign_up, "user_by_email", lambda address: None)  # looked up before it
    assert verify(client, token, "another password").status_code == 403
    with app.app_context():
        created = select(AuditEvent).where(AuditEvent.action == "user_created")
        assert len(db.session.scalars(created).all()) == 1


def test_two_links_asked_for_in_one_second_differ(open_app):
    """It makes each link's token with random bits: two sign-ups at once get two tokens."""
    app = open_app()
    client = app.test_client()
    sign_up_as(client)
    first = app.outbox.token()
    sign_up_as(client)
    assert app.outbox.token() != first


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
    [(SECRET, "password-reset"), ("another-secret-of-good-length", "sign-up")],
)
def test_a_forged_or_foreign_token_is_refused(open_app, secret, salt):
    """It refuses, with a 403, a token naming the address signed with another key or for
    another purpose (a reset), and tokens that are none; the same signed with its own key and
    salt creates the account."""
    app = open_app()
    client = app.test_client()
    payload = [NEW, "nonce"]
    for token in ("", "not a token", URLSafeTimedSerializer(secret, salt=salt).dumps(payload)):
        assert verify(client, token).status_code == 403
    own = URLSafeTimedSerializer(SECRET, salt="sign-up").dumps(payload)
    assert verify(client, own).status_code == 204


def test_a_new_link_is_mailed_to_a_free_or_unverified_address_only(open_app):
    """It answers 202 alike for an unverified account, a verified one and an unknown address,
    and mails a new link to all but the verified one; that link confirms the unverified one."""
    app = open_app()
    add_user(app)
    add_unverified(app)
    client = app.test_client()
    answers = [client.post(RESEND, json={"email": e}) for e in (NEW, EMAIL, "nobody@example.com")]
    assert {(a.status_code, a.get_data()) for a in answers} == {(202, answers[0].get_data())}
    assert app.outbox.recipients == [NEW, "nobody@example.com"]
    app.outbox.pop()
    assert verify(client, app.outbox.token()).status_code == 204
    assert sign_in(client, NEW).status_code == 201


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


def test_mails_to_one_inbox_are_limited_together_whatever_its_tags(open_app, limited_app):
    """It counts the +tags of an address (RFC 5233: most providers deliver them to one inbox)
    as the address itself: a third mail to victim, victim+a or victim+b is refused (429)."""
    app = open_app(limited_app, ratelimit_mail_account="2 per hour", ratelimit_sign_in="50/minute")
    client = app.test_client()
    tagged = ["victim@example.com", "victim+a@example.com", "Victim+b@Example.com"]
    assert [sign_up_as(client, email).status_code for email in tagged] == [202, 202, 429]
    assert app.outbox.recipients == ["victim@example.com", "victim+a@example.com"]


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
        (SIGN_UP, {"email": "not an address"}, 422),
        (SIGN_UP, {"email": NEW, "password": PASSWORD}, 422),  # chosen at the link, not here
        (VERIFY, {"token": "t" * 513, "password": PASSWORD}, 422),
        (VERIFY, {"token": "t"}, 422),
        (VERIFY, {"token": "t", "password": "short"}, 422),
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
    assert_conforms(doc, SIGN_UP, "post", sign_up_as(client, "a@b,c@d.example"))
    assert_conforms(doc, RESEND, "post", client.post(RESEND, json={"email": NEW}))
    assert_conforms(doc, VERIFY, "post", verify(client, "bad"))
    assert "204" in doc["paths"][VERIFY]["post"]["responses"]
