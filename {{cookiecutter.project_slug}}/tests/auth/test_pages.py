"""Signing in to the pages and out: the item form for signed-in users only, a new session at each
sign-in, one answer to every failed attempt, sessions ended by a sign-out, a new password or a
deactivation, CSRF checks kept, a safe session cookie, and an API that never reads it."""

import re
import time

import pytest
from sqlalchemy import select

from {{ cookiecutter.package_name }}.auth.accounts import User
from {{ cookiecutter.package_name }}.auth.pages import FAILED, INCOMPLETE, NOT_SIGNED_IN
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.platform.timestamps import utc_now
from tests.auth.test_api import assert_same_work
from tests.conftest import TESTER, TESTER_PASSWORD, hash_of, token_of_tester
from tests.items.test_pages import HTMX, csrf_token

OTHER, OTHER_PASSWORD = "other@example.com", "another long password"


def form_token(page: str) -> str:
    """Return the CSRF token of the first form of a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def sign_in(client, email: str = TESTER, password: str = TESTER_PASSWORD):
    """Open the sign-in form and post it; return the answer (the test user exists by then)."""
    token_of_tester(client.application)
    token = form_token(client.get("/sign-in").text)
    return client.post("/sign-in", data={"email": email, "password": password, "csrf_token": token})


def signed_in_by_form(app, email: str = TESTER, password: str = TESTER_PASSWORD):
    """Return a new test client of the app, signed in through the form."""
    client = app.test_client()
    assert sign_in(client, email, password).status_code == 303
    return client


def add_user(app, email: str, password: str, active: bool = True) -> int:
    """Store a user directly and return its id."""
    with app.app_context():
        user = User(
            email=email,
            password_hash=hash_of(password),
            is_active=active,
            email_verified_at=utc_now(),
        )
        db.session.add(user)
        db.session.commit()
        return int(user.id)


def shows_the_form(client) -> bool:
    """Say whether the items page shows the item form (and then the sign-out button)."""
    page = client.get("/").text
    has_form = 'action="/items"' in page
    assert has_form == ('id="sign-out-form"' in page) != ('id="sign-in-link"' in page), page
    return has_form


def item_count(app) -> int:
    """Return how many items are stored."""
    with app.app_context():
        return len(db.session.scalars(select(Item)).all())


def session_cookie(app, client) -> str:
    """Return the value of the client's session cookie."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return str(cookie.value)


def test_signed_out_page_links_to_the_sign_in_form_instead_of_the_item_form(app):
    """It shows a "Sign in" link to /sign-in, and neither the item form nor a sign-out button."""
    client = app.test_client()
    page = client.get("/").text
    assert '<a id="sign-in-link" href="/sign-in">Sign in</a>' in page
    assert not shows_the_form(client)


def test_signed_in_page_shows_the_item_form_and_a_sign_out_button(signed_in_client):
    """It shows the form, who is signed in, and a button posting to /sign-out with a token."""
    page = signed_in_client.get("/").text
    assert shows_the_form(signed_in_client)
    assert f'<span id="signed-in-email">{TESTER}</span>' in page
    sign_out = page[page.index('<form id="sign-out-form"') :]
    assert 'method="post" action="/sign-out"' in sign_out
    assert 'name="csrf_token"' in sign_out.split("</form>")[0]


