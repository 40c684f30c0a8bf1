"""The admins' API (/api/admin/): what each action changes, that it names its admin in the audit
trail, that it refuses to leave no admin, and that a failed write claims nothing."""

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.package_name }}.auth import admin as actions
from {{ cookiecutter.package_name }}.auth import second_factor
from {{ cookiecutter.package_name }}.auth.accounts import Role, User, issue_token
from {{ cookiecutter.package_name }}.auth.admin import LAST_ADMIN, NO_FACTOR, NOT_CONFIRMED
from {{ cookiecutter.package_name }}.auth.audit import AuditEvent
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform.timestamps import utc_now
from tests.auth.test_api import add_user, assert_asks_for_a_token, bearer, token_of
from tests.conftest import send_token
from tests.platform.test_openapi import assert_conforms, document
from tests.platform.test_routes import set_user

ADMIN, ADA, GRACE = "root@example.com", "ada@example.com", "grace@example.com"


@pytest.fixture
def admin(app):
    """Return a test client sending a token of a new admin (its id on ``admin_id``)."""
    client = app.test_client()
    client.admin_id = add_user(app, email=ADMIN, role=Role.ADMIN)
    return send_token(client, token_of(app.test_client(), email=ADMIN))


def trail(app) -> list[tuple[str, int | None, int | None, str | None]]:
    """Return every event as (action, user id, actor id, detail), oldest first."""
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [(row.action, row.user_id, row.actor_id, row.detail) for row in rows]


def stored(app, user_id: int) -> User:
    """Return a user as stored now."""
    with app.app_context():
        user = db.session.get_one(User, user_id)
        db.session.expunge(user)
        return user


def test_an_admin_lists_searches_and_pages_users(app, admin):
    """Newest first, with the count of all that match; ``q`` matches part of the address in any
    case, and its % and _ are letters, not wildcards; the answers conform to the document."""
    for email in (ADA, GRACE, "a_b@example.com"):
        add_user(app, email=email)
    doc = document(app.test_client())
    answer = admin.get("/api/admin/users?limit=2")
    assert_conforms(doc, "/api/admin/users", "get", answer)
    assert answer.json["total"] == 4
    assert [user["email"] for user in answer.json["users"]] == ["a_b@example.com", GRACE]
    found = admin.get("/api/admin/users?q=ADA").json
    assert [user["email"] for user in found["users"]] == [ADA]
    assert admin.get("/api/admin/users?q=a_b").json["total"] == 1  # not "ada" too
    assert admin.get("/api/admin/users?q=%25").json["total"] == 0
    assert admin.get("/api/admin/users?limit=0").status_code == 422
    shown = admin.get(f"/api/admin/users/{admin.admin_id}")
    assert_conforms(doc, "/api/admin/users/{user_id}", "get", shown)
    assert shown.json["role"] == "admin" and "password_hash" not in shown.json


@pytest.mark.parametrize("user_id", [999_999, 2**31, 10**19])
def test_an_id_no_user_has_is_a_404(admin, user_id):
    """Every action answers 404 for an id no user has, past the column's range included."""
    assert admin.get(f"/api/admin/users/{user_id}").status_code == 404
    assert admin.post(f"/api/admin/users/{user_id}/deactivate").status_code == 404


def test_deactivation_ends_a_users_tokens_and_names_its_admin(app, admin):
    """The user's live token is refused at once; a second deactivation changes nothing and
    writes no event; reactivation lets the user sign in again, its old token still ended."""
    ada = add_user(app, email=ADA)
    grace = add_user(app, email=GRACE)
    token = token_of(app.test_client(), email=ADA)
    answer = admin.post(f"/api/admin/users/{ada}/deactivate")
    assert answer.status_code == 200 and answer.json["is_active"] is False
    gone = app.test_client().get("/api/auth/activity", headers=bearer(token))
    assert_asks_for_a_token(gone, invalid_token=True)
    assert admin.post(f"/api/admin/users/{ada}/deactivate").status_code == 200
    assert stored(app, grace).is_active  # the id named, no other
    assert admin.post(f"/api/admin/users/{ada}/reactivate").json["is_active"] is True
    assert app.test_client().get("/api/auth/activity", headers=bearer(token)).status_code == 401
    token_of(app.test_client(), email=ADA)
    actions = [event for event in trail(app) if event[2] is not None]
    assert actions == [
        ("user_deactivated", ada, admin.admin_id, None),
        ("user_reactivated", ada, admin.admin_id, None),
    ]


def test_the_last_active_admin_is_never_demoted_or_deactivated(app, admin):
    """409 for the only active admin, itself included, and no event; with a second admin, the
    first may be demoted, and the second then is the last."""
    for action in ("deactivate", "demote"):
        refused = admin.post(f"/api/admin/users/{admin.admin_id}/{action}")
        assert refused.status_code == 409 and refused.json["error"]["detail"] == LAST_ADMIN
    assert not [event for event in trail(app) if event[2] is not None]
    grace = add_user(app, email=GRACE)
    assert admin.post(f"/api/admin/users/{grace}/promote").json["role"] == "admin"
    assert admin.post(f"/api/admin/users/{admin.admin_id}/demote").json["role"] == "user"
    assert admin.post(f"/api/admin/users/{grace}/demote").status_code == 403  # no admin now
    grace_client = send_token(app.test_client(), token_of(app.test_client(), email=GRACE))
    assert grace_client.post(f"/api/admin/users/{grace}/demote").status_code == 409


