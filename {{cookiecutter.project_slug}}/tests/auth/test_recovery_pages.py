"""The password reset pages: the sign-in form links to them; asking answers one page whatever
the address (mail only to an account), 422 for what is not one plain address; the mail's link
opens a form, kept out of referrers and caches, that sets the password once, then sends the
browser to sign in, saying so; forms keep their CSRF check; with mail off the page says so.
"""

import html

from {{ cookiecutter.package_name }}.auth import recovery
from tests.auth.test_api import EMAIL, add_user, sign_in
from tests.auth.test_pages import form_token
from tests.auth.test_recovery import NEW_PASSWORD


def ask(client, email=EMAIL):
    """Open the reset form and post an email; return the answer."""
    token = form_token(client.get("/password-reset").text)
    return client.post("/password-reset", data={"email": email, "csrf_token": token})


def set_by_link(client, reset_token: str, password: str = NEW_PASSWORD):
    """Open the mail's link and post the new password; return the answer."""
    page = client.get(f"/reset-password?token={reset_token}").text
    assert f'value="{html.escape(reset_token)}"' in page
    data = {"token": reset_token, "password": password, "csrf_token": form_token(page)}
    return client.post("/reset-password", data=data)


def assert_says_once_with_the_address(client, sentence: str, email: str = EMAIL) -> None:
    """Assert the next sign-in form says ``sentence`` with ``email`` typed in, and the one
    after neither (a flashed message and the address are shown once)."""
    first, then = client.get("/sign-in").text, client.get("/sign-in").text
    assert 'class="notice"' in first and sentence in first, first
    assert f'value="{html.escape(email)}"' in first
    assert sentence not in then and f'value="{html.escape(email)}"' not in then


def test_the_sign_in_form_links_to_the_reset_form(mail_app):
    """It offers "Forgot your password?" on the sign-in form."""
    assert 'href="/password-reset"' in mail_app().test_client().get("/sign-in").text


def test_asking_answers_one_page_and_mails_only_an_account(mail_app):
    """It answers 200 with the same sentence for an account and an unknown address."""
    app = mail_app()
    add_user(app)
    client = app.test_client()
    known, unknown = ask(client), ask(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    sentence = html.escape(recovery.ON_ITS_WAY)
    assert sentence in known.text and sentence in unknown.text
    assert [message["To"] for message in app.outbox] == [EMAIL]


def test_the_link_sets_the_password_once_then_asks_to_sign_in(mail_app):
    """It sets the password from the link's form and redirects to sign-in, which says so once
    with the address typed in; the same link then answers 422 with the reason and a link to ask
    for a new one, and a too short password 422 too."""
    app = mail_app()
    add_user(app)
    client = app.test_client()
    ask(client)
    token = app.outbox.token()
    short = set_by_link(client, token, "short")
    assert short.status_code == 422 and "Choose another password" in short.text
    done = set_by_link(client, token)
    assert done.status_code == 303 and done.headers["Location"].endswith("/sign-in")
    assert_says_once_with_the_address(client, "Your password is changed")
    assert sign_in(client, password=NEW_PASSWORD).status_code == 201
    again = set_by_link(client, token, "yet another password")
    assert again.status_code == 422 and html.escape(recovery.BAD_TOKEN) in again.text
    assert 'id="new-link" href="/password-reset">Ask for a new link</a>' in again.text


def test_a_malformed_address_is_refused_and_mailed_nothing(mail_app):
    """It answers 422 with the reason for what is not one plain address, and hands no mail
    over, even for an address an older version stored."""
    app = mail_app()
    add_user(app, "x<attacker@evil.example>@bank.example")
    answer = ask(app.test_client(), "x<attacker@evil.example>@bank.example")
    assert answer.status_code == 422 and "Check the address" in answer.text
    assert app.outbox.jobs == []


def test_the_links_page_is_kept_out_of_referrers_and_caches(mail_app):
    """It answers the link's page, and the answers to its form, with Referrer-Policy:
    no-referrer and Cache-Control: no-store: the token in its address reaches no other site
    and no cache."""
    app = mail_app()
    add_user(app)
    client = app.test_client()
    ask(client)
    token = app.outbox.token()
    answers = [
        client.get(f"/reset-password?token={token}"),
        set_by_link(client, token, "short"),
        set_by_link(client, token),
    ]
    for answer in answers:
        assert answer.headers["Referrer-Policy"] == "no-referrer", answer.status_code
        assert answer.headers["Cache-Control"] == "no-store", answer.status_code


def test_the_forms_need_their_csrf_token(mail_app):
    """It refuses either form posted without its CSRF token."""
    app = mail_app(app_env="development")
    client = app.test_client()
    assert client.post("/password-reset", data={"email": EMAIL}).status_code == 400
    new_password = {"token": "t", "password": NEW_PASSWORD}
    assert client.post("/reset-password", data=new_password).status_code == 400


def test_with_mail_off_the_page_says_so(make_app):
    """It answers 503 with the form and the reason when MAIL_URL is unset."""
    answer = ask(make_app().test_client())
    assert answer.status_code == 503 and "MAIL_URL is unset" in answer.text