def test_sign_in_form_asks_for_an_email_and_a_password(app):
    """It renders a form with the email and password inputs, a CSRF token and the policy."""
    response = app.test_client().get("/sign-in")
    assert response.status_code == 200
    page = response.text
    assert '<form id="sign-in-form" method="post" action="/sign-in">' in page
    assert re.search(r'<input id="email" name="email" type="email"', page)
    assert re.search(r'<input id="password" name="password" type="password"', page)
    assert 'name="csrf_token"' in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_sign_in_opens_a_new_session(app):
    """It signs in with a new session: another cookie and CSRF token, nothing kept from before,
    so the token of the page before sign-in is refused."""
    token_of_tester(app)
    client = app.test_client()
    before = form_token(client.get("/sign-in").text)
    with client.session_transaction() as session:
        session["set before sign-in"] = "planted"
    cookie = session_cookie(app, client)
    answer = client.post(
        "/sign-in", data={"email": TESTER, "password": TESTER_PASSWORD, "csrf_token": before}
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/"
    assert session_cookie(app, client) != cookie
    with client.session_transaction() as session:
        assert "set before sign-in" not in session
    assert shows_the_form(client)
    assert csrf_token(client) != before
    refused = client.post("/items", data={"name": "old token", "csrf_token": before})
    assert refused.status_code == 400
    assert item_count(app) == 0


def test_every_failed_sign_in_gets_the_same_answer(app):
    """It answers a wrong password, an unknown email, an inactive user and a malformed email
    alike: 422 and the form again with one message, and nobody signed in."""
    add_user(app, OTHER, OTHER_PASSWORD, active=False)
    attempts = {
        "wrong password": (TESTER, "not the password"),
        "unknown email": ("nobody@example.com", TESTER_PASSWORD),
        "inactive user": (OTHER, OTHER_PASSWORD),
        "malformed email": ("not an email", TESTER_PASSWORD),
    }
    pages = set()
    for email, password in attempts.values():
        client = app.test_client()
        answer = sign_in(client, email, password)
        assert answer.status_code == 422
        assert f'<p class="errors" id="sign-in-error" role="alert">{FAILED}</p>' in answer.text
        assert f'value="{email}"' in answer.text  # kept, as typed
        pages.add(answer.text.replace(form_token(answer.text), "").replace(email, "EMAIL"))
        assert not shows_the_form(client)
    assert len(pages) == 1


def test_a_failed_sign_in_by_the_form_does_the_work_of_one_of_an_unknown_email(app):
    """It runs as many Python calls, and the same SQL statements each returning as many rows,
    for the form's wrong password of an account as for an unknown email (the API's sign-in is
    held to the same: tests/auth/test_api.py)."""
    client = app.test_client()
    token_of_tester(app)
    token = form_token(client.get("/sign-in").text)

    def post(email: str, password: str):
        form = {"email": email, "password": password, "csrf_token": token}
        return client.post("/sign-in", data=form)

    assert_same_work(app, lambda: post(TESTER, "not the password"), lambda e: post(e, "a password"))


def test_sign_out_ends_the_session_and_a_copy_of_its_cookie(app):
    """It signs out (303 to /, which says so once), and the cookie the session had no longer
    signs anyone in."""
    client = signed_in_by_form(app)
    copied = session_cookie(app, client)
    answer = client.post("/sign-out", data={"csrf_token": csrf_token(client)})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/"
    assert 'class="notice" role="status">You are signed out.' in client.get("/").text
    assert "You are signed out." not in client.get("/").text  # said once
    assert not shows_the_form(client)
    replayed = app.test_client()
    replayed.set_cookie(app.config["SESSION_COOKIE_NAME"], copied)
    assert not shows_the_form(replayed)


def test_sign_out_ends_the_users_other_sessions(app):
    """It ends every browser session of the user who signs out, not another user's."""
    add_user(app, OTHER, OTHER_PASSWORD)
    laptop, phone = signed_in_by_form(app), signed_in_by_form(app)
    other = signed_in_by_form(app, OTHER, OTHER_PASSWORD)
    laptop.post("/sign-out", data={"csrf_token": csrf_token(laptop)})
    assert not shows_the_form(phone)
    assert shows_the_form(other)


def test_session_ends_once_its_cookie_is_older_than_the_session_lifetime(make_app):
    """It refuses a session cookie written longer ago than PERMANENT_SESSION_LIFETIME (Flask's
    31 days by default; 3 s here), so a session kept open for ever ends even so."""
    app = make_app()
    app.config["PERMANENT_SESSION_LIFETIME"] = 3  # a loaded machine signs in within it
    client = signed_in_by_form(app)
    assert shows_the_form(client)
    time.sleep(4.1)  # the signature's age is counted in whole seconds
    assert not shows_the_form(client)


def test_session_survives_a_new_address_or_browser_version(app):
    """It keeps a session used from another address or user agent ("basic" protection): a phone
    changing networks stays signed in."""
    client = signed_in_by_form(app)
    client.environ_base.update(REMOTE_ADDR="127.0.0.2", HTTP_USER_AGENT="another browser")
    assert shows_the_form(client)


@pytest.mark.parametrize(
    ("command", "stdin"),
    [("password", "a brand new password\n"), ("deactivate", None)],
)
def test_new_password_or_deactivation_ends_the_session(app, command, stdin):
    """It signs the user out of the pages when `flask users password|deactivate` changes them."""
    client = signed_in_by_form(app)
    token = csrf_token(client)
    result = app.test_cli_runner().invoke(args=["users", command, TESTER], input=stdin)
    assert result.exit_code == 0, result.output
    assert not shows_the_form(client)
    refused = client.post("/items", data={"name": "after", "csrf_token": token})
    assert refused.status_code == 303
    assert item_count(app) == 0


def test_item_form_post_without_sign_in_is_refused(app):
    """It sends a plain post to the sign-in form (303) and answers HTMX 403 saying why; it
    stores nothing either way."""
    client = app.test_client()
    token = form_token(client.get("/sign-in").text)
    plain = client.post("/items", data={"name": "anonymous", "csrf_token": token})
    assert plain.status_code == 303
    assert plain.headers["Location"] == "/sign-in"
    htmx = client.post("/items", data={"name": "anonymous", "csrf_token": token}, headers=HTMX)
    assert htmx.status_code == 403
    assert htmx.json["error"]["detail"] == NOT_SIGNED_IN
    assert item_count(app) == 0


def test_item_added_from_the_page_records_who_added_it(app):
    """It stores the signed-in user as the owner of the item the form adds."""
    other = add_user(app, OTHER, OTHER_PASSWORD)
    client = signed_in_by_form(app, OTHER, OTHER_PASSWORD)
    answer = client.post("/items", data={"name": "mine", "csrf_token": csrf_token(client)})
    assert answer.status_code == 303
    with app.app_context():
        assert db.session.scalars(select(Item.owner_id)).all() == [other]


def add_processed_items(app, owner_id: int | None, *names: str) -> list[int]:
    """Store processed items of one owner (None: none, as `flask seed` makes); return their
    ids."""
    with app.app_context():
        items = [Item(name=name, status="processed", owner_id=owner_id) for name in names]
        db.session.add_all(items)
        db.session.commit()
        return [item.id for item in items]


def test_private_reads_show_the_items_to_signed_in_users_only(make_app):
    """With AUTH_PRIVATE_READS, it sends an anonymous visitor of the list or of the check of
    pending items to the sign-in form (303), answers their HTMX requests 403 with the reason,
    and shows no item in any of these answers; a signed-in user reads every item, whoever added
    it (reads are per signed-in user, not per owner, as the API's are per token)."""
    app = make_app(auth_private_reads=True)
    other = add_user(app, OTHER, OTHER_PASSWORD)
    ids = add_processed_items(app, other, "secret-of-another") + add_processed_items(
        app, None, "secret-of-nobody"
    )
    check = f"/items/pending?id={ids[0]}&id={ids[1]}"
    client = app.test_client()
    answers = [client.get(path, headers=headers) for path in ("/", check) for headers in ({}, HTMX)]
    assert [answer.status_code for answer in answers] == [303, 403, 303, 403]
    assert {answers[0].headers["Location"], answers[2].headers["Location"]} == {"/sign-in"}
    assert answers[1].json["error"]["detail"] == NOT_SIGNED_IN
    assert not [answer for answer in answers if b"secret" in answer.data]
    client = signed_in_by_form(app)  # the way in stays open
    for answer in (client.get("/"), client.get(check, headers=HTMX)):
        assert answer.status_code == 200
        assert "secret-of-another" in answer.text and "secret-of-nobody" in answer.text
    assert shows_the_form(client)


@pytest.mark.parametrize("path", ["/sign-in", "/sign-out"])
def test_sign_in_and_sign_out_need_the_csrf_token(app, path):
    """It refuses a post to /sign-in or /sign-out without the session's token (400), and the
    post changes nothing: no sign-in (login CSRF), no sign-out."""
    client = signed_in_by_form(app) if path == "/sign-out" else app.test_client()
    client.get("/")
    before = shows_the_form(client)
    answer = client.post(path, data={"email": TESTER, "password": TESTER_PASSWORD})
    assert answer.status_code == 400
    assert "CSRF" in answer.json["error"]["detail"]
    assert shows_the_form(client) == before


@pytest.mark.parametrize(("app_env", "secure"), [("production", True), ("test", False)])
def test_session_cookie_after_sign_in_is_http_only_lax_and_secure_in_production(
    make_app, app_env, secure
):
    """It sets the signed-in session's cookie HttpOnly and SameSite=Lax, Secure in production."""
    app = make_app(app_env=app_env)
    token_of_tester(app)
    client = app.test_client()
    answer = sign_in(client)
    assert answer.status_code == 303
    (cookie,) = answer.headers.getlist("Set-Cookie")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith(app.config["SESSION_COOKIE_NAME"] + "=")
    assert "httponly" in attributes
    assert "SameSite=Lax" in cookie
    assert ("secure" in attributes) is secure
    assert "expires" not in attributes  # gone when the browser closes


def test_sign_in_attempts_are_limited_per_account_and_per_client(limited_client):
    """It answers 429 with Retry-After past RATELIMIT_SIGN_IN_ACCOUNT failures of one account
    (its right password included, from any client), and past RATELIMIT_SIGN_IN attempts of one
    client, as the API's token endpoint does."""
    client = limited_client(ratelimit_sign_in_account="2 per minute")
    assert [sign_in(client, password="wrong password").status_code for _ in range(3)] == [
        422,
        422,
        429,
    ]
    refused = sign_in(client.application.test_client())
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    client = limited_client(ratelimit_sign_in="2 per minute")
    answers = [sign_in(client, email).status_code for email in ("a@example.com", TESTER, TESTER)]
    assert answers == [422, 303, 429]


def test_the_form_and_the_api_share_the_sign_in_limits(limited_client):
    """It counts the form's and the API's attempts in one count per address, and their failed
    password checks in one count per account: neither surface starts a count of its own."""
    client = limited_client(ratelimit_sign_in_account="3 per minute")
    token_of_tester(client.application)
    wrong = {"email": TESTER, "password": "wrong password"}
    assert [client.post("/api/auth/tokens", json=wrong).status_code for _ in range(2)] == [401] * 2
    assert [sign_in(client, password="wrong password").status_code for _ in range(2)] == [422, 429]
    assert client.post("/api/auth/tokens", json=wrong).status_code == 429
    client = limited_client(ratelimit_sign_in="3 per minute")
    for email in ("a@example.com", "b@example.com"):
        answer = client.post("/api/auth/tokens", json={"email": email, "password": "x"})
        assert answer.status_code == 401
    assert [sign_in(client).status_code for _ in range(2)] == [303, 429]


@pytest.mark.parametrize(
    "fields",
    [
        {"email": TESTER},
        {"email": TESTER, "password": ""},
        {"password": "wrong password"},
        {"email": "", "password": "wrong password"},
        {"email": TESTER, "password": "p" * 1025},
    ],
)
def test_a_post_without_an_email_or_password_does_not_count_against_an_account(
    limited_client, fields
):
    """It answers a post missing the email or the password, or with one empty or too long, 422
    with a sentence saying so, without checking a password: as the API refuses such a body, so
    such posts never lock the account out."""
    client = limited_client(ratelimit_sign_in_account="2 per minute")
    token_of_tester(client.application)
    for _ in range(3):
        token = form_token(client.get("/sign-in").text)
        answer = client.post("/sign-in", data={**fields, "csrf_token": token})
        assert answer.status_code == 422
        assert f'<p class="errors" id="sign-in-error" role="alert">{INCOMPLETE}</p>' in answer.text
    assert sign_in(client).status_code == 303


def test_api_ignores_the_pages_session(app):
    """It refuses an API write from a browser signed in to the pages: the API reads bearer
    tokens only, so a forged cross-site request carries no credentials."""
    client = signed_in_by_form(app)
    assert shows_the_form(client)
    assert client.post("/api/items", json={"name": "by cookie"}).status_code == 401
    assert item_count(app) == 0


def test_sign_ins_log_the_user_id_never_the_password(app, caplog):
    """It logs a sign-in and a sign-out by user id, and no password in any attempt's records."""
    client = app.test_client()
    sign_in(client, TESTER, "a wrong password")
    sign_in(client)
    client.post("/sign-out", data={"csrf_token": csrf_token(client)})
    logged = " ".join(str(vars(record)) for record in caplog.records)
    assert TESTER_PASSWORD not in logged and "a wrong password" not in logged
    with app.app_context():
        tester = db.session.scalars(select(User).filter_by(email=TESTER)).one()
    events = [(r.action, r.user_id) for r in caplog.records if hasattr(r, "action")]
    signed_in_and_out = [("signed_in", tester.id), ("signed_out", tester.id)]
    assert events == [("sign_in_failed", tester.id), *signed_in_and_out]


def test_sign_in_pages_stay_out_of_the_api_document(client):
    """It leaves /sign-in and /sign-out out of the OpenAPI document: they are pages, not API."""
    paths = client.get("/openapi.json").json["paths"]
    assert {"/sign-in", "/sign-out"}.isdisjoint(paths)
    assert "/api/auth/tokens" in paths
