"""The sign-up pages (AUTH_SIGN_UP): the sign-in form links to them only when sign-up is on;
signing up asks for the address only and answers one page whether or not it is taken (mail only
for a free one); the mail's link opens a page, kept out of referrers and caches, where the
password is chosen and a button creates the account, once, then sends the browser to sign in,
saying so;
no account exists before; forms keep their CSRF check; with mail off the page says so.
"""

import html

from {{ cookiecutter.package_name }}.auth import sign_up
from {{ cookiecutter.package_name }}.auth.accounts import user_by_email
from tests.auth.test_api import EMAIL, PASSWORD, add_user
from tests.auth.test_pages import form_token
from tests.auth.test_recovery_pages import assert_says_once_with_the_address
from tests.auth.test_sign_up import NEW, THEIRS, add_unverified

SIGN_UP = {"auth_sign_up": True}


def sign_up_by_form(client, email=NEW):
    """Open the sign-up form and post it; return the answer."""
    token = form_token(client.get("/sign-up").text)
    return client.post("/sign-up", data={"email": email, "csrf_token": token})


def confirm_by_link(client, token, password=PASSWORD):
    """Open the mail's link, choose ``password`` and press its button; return the answer."""
    page = client.get(f"/verify-email?token={token}").text
    assert f'value="{html.escape(token)}"' in page
    data = {"token": token, "password": password, "csrf_token": form_token(page)}
    return client.post("/verify-email", data=data)


def sign_in_by_form(client, email=NEW, password=PASSWORD):
    """Post the sign-in form; return the answer."""
    token = form_token(client.get("/sign-in").text)
    data = {"email": email, "password": password, "csrf_token": token}
    return client.post("/sign-in", data=data)


def test_the_sign_in_form_links_to_sign_up_only_when_it_is_on(mail_app):
    """It offers "Sign up" on the sign-in form with AUTH_SIGN_UP, and no page without it."""
    assert 'href="/sign-up"' in mail_app(**SIGN_UP).test_client().get("/sign-in").text
    closed = mail_app().test_client()
    assert 'href="/sign-up"' not in closed.get("/sign-in").text
    assert closed.get("/sign-up").status_code == closed.get("/verify-email").status_code == 404


def test_signing_up_answers_one_page_and_mails_only_a_free_address(mail_app):
    """It answers 200 with the same sentence for a free and a taken address; mails the free."""
    app = mail_app(**SIGN_UP)
    add_user(app)
    client = app.test_client()
    free, taken = sign_up_by_form(client), sign_up_by_form(client, EMAIL)
    assert free.status_code == taken.status_code == 200
    sentence = html.escape(sign_up.ON_ITS_WAY)
    assert sentence in free.text and sentence in taken.text
    assert [sent["To"] for sent in app.outbox] == [NEW]


def test_the_link_confirms_once_and_then_the_account_signs_in(mail_app):
    """It has no account before the link (the sign-in form refuses the password); the link's
    page with a chosen password creates it (303 to sign-in, which says so once with the address
    typed in), a second press is refused (422, with a link to a new one), also with another
    password; then the chosen password signs in."""
    app = mail_app(**SIGN_UP)
    client = app.test_client()
    sign_up_by_form(client)
    assert sign_in_by_form(client).status_code == 422
    token = app.outbox.token()
    confirmed = confirm_by_link(client, token)
    assert confirmed.status_code == 303 and confirmed.location.endswith("/sign-in")
    assert_says_once_with_the_address(client, "Your address is confirmed", NEW)
    spent = confirm_by_link(client, token, "another password")
    assert spent.status_code == 422 and 'id="new-link" href="/verification"' in spent.text
    assert sign_in_by_form(client, password="another password").status_code == 422
    assert sign_in_by_form(client).status_code == 303


def test_the_links_page_is_kept_out_of_referrers_and_caches(mail_app):
    """It answers the link's page, and the answer to its form, with Referrer-Policy:
    no-referrer and Cache-Control: no-store: the token in its address reaches no other site
    and no cache."""
    app = mail_app(**SIGN_UP)
    client = app.test_client()
    sign_up_by_form(client)
    token = app.outbox.token()
    answers = [
        client.get(f"/verify-email?token={token}"),
        confirm_by_link(client, token, "short"),
        confirm_by_link(client, token),
    ]
    for answer in answers:
        assert answer.headers["Referrer-Policy"] == "no-referrer", answer.status_code
        assert answer.headers["Cache-Control"] == "no-store", answer.status_code