def test_only_a_confirmed_address_is_promoted(app, admin):
    """An unconfirmed address may be anyone's: 409, until an admin confirms it."""
    ada = add_user(app, email=ADA)
    set_user(app, ADA, email_verified_at=None)
    refused = admin.post(f"/api/admin/users/{ada}/promote")
    assert refused.status_code == 409 and refused.json["error"]["detail"] == NOT_CONFIRMED
    assert admin.post(f"/api/admin/users/{ada}/confirm-address").json["email_verified_at"]
    assert admin.post(f"/api/admin/users/{ada}/promote").json["role"] == "admin"
    assert ("address_confirmed", ada, admin.admin_id, None) in trail(app)


def test_ending_sessions_ends_every_token_of_that_user_only(app, admin):
    """The user's tokens are refused after; the admin's own goes on."""
    ada = add_user(app, email=ADA)
    token = token_of(app.test_client(), email=ADA)
    with app.app_context():
        before = db.session.get_one(User, ada).login_generation
    assert admin.post(f"/api/admin/users/{ada}/end-sessions").status_code == 200
    assert app.test_client().get("/api/auth/activity", headers=bearer(token)).status_code == 401
    assert stored(app, ada).login_generation == before + 1  # its browser sessions end too
    assert admin.get("/api/admin/users").status_code == 200
    assert ("sessions_ended", ada, admin.admin_id, None) in trail(app)


def test_an_admin_mails_a_reset_link(mail_app):
    """202, and the link goes to the user's address; the event names the admin."""
    app = mail_app()
    ada = add_user(app, email=ADA)
    admin_id = add_user(app, email=ADMIN, role=Role.ADMIN)
    client = send_token(app.test_client(), token_of(app.test_client(), email=ADMIN))
    answer = client.post(f"/api/admin/users/{ada}/reset-mail")
    assert answer.status_code == 202, answer.json
    assert app.outbox.recipients == [ADA]
    assert ("reset_mailed", ada, admin_id, None) in trail(app)


def test_an_admin_turns_a_second_factor_off(app, admin):
    """409 without one; with one, it is off, the user's tokens end, and the event names the
    admin and says it was a reset."""
    ada = add_user(app, email=ADA)
    refused = admin.delete(f"/api/admin/users/{ada}/second-factor")
    assert refused.status_code == 409 and refused.json["error"]["detail"] == NO_FACTOR
    with app.app_context():
        user = db.session.get_one(User, ada)
        secret = second_factor.start(user)
        assert second_factor.enable(user, pyotp.TOTP(secret).now(), utc_now()) is not None
        token, _ = issue_token(user, timedelta(hours=1))
    assert admin.get(f"/api/admin/users/{ada}").json["second_factor"] is True
    answer = admin.delete(f"/api/admin/users/{ada}/second-factor")
    assert answer.status_code == 200 and answer.json["second_factor"] is False
    assert app.test_client().get("/api/auth/activity", headers=bearer(token)).status_code == 401
    assert ("second_factor_off", ada, admin.admin_id, "reset") in trail(app)


def test_a_failed_write_leaves_no_event_claiming_it(app, admin, monkeypatch):
    """When the database goes away after the event is recorded, before the change is done (ending
    the tokens), the answer is 503, the user is still active, and no event says it was
    deactivated; the same request later has both."""
    ada = add_user(app, email=ADA)

    def lost(*args, **kwargs):
        raise OperationalError("DELETE", {}, Exception("the server closed the connection"))

    with monkeypatch.context() as patched:
        patched.setattr(actions, "end_tokens", lost)
        assert admin.post(f"/api/admin/users/{ada}/deactivate").status_code == 503
    assert stored(app, ada).is_active
    assert "user_deactivated" not in [event[0] for event in trail(app)]
    assert admin.post(f"/api/admin/users/{ada}/deactivate").status_code == 200
    assert not stored(app, ada).is_active
    assert ("user_deactivated", ada, admin.admin_id, None) in trail(app)


def test_the_trail_answers_admins_and_each_user_their_own(app, admin):
    """An admin filters the trail by user, action and time; a user's token gets 403 there, and
    its own events (only) at /api/auth/activity."""
    ada = add_user(app, email=ADA)
    add_user(app, email=GRACE)
    ada_client = send_token(app.test_client(), token_of(app.test_client(), email=ADA))
    app.test_client().post("/api/auth/tokens", json={"email": GRACE, "password": "wrong one"})
    doc = document(app.test_client())
    mine = ada_client.get("/api/auth/activity")
    assert_conforms(doc, "/api/auth/activity", "get", mine)
    assert {event["user_id"] for event in mine.json["events"]} == {ada}
    assert ada_client.get("/api/admin/audit").status_code == 403
    everything = admin.get("/api/admin/audit")
    assert_conforms(doc, "/api/admin/audit", "get", everything)
    failed = admin.get("/api/admin/audit?action=sign_in_failed").json["events"]
    assert [event["detail"] for event in failed] == ["credentials"]
    assert admin.get(f"/api/admin/audit?user_id={ada}").json["events"][0]["user_id"] == ada
    assert admin.get("/api/admin/audit?since=2999-01-01T00:00:00").json["events"] == []
    assert admin.get("/api/admin/audit?action=no_such_action").status_code == 422
    for number in ("0.5", "1700000000"):  # not read as seconds since 1970
        assert admin.get(f"/api/admin/audit?until={number}").status_code == 422
