"""The admins' routes for a user's passkeys (with the pages, which add them): GET
/api/admin/users/<id>/passkeys lists them, DELETE /api/admin/users/<id>/passkeys/<passkey id>
removes one (a lost or stolen device): it signs in no more. The removal is in the audit trail,
naming its admin; a passkey id that is not this user's is a 404, never another user's passkey.
"""

from flask import Blueprint, Flask, g
from pydantic import Field
from sqlalchemy import delete
from werkzeug.exceptions import NotFound

from ..extensions import db
from ..platform.database import rows_changed
from ..platform.fields import MAX_ID
from ..platform.operations import Answer, Operation
from ..platform.rate_limits import limit_writes
from ..platform.routes import Access, access
from ..platform.timestamps import UtcTimestamp
from .accounts import User
from .admin_api import UserOut, target, user_body
from .audit import Action, record
from .passkeys import Passkey, passkeys_of

bp = Blueprint("admin_passkeys", __name__)


class PasskeyOut(Answer):
    """A passkey as an admin sees it: never its key or its credential id."""

    id: int = Field(ge=1)
    name: str
    created_at: UtcTimestamp
    last_used_at: UtcTimestamp | None
    backup_eligible: bool = Field(description="A synced passkey (it may be on several devices).")


class PasskeyList(Answer):
    """A user's passkeys, oldest first."""

    passkeys: list[PasskeyOut]


def remove(user: User, actor: User, passkey_id: int) -> None:
    """Remove one of ``user``'s passkeys (not committed), in the audit trail by ``actor``; raise
    NotFound when ``user`` has no passkey of this id (another user's included)."""
    missing = NotFound(f"This user has no passkey with id {passkey_id}.")
    if not 1 <= passkey_id <= MAX_ID:
        raise missing
    mine = (Passkey.id == passkey_id) & (Passkey.user_id == user.id)
    if not rows_changed(db.session.execute(delete(Passkey).where(mine))):
        raise missing
    record(Action.PASSKEY_REMOVED, user, actor=actor, detail=str(passkey_id))


@bp.get("/users/<id:user_id>/passkeys")
@access(Access.ADMIN)
def list_passkeys(user_id: int) -> dict[str, object]:
    """List a user's passkeys, oldest first."""
    rows = [
        PasskeyOut.model_validate(passkey, from_attributes=True)
        for passkey in passkeys_of(target(user_id).id)
    ]
    return PasskeyList(passkeys=rows).model_dump(mode="json")


@bp.delete("/users/<id:user_id>/passkeys/<id:passkey_id>")
@access(Access.ADMIN)
@limit_writes
def remove_passkey(user_id: int, passkey_id: int) -> dict[str, object]:
    """Remove one of a user's passkeys: it signs in no more."""
    user = target(user_id)
    remove(user, g.user, passkey_id)
    db.session.commit()
    db.session.refresh(user)
    return user_body(user)


OPERATIONS = {
    "admin_passkeys.list_passkeys": Operation(
        {"200": ("The user's passkeys, oldest first.", PasskeyList, ())},
        ("403", "404", "503"),
        texts={"404": "No user with this id."},
    ),
    "admin_passkeys.remove_passkey": Operation(
        {"200": ("The user, its passkey removed.", UserOut, ())},
        ("403", "404", "503"),
        texts={"404": "No user with this id, or no passkey of this id of the user."},
    ),
}


def init_app(app: Flask) -> None:
    """Serve the admins' passkey routes."""
    app.register_blueprint(bp, url_prefix="/api/admin")