def test_a_bad_password_or_address_is_refused_clearly(mail_app):
    """It answers 422 with the reason for a short password at the link, or a malformed
    address at sign-up, and mails nothing to the malformed address."""
    app = mail_app(**SIGN_UP)
    client = app.test_client()
    refused = sign_up_by_form(client, email="a@evil.example,victim@example.com")
    assert refused.status_code == 422 and "Check the form" in refused.text
    assert app.outbox.jobs == []
    sign_up_by_form(client)
    short = confirm_by_link(client, app.outbox.token(), "short")
    assert short.status_code == 422 and "8 to 1024 characters" in short.text


def test_an_address_too_long_is_refused_whole_not_cut_to_another(mail_app):
    """It refuses (422) an address one character past the longest, whose first 254 characters
    are an address: cut to the field's length, it would mail one the visitor never typed."""
    longest = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    assert len(longest) == 254
    app = mail_app(**SIGN_UP)
    answer = sign_up_by_form(app.test_client(), longest + "e")
    assert answer.status_code == 422 and "Check the form" in answer.text
    assert app.outbox.jobs == []
    assert sign_up_by_form(app.test_client(), longest).status_code == 200


def test_an_unconfirmed_account_is_sent_to_a_page_that_mails_a_new_link(mail_app):
    """It answers a right password of an unconfirmed account 403 on the sign-in form, in words
    naming no API, with a link to "Send a new link"; that page mails one, as a sign-up does,
    whose page confirms the address with a password chosen there."""
    app = mail_app(**SIGN_UP)
    add_unverified(app)
    client = app.test_client()
    refused = sign_in_by_form(client, password=THEIRS)
    assert refused.status_code == 403 and "/api/" not in refused.text
    words = "Confirm your address first: open the link mailed to it."
    assert f'{words} <a id="new-link" href="/verification">Send a new link</a>' in refused.text
    page = client.get("/verification").text
    assert "<h1>Send a new link</h1>" in page and 'action="/verification"' in page
    answer = client.post("/verification", data={"email": NEW, "csrf_token": form_token(page)})
    assert answer.status_code == 200 and html.escape(sign_up.ON_ITS_WAY) in answer.text
    assert [sent["To"] for sent in app.outbox] == [NEW]
    assert confirm_by_link(client, app.outbox.token()).status_code == 303
    assert sign_in_by_form(client).status_code == 303


def test_without_sign_up_an_unconfirmed_account_is_told_a_reset_confirms_it(mail_app):
    """It offers no new-link page with AUTH_SIGN_UP off (404), and its sign-in form says a new
    password confirms the address (a reset does)."""
    app = mail_app()
    add_unverified(app)
    client = app.test_client()
    refused = sign_in_by_form(client, password=THEIRS)
    assert refused.status_code == 403 and 'id="new-link"' not in refused.text
    assert 'A new password, by "Forgot your password?", confirms it too.' in refused.text
    assert client.get("/verification").status_code == 404


def test_the_forms_keep_their_csrf_check(mail_app):
    """It refuses a sign-up, a new link or a confirmation posted without the form's CSRF
    token."""
    client = mail_app(**SIGN_UP).test_client()
    assert client.post("/sign-up", data={"email": NEW}).status_code == 400
    assert client.post("/verification", data={"email": NEW}).status_code == 400
    data = {"token": "t", "password": PASSWORD}
    assert client.post("/verify-email", data=data).status_code == 400


def test_with_mail_off_the_page_says_so(make_app):
    """It answers 503 with the sentence naming MAIL_URL, and stores no account."""
    app = make_app(**SIGN_UP)
    answer = sign_up_by_form(app.test_client())
    assert answer.status_code == 503 and "MAIL_URL is unset" in answer.text
    with app.app_context():
        assert user_by_email(NEW) is None
