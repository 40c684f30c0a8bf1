"""The sign-up pages (AUTH_SIGN_UP): the sign-in form links to them only when sign-up is on;
signing up answers one page whether or not the address is taken (mail only for a free one);
the mail's link opens a page whose button confirms the address, once, then sends the browser
to sign in; an unverified account's correct password gets a 403 asking to confirm; forms keep
their CSRF check; with mail off the page says so.
"""

import html

from {{ cookiecutter.package_name }}.auth import sign_in_limits, sign_up
from {{ cookiecutter.package_name }}.auth.accounts import user_by_email
from tests.auth.test_api import EMAIL, PASSWORD, add_user
from tests.auth.test_pages import form_token
from tests.auth.test_sign_up import NEW

SIGN_UP = {"auth_sign_up": True}


def sign_up_by_form(client, email=NEW, password=PASSWORD):
    """Open the sign-up form and post it; return the answer."""
    token = form_token(client.get("/sign-up").text)
    return client.post("/sign-up", data={"email": email, "password": password, "csrf_token": token})


def confirm_by_link(client, token):
    """Open the mail's link and press its button; return the answer."""
    page = client.get(f"/verify-email?token={token}").text
    assert f'value="{html.escape(token)}"' in page
    return client.post("/verify-email", data={"token": token, "csrf_token": form_token(page)})


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
    """It refuses the unverified account's sign-in with a 403 asking to confirm; the link's
    button confirms (303 to sign-in), a second press is refused (422); then it signs in."""
    app = mail_app(**SIGN_UP)
    client = app.test_client()
    sign_up_by_form(client)
    refused = sign_in_by_form(client)
    assert refused.status_code == 403 and html.escape(sign_in_limits.UNVERIFIED) in refused.text
    token = app.outbox.token()
    confirmed = confirm_by_link(client, token)
    assert confirmed.status_code == 303 and confirmed.location.endswith("/sign-in")
    assert confirm_by_link(client, token).status_code == 422
    assert sign_in_by_form(client).status_code == 303


def test_a_bad_password_or_address_is_refused_clearly(mail_app):
    """It answers 422 with the reason for a short password or a malformed address."""
    client = mail_app(**SIGN_UP).test_client()
    assert "8 to 1024 characters" in sign_up_by_form(client, password="short").text
    assert sign_up_by_form(client, email="not an address").status_code == 422


def test_the_forms_keep_their_csrf_check(mail_app):
    """It refuses a sign-up or a confirmation posted without the form's CSRF token."""
    client = mail_app(**SIGN_UP).test_client()
    assert client.post("/sign-up", data={"email": NEW, "password": PASSWORD}).status_code == 400
    assert client.post("/verify-email", data={"token": "t"}).status_code == 400


def test_with_mail_off_the_page_says_so(make_app):
    """It answers 503 with the sentence naming MAIL_URL, and stores no account."""
    app = make_app(**SIGN_UP)
    answer = sign_up_by_form(app.test_client())
    assert answer.status_code == 503 and "MAIL_URL is unset" in answer.text
    with app.app_context():
        assert user_by_email(NEW) is None
