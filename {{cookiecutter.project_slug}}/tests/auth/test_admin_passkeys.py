"""An admin lists and removes a user's passkeys, through the API and the pages: only that
user's, each removal in the audit trail naming the admin."""

from sqlalchemy import select

from {{ cookiecutter.package_name }}.auth.passkeys import Passkey
from {{ cookiecutter.package_name }}.extensions import db
from tests.auth.test_admin_api import ADA, GRACE, admin, trail
from tests.auth.test_admin_pages import PASSWORD, act
from tests.auth.test_admin_pages import admin as admin_pages
from tests.auth.test_api import add_user

__all__ = ["admin", "admin_pages"]  # the fixtures this module uses


def add_passkey(app, user_id: int, name: str) -> int:
    """Store a passkey of the user (its key is never read here); return its id."""
    with app.app_context():
        passkey = Passkey(
            user_id=user_id,
            credential_id=name.encode(),
            user_handle=b"handle",
            public_key=b"key",
            sign_count=0,
            backup_eligible=True,
            backed_up=True,
            name=name,
        )
        db.session.add(passkey)
        db.session.commit()
        return int(passkey.id)


def passkey_names(app) -> list[str]:
    """Return the names of every stored passkey, oldest first."""
    with app.app_context():
        return list(db.session.scalars(select(Passkey.name).order_by(Passkey.id)))


def test_an_admin_lists_and_removes_a_users_passkey_never_anothers(app, admin):
    """The list shows no key; another user's passkey id named under this user is a 404 and
    stays; this user's goes, once, and the trail names the admin."""
    ada, grace = add_user(app, email=ADA), add_user(app, email=GRACE)
    laptop, phone = add_passkey(app, ada, "Laptop"), add_passkey(app, grace, "Phone")
    listed = admin.get(f"/api/admin/users/{ada}/passkeys").json["passkeys"]
    assert [(p["id"], p["name"]) for p in listed] == [(laptop, "Laptop")]
    assert "public_key" not in listed[0] and "credential_id" not in listed[0]
    assert admin.delete(f"/api/admin/users/{ada}/passkeys/{phone}").status_code == 404
    assert admin.delete(f"/api/admin/users/{ada}/passkeys/{laptop}").status_code == 200
    assert admin.delete(f"/api/admin/users/{ada}/passkeys/{laptop}").status_code == 404
    assert passkey_names(app) == ["Phone"]
    assert ("passkey_removed", ada, admin.admin_id, str(laptop)) in trail(app)
    assert [event for event in trail(app) if event[1] == grace and event[2]] == []


def test_an_admin_removes_a_passkey_from_the_users_page(app, admin_pages):
    """The user's page lists its passkeys, each with a form that asks first; posting it
    removes that passkey and says so."""
    ada = add_user(app, email=ADA, password=PASSWORD)
    add_passkey(app, ada, "Laptop")
    page = admin_pages.get(f"/admin/users/{ada}").text
    assert "Laptop" in page and 'data-confirm="Remove the passkey' in page
    passkey_id = add_passkey(app, ada, "Phone")
    done = act(admin_pages, ada, f"passkeys/{passkey_id}/remove")
    assert "Passkey removed" in admin_pages.get(done.location).text
    assert passkey_names(app) == ["Laptop"]
