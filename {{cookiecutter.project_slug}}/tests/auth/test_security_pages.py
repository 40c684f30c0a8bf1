"""The security page (/security): a signed-in user sets the second factor up (a QR code and the
key as text, under the page's CSP), turns it on with the password and a code and sees the
recovery codes once, makes a new set, and turns it off; the API's rules on each form, every
other session ended by a change of the factor, this one renewed; nothing here is cached. Its
recent activity lists the account's own events only, newest first, in plain words, escaped."""

import html
import re

import pytest

from {{ cookiecutter.package_name }}.auth.accounts import Role, User
from {{ cookiecutter.package_name }}.auth.audit import Action, AuditEvent, record
from {{ cookiecutter.package_name }}.auth.pages import SECOND_FACTOR_FIRST
from {{ cookiecutter.package_name }}.auth.security_pages import INCOMPLETE
from {{ cookiecutter.package_name }}.extensions import db
from tests.auth.test_api import EMAIL, PASSWORD, add_user
from tests.auth.test_pages import form_token, shows_the_form, sign_in
from tests.auth.test_passkeys import ORIGIN, sign_in_with_passkey, store_passkey
from tests.auth.test_second_factor_api import code_at, wrong_code
from tests.auth.test_second_step_pages import after_password, post_code
from tests.conftest import TESTER, TESTER_PASSWORD, token_of_tester
from tests.items.test_pages import HTMX

WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC "  # an event's time, as the page shows it


def signed_in(app):
    """Return a client of ``app`` signed in as EMAIL through the form."""
    client = app.test_client()
    assert sign_in(client, EMAIL, PASSWORD).status_code == 303
    return client


def post(client, path: str, **fields):
    """Post ``fields`` to ``path`` with the security page's CSRF token; return the answer."""
    token = form_token(client.get("/security").text)
    return client.post(path, data={**fields, "csrf_token": token})


def shown_codes(page: str) -> list[str]:
    """Return the recovery codes a page shows."""
    return re.findall(r"<li><code>([a-z0-9-]+)</code></li>", page)


def activity(page: str) -> list[str]:
    """Return the lines of a page's recent activity as text, tags and spacing dropped."""
    listed = page.split('<ul id="recent-activity">', 1)[1].split("</ul>", 1)[0]
    lines = re.findall(r"<li[^>]*>(.*?)</li>", listed, re.S)
    return [html.unescape(" ".join(re.sub(r"<[^>]+>", " ", line).split())) for line in lines]


def set_up(client) -> str:
    """Make a new key from the page; return it as the page shows it, spaces removed."""
    assert post(client, "/security/second-factor").status_code == 303
    page = client.get("/security")
    match = re.search(r'<code id="secret">([A-Z2-7 ]+)</code>', page.text)
    assert match, page.text
    return match.group(1).replace(" ", "")


def test_the_page_and_its_forms_need_a_signed_in_user(app):
    """Anyone not signed in is sent to the sign-in form, and nothing is made."""
    client = app.test_client()
    answer = client.get("/security")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/sign-in")
    assert client.post("/security/second-factor").status_code in (303, 400)


def test_setting_it_up_shows_a_qr_code_and_the_key_and_a_code_turns_it_on(app):
    """The key is shown as an inline SVG QR code and as text, under the strict CSP; the
    password and a current code turn it on: ten recovery codes shown once, this session kept,
    another one ended; nothing of it is cached."""
    add_user(app)
    client, other = signed_in(app), signed_in(app)
    page = client.get("/security")
    assert page.status_code == 200 and 'id="second-factor-off"' in page.text
    assert page.headers["Cache-Control"] == "no-store"
    secret = set_up(client)
    page = client.get("/security")
    assert "<svg" in page.text and 'class="qr-code"' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "unsafe" not in policy
    on = post(client, "/security/second-factor/enable", password=PASSWORD, code=code_at(secret))
    assert on.status_code == 200, on.text
    assert on.headers["Cache-Control"] == "no-store"
    codes = shown_codes(on.text)
    assert len(set(codes)) == 10 and 'id="second-factor-on"' in on.text
    assert shows_the_form(client) and not shows_the_form(other)
    assert codes[0] not in client.get("/security").text  # shown once


@pytest.mark.parametrize(
    ("password", "code", "sentence"),
    [
        ("wrong password", "right", "Wrong password or code."),
        (PASSWORD, "wrong", "Wrong password or code."),
        (PASSWORD, "", INCOMPLETE),
    ],
)
def test_a_wrong_password_or_code_leaves_it_off(app, password, code, sentence):
    """A wrong password or code, or a field left empty, answers 422 with one sentence; the
    factor stays off, and the session is kept."""
    add_user(app)
    client = signed_in(app)
    secret = set_up(client)
    given = {"right": code_at(secret), "wrong": wrong_code(secret)}.get(code, code)
    answer = post(client, "/security/second-factor/enable", password=password, code=given)
    assert answer.status_code == 422 and sentence in answer.text
    assert 'id="secret"' in answer.text and not shown_codes(answer.text)
    assert shows_the_form(client)


