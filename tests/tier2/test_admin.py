"""Tier 2: the admins' pages and API on the service as its image runs it (two workers). A real
Chromium, signed in as an admin made by `flask users create --admin`, deactivates a user whose
open session in another Chromium then ends, and the trail page shows the user's sign-in and the
deactivation by that admin. The API does the same with tokens; the same deactivation sent 8
times at once through the two workers changes the user once and writes one event, as a token's
sign-out sent 8 times at once ends it once.
"""

from __future__ import annotations

import secrets
import uuid

import pytest
import requests
from selenium.webdriver.common.by import By

from .auth import TIMEOUT, Account, at_once, new_token, sign_in_browser, with_two_workers
from .browser import ARTEFACT_PROPERTY, browser, layout_problems
from .deployment import GENEROUS_LIMIT
from .test_served import each

# Its users are its own (new addresses); it stops nothing and changes no setting.
SHARE_DEPLOYMENT = True
AT_ONCE = 8


@pytest.fixture(scope="module")
def service(deployment):
    """An instance of two workers, on the deployment's data, whose sign-in limits no test here
    reaches (the shared deployment's other modules sign in from this address too)."""
    started = deployment.extra_service(
        "admin", RATELIMIT_SIGN_IN=GENEROUS_LIMIT, RATELIMIT_SIGN_IN_ACCOUNT=GENEROUS_LIMIT
    )
    return with_two_workers(started)


def new_user(deployment, admin: bool = False) -> tuple[str, str, int]:
    """Make a user (an admin with ``admin``) with the generated command, as the image runs it;
    return its address, its password and its id."""
    email = f"{'admin' if admin else 'user'}-{uuid.uuid4().hex[:8]}@example.com"
    password = secrets.token_urlsafe(18)
    argv = ["flask", "--app", f"{deployment.package}:create_app()", "users", "create", email]
    argv += ["--admin"] if admin else []
    made = deployment.service.run_once(argv, stdin=f"{password}\n")
    assert made.returncode == 0, made.stdout + made.stderr
    ((user_id,),) = deployment.query("SELECT id FROM users WHERE email = ?", email)
    return email, password, user_id


def new_account(deployment, url: str, admin: bool = False) -> tuple[Account, int]:
    """Make a user (new_user); return it with a token ``url`` gave, and its id."""
    email, password, user_id = new_user(deployment, admin)
    return Account(email, password, new_token(url, email, password)), user_id


def events(deployment, user_id: int) -> list[tuple[str, int | None]]:
    """Return the actions and actors of a user's events, oldest first, from the real store."""
    query = "SELECT action, actor_id FROM audit_events WHERE user_id = ? ORDER BY id"
    return [(action, actor) for action, actor in deployment.query(query, user_id)]


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_an_admin_deactivates_a_user_in_a_browser_and_its_session_ends(
    deployment, service, tmp_path, record_property
):
    """The user's page answers before, the sign-in form after; the admin's action asks first;
    the trail shows the user's sign-in and the deactivation naming the admin; no CSP violation
    and no console error on any admin page."""
    entry = service.url
    admin, admin_id = new_account(deployment, entry, admin=True)
    user, user_id = new_account(deployment, entry)
    with browser(tmp_path / "user") as theirs, browser(tmp_path / "admin") as mine:
        sign_in_browser(theirs, entry, user)
        theirs.open(f"{entry}/security")
        theirs.wait(lambda d: d.find_elements(By.ID, "recent-activity"), "the security page")

        sign_in_browser(mine, entry, admin)
        mine.open(f"{entry}/admin?q={user.email}")
        mine.driver.find_element(By.LINK_TEXT, user.email).click()
        mine.wait(lambda d: d.find_elements(By.ID, "action-deactivate"), "the user's page")
        mine.driver.find_element(By.ID, "action-deactivate").click()
        asked = mine.driver.switch_to.alert  # main.js asks before the form ends its sessions
        assert asked.text.startswith(f"Deactivate {user.email}?"), asked.text
        asked.accept()
        notice = mine.wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".notice"), "done")
        assert notice[0].text.startswith("Deactivated"), notice[0].text
        record_property(ARTEFACT_PROPERTY, str(mine.screenshot("admin-user-deactivated")))

        theirs.open(f"{entry}/security")
        theirs.wait(lambda d: d.find_elements(By.ID, "sign-in-form"), "sent to sign in")

        for path, name in [
            ("/admin", "admin-users"),
            (f"/admin/users/{user_id}", "admin-user"),
            ("/admin/audit", "admin-audit"),
        ]:  # the pages' look: nothing wider than a phone, a form's fields alike
            assert layout_problems(mine, f"{entry}{path}", name, record_property) == {}, path
        mine.open(f"{entry}/admin/audit?user_id={user_id}")
        rows = [row.text for row in mine.driver.find_elements(By.CSS_SELECTOR, "tr.event")]
        assert "user_deactivated" in rows[0], rows
        assert f" {admin_id} " in f" {rows[0]} ", rows  # the actor's id, linked
        assert any("signed_in" in row for row in rows[1:]), rows
        assert mine.console_errors() == [] and mine.csp_violations() == []
        assert theirs.csp_violations() == []
    assert ("user_deactivated", admin_id) in events(deployment, user_id)


@each("use_auth")
def test_a_sign_out_and_a_deactivation_through_the_api_happen_once_however_many_ask(
    deployment, service
):
    """Of 8 sign-outs of one token at once through two workers, one answers 204 and writes an
    event, the others 401 as for any token no longer live. The user's token answers before, 401
    after a deactivation; of 8 at once, each answers 200 and one event is written, naming the
    admin; a user's token gets 403 on the trail, and its own events at /api/auth/activity."""
    url = service.url
    admin, admin_id = new_account(deployment, url, admin=True)
    user, user_id = new_account(deployment, url)
    mine = {"Authorization": f"Bearer {admin.token}"}
    theirs = {"Authorization": f"Bearer {user.token}"}
    own = requests.get(f"{url}/api/auth/activity", headers=theirs, timeout=TIMEOUT)
    assert own.status_code == 200 and {e["user_id"] for e in own.json()["events"]} == {user_id}
    trail = requests.get(f"{url}/api/admin/audit", headers=theirs, timeout=TIMEOUT)
    assert trail.status_code == 403, trail.text
    other = {"Authorization": f"Bearer {new_token(url, user.email, user.password)}"}

    def sign_out(_: int) -> int:
        path = f"{url}/api/auth/tokens/current"
        return requests.delete(path, headers=other, timeout=TIMEOUT).status_code

    assert sorted(at_once(sign_out, list(range(AT_ONCE)))) == [204] + [401] * (AT_ONCE - 1)
    assert events(deployment, user_id).count(("token_revoked", None)) == 1

    def deactivate(_: int) -> int:
        path = f"{url}/api/admin/users/{user_id}/deactivate"
        return requests.post(path, headers=mine, timeout=TIMEOUT).status_code

    assert at_once(deactivate, list(range(AT_ONCE))) == [200] * AT_ONCE
    gone = requests.get(f"{url}/api/auth/activity", headers=theirs, timeout=TIMEOUT)
    assert gone.status_code == 401, gone.text
    shown = requests.get(f"{url}/api/admin/audit?user_id={user_id}", headers=mine, timeout=TIMEOUT)
    actions = [(e["action"], e["actor_id"]) for e in shown.json()["events"]]
    assert actions.count(("user_deactivated", admin_id)) == 1, actions
    assert ("token_issued", None) in actions, actions
    assert events(deployment, user_id).count(("user_deactivated", admin_id)) == 1
