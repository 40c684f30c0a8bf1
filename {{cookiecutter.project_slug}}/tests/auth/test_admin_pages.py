"""The admins' pages (/admin): only an active admin gets them; each action is a CSRF-checked form
doing what the API does; the trail shows what happened, filtered."""

import re

import pytest

from {{ cookiecutter.package_name }}.auth.accounts import Role
from {{ cookiecutter.package_name }}.auth.admin import LAST_ADMIN
from {{ cookiecutter.package_name }}.auth.api import NOT_AN_ADMIN
from tests.auth.test_api import add_user
from tests.auth.test_pages import form_token, signed_in_by_form
from tests.platform.test_routes import set_user

ADMIN, ADA, PASSWORD = "root@example.com", "ada@example.com", "correct horse battery staple"


@pytest.fixture
def admin(app):
    """Return a test client signed in to the pages as a new admin (its id on ``admin_id``)."""
    admin_id = add_user(app, email=ADMIN, password=PASSWORD, role=Role.ADMIN)
    client = signed_in_by_form(app, ADMIN, PASSWORD)
    client.admin_id = admin_id
    return client


def events(page: str) -> list[str]:
    """Return the rows of a page's table of events, newest first, as HTML."""
    return re.findall(r'<tr class="event">(.*?)</tr>', page, re.S)


def act(client, user_id: int, action: str):
    """Post an action's form from the user's page, as a browser does; return the answer."""
    page = client.get(f"/admin/users/{user_id}").text
    return client.post(f"/admin/users/{user_id}/{action}", data={"csrf_token": form_token(page)})


def test_only_an_active_admin_gets_the_pages(app, admin):
    """A visitor goes to the sign-in form; a user gets 403 with the sentence, not a redirect; an
    admin gets the pages, kept by no cache, under the pages' CSP; a demoted one 403 at once."""
    for path in ("/admin", "/admin/audit", "/admin/users/1"):
        visitor = app.test_client().get(path, headers={"Accept": "text/html"})
        assert visitor.status_code == 303 and "/sign-in" in visitor.location
    add_user(app, email=ADA, password=PASSWORD)
    user = signed_in_by_form(app, ADA, PASSWORD)
    refused = user.get("/admin", headers={"Accept": "text/html"})
    assert refused.status_code == 403 and NOT_AN_ADMIN in refused.text
    shown = admin.get("/admin")
    assert shown.status_code == 200 and ADA in shown.text
    assert shown.headers["Cache-Control"] == "no-store"
    assert "unsafe-inline" not in shown.headers["Content-Security-Policy"]
    add_user(app, email="grace@example.com", password=PASSWORD, role=Role.ADMIN)
    set_user(app, ADMIN, role=Role.USER)
    assert admin.get("/admin").status_code == 403


def test_an_admin_deactivates_a_user_whose_session_then_ends(app, admin):
    """The user's open session is sent to the sign-in form at its next page; the trail shows its
    sign-in and the deactivation by the admin."""
    ada = add_user(app, email=ADA, password=PASSWORD)
    user = signed_in_by_form(app, ADA, PASSWORD)
    assert user.get("/security").status_code == 200
    done = act(admin, ada, "deactivate")
    assert done.status_code == 303 and done.location.endswith(f"/admin/users/{ada}")
    assert "Deactivated" in admin.get(done.location).text
    assert user.get("/security").status_code == 303
    rows = events(admin.get(f"/admin/audit?user_id={ada}").text)
    assert "user_deactivated" in rows[0] and f">{admin.admin_id}</a>" in rows[0]
    assert "signed_in" in rows[1]


def test_a_refused_action_says_why_and_changes_nothing(app, admin):
    """The last admin is not demoted: its page says why, and it stays an admin."""
    done = act(admin, admin.admin_id, "demote")
    page = admin.get(done.location).text
    assert LAST_ADMIN in page and "An admin" in page
    assert not [row for row in events(admin.get("/admin/audit").text) if "user_demoted" in row]


def test_actions_need_the_csrf_token_and_name_a_user_and_an_action(app, admin):
    """A post without the token is refused (400); an unknown action or user is a 404."""
    ada = add_user(app, email=ADA, password=PASSWORD)
    assert admin.post(f"/admin/users/{ada}/deactivate").status_code == 400
    token = form_token(admin.get(f"/admin/users/{ada}").text)
    assert admin.post(f"/admin/users/{ada}/delete", data={"csrf_token": token}).status_code == 404
    no_user = admin.post("/admin/users/999999/deactivate", data={"csrf_token": token})
    assert no_user.status_code == 404
    assert admin.get("/admin/users/999999").status_code == 404


def test_the_user_list_searches_and_the_trail_filters(app, admin):
    """``q`` keeps the users whose address holds it; the trail keeps an action and a day, and
    a malformed filter gets 422 with the field named."""
    add_user(app, email=ADA, password=PASSWORD)
    found = admin.get("/admin?q=ADA").text
    assert ADA in found and ADMIN not in found
    shown = events(admin.get("/admin/audit?action=signed_in").text)
    assert shown and all("signed_in" in row for row in shown)
    assert 'id="no-events"' in admin.get("/admin/audit?since=2999-01-01").text
    bad = admin.get("/admin/audit?since=yesterday", headers={"Accept": "text/html"})
    assert bad.status_code == 422 and "since" in bad.text