def test_a_new_set_and_turning_it_off_from_the_page(app):
    """With the factor on: an app code and the password make a new set (the old one dies);
    a recovery code and the password turn it off; the session is kept, and the password alone
    signs in after."""
    client, secret, old = after_password(app)
    assert post_code(client, code_at(secret)).status_code == 303
    page = client.get("/security")
    assert 'id="codes-left">10<' in page.text
    answer = post(client, "/security/recovery-codes", password=PASSWORD, code=code_at(secret, 30))
    assert answer.status_code == 200, answer.text
    new = shown_codes(answer.text)
    assert len(new) == 10 and not set(new) & set(old)
    refused = post(client, "/security/second-factor/disable", password=PASSWORD, code=old[0])
    assert refused.status_code == 422
    off = post(client, "/security/second-factor/disable", password=PASSWORD, code=new[0])
    assert off.status_code == 303
    assert 'id="second-factor-off"' in client.get("/security").text
    assert shows_the_form(client)
    assert sign_in(app.test_client(), EMAIL, PASSWORD).headers["Location"].endswith("/")


def test_each_form_needs_the_csrf_token(app):
    """A post without the page's CSRF token is refused, and changes nothing."""
    add_user(app)
    client = signed_in(app)
    answer = client.post("/security/second-factor")
    assert answer.status_code == 400
    assert 'id="second-factor-off"' in client.get("/security").text


def test_a_required_factor_sends_a_password_session_to_the_security_page(make_app):
    """With AUTH_REQUIRE_SECOND_FACTOR, a session a password signed in, of an account without
    the factor, is sent from the items to the security page, which says why; an HTMX post gets
    403 and adds nothing; once the factor is on, the items page is its own again."""
    app = make_app(auth_require_second_factor=True)
    add_user(app)
    client = signed_in(app)
    answer = client.get("/")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/security")
    assert SECOND_FACTOR_FIRST in client.get("/security").text
    token = form_token(client.get("/security").text)
    posted = client.post("/items", data={"name": "held", "csrf_token": token}, headers=HTMX)
    assert posted.status_code == 403 and posted.json["error"]["detail"] == SECOND_FACTOR_FIRST
    secret = set_up(client)
    on = post(client, "/security/second-factor/enable", password=PASSWORD, code=code_at(secret))
    assert on.status_code == 200, on.text
    assert shows_the_form(client)


def test_a_passkey_session_is_not_held_back_by_a_required_factor(make_app):
    """A passkey is two factors in one step: its session gets the items page at once, where the
    same user's password session is sent to set a second factor up."""
    app = make_app(auth_require_second_factor=True, passkey_origins=ORIGIN)
    token_of_tester(app)
    store_passkey(app)
    client = app.test_client()
    assert sign_in_with_passkey(app, client).status_code == 200
    assert shows_the_form(client)
    by_password = app.test_client()
    assert sign_in(by_password, TESTER, TESTER_PASSWORD).status_code == 303
    assert by_password.get("/").headers["Location"].endswith("/security")


def test_recent_activity_lists_the_own_accounts_events_newest_first(app):
    """A failed sign-in then a sign-in of the account are listed newest first, with when (UTC),
    how and where from; another user's sign-in, from another browser, is on their page only."""
    add_user(app)
    owner, other = app.test_client(), app.test_client()
    owner.environ_base["HTTP_USER_AGENT"] = "OwnerAgent/1.0"
    other.environ_base["HTTP_USER_AGENT"] = "OtherAgent/1.0"
    assert sign_in(owner, EMAIL, "a wrong password").status_code == 422
    assert sign_in(owner, EMAIL, PASSWORD).status_code == 303
    assert sign_in(other, TESTER, TESTER_PASSWORD).status_code == 303
    page, others = owner.get("/security").text, other.get("/security").text
    lines = activity(page)
    assert len(lines) == 2, lines
    assert re.fullmatch(WHEN + "Signed in with a password from 127.0.0.1, OwnerAgent/1.0", lines[0])
    assert re.fullmatch(
        WHEN + r"Failed sign-in \(password refused\) from .*OwnerAgent/1.0", lines[1]
    )
    assert "OtherAgent" not in page and TESTER not in page
    assert "OtherAgent" in others and "OwnerAgent" not in others


def test_an_admins_act_says_by_an_admin_never_who_and_an_unknown_action_its_value(app):
    """The second factor turned off by an admin reads so, without the admin's address; an
    action this version does not know shows its own value."""
    user_id = add_user(app)
    admin_id = add_user(app, "admin@example.com", role=Role.ADMIN)
    client = signed_in(app)
    with app.app_context():
        record(Action.SECOND_FACTOR_OFF, user_id, db.session.get(User, admin_id), "reset")
        db.session.add(AuditEvent(action="retired_action", user_id=user_id))
        db.session.commit()
    page = client.get("/security").text
    assert [re.sub(WHEN, "", line) for line in activity(page)[:2]] == [
        "retired_action",
        "Second factor turned off by an admin (reset)",
    ]
    assert "admin@example.com" not in page


def test_a_user_agent_is_escaped_and_cut_short(app):
    """A user agent holding markup is shown as text, cut to 60 characters."""
    add_user(app)
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = "<script>alert(1)</script>" + "x" * 100
    assert sign_in(client, EMAIL, PASSWORD).status_code == 303
    page = client.get("/security").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" + "x" * 34 + "…" in page
