"""The example JSON API: its routes, and the models of what they take and answer.

A read of a processed item is cached; a change or a delete forgets it once committed (see
platform/caching.py for why no read that began before can store the old answer).
"""

import logging
from typing import Literal, NoReturn

from flask import Blueprint, Flask, Response, abort, current_app, {% if cookiecutter.use_auth == "yes" %}g, {% endif %}jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, delete, func, select, update

from ..extensions import db
from ..platform import caching, database
from ..platform.fields import MAX_ID, NO_NUL, NOT_BLANK
from ..platform.operations import Answer, no_content
from ..platform.rate_limits import limit_writes
from ..platform.routes import Access, access
from ..platform.timestamps import UtcTimestamp
from .models import PROCESSED, Item, initial_state, item_created

bp = Blueprint("items", __name__)
log = logging.getLogger(__name__)


class ItemIn(BaseModel):
    """The body accepted when creating an item, or replacing its name and description."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, pattern=NOT_BLANK)
    description: str = Field("", max_length=2000, pattern=NO_NUL)


class Page(BaseModel):
    """The paging query of the list endpoint."""

    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=MAX_ID)


class ItemOut(Answer):
    """An item as the API answers it, read from its row: the one definition of the body and of its
    schema in the OpenAPI document (a column the answer should show is a field here)."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(ge=1)
    name: str
    description: str
    created_at: UtcTimestamp
    status: Literal["pending", "processed"]
    processed_at: UtcTimestamp | None


class ItemList(Answer):
    """One page of items, newest first, with the total count."""

    items: list[ItemOut]
    total: int = Field(ge=0)
    limit: int
    offset: int


def item_body(item: Item) -> dict[str, object]:
    """Return the JSON body of an item: its row, serialised by ItemOut."""
    return ItemOut.model_validate(item).model_dump(mode="json")


def add_item(data: ItemIn{% if cookiecutter.use_auth == "yes" %}, *, owner_id: int | None = None{% endif %}) -> dict[str, object]:
    """Store a new item and return it as stored, then announce it (processing listens)."""
    item = Item(name=data.name, description=data.description, **initial_state())
{%- if cookiecutter.use_auth == "yes" %}
    item.owner_id = owner_id
{%- endif %}
    db.session.add(item)
    db.session.commit()
    log.info("item created", extra={"item_id": item.id})
    stored = item_body(item)
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy
    item_created.send(app, item_id=item.id)
    return stored


@bp.post("/items")
@access(Access.SIGNED_IN_TO_WRITE)
@limit_writes
def create_item() -> tuple[dict[str, object], int, dict[str, str]]:
    """Create an item from a JSON object body."""
    body = request.get_json()
    if not isinstance(body, dict):
        abort(400, description="The body must be a JSON object.")
    item = add_item(ItemIn.model_validate(body){% if cookiecutter.use_auth == "yes" %}, owner_id=g.user.id{% endif %})
    return item, 201, {"Location": url_for("items.get_item", item_id=item["id"])}


def cache_key(item_id: int) -> str:
    """Return the cache key of an item's JSON body."""
    return f"item:{item_id}:json"


def cache_ttl() -> int:
    """Return the seconds a read is cached (CACHE_TTL_SECONDS; 0 caches nothing)."""
    ttl: int = current_app.extensions["settings"].cache_ttl_seconds
    return ttl


def no_such_item(item_id: int) -> NoReturn:
    """Answer 404: no item has this id."""
    abort(404, description=f"No item with id {item_id}.")


def refuse_unstorable(item_id: int) -> None:
    """Answer 404 for an id outside the column's range: no item has it, and the database would
    refuse the query (an error, not a miss)."""
    if not 1 <= item_id <= MAX_ID:
        no_such_item(item_id)


def changeable(item_id: int) -> list[ColumnElement[bool]]:
    """Return the conditions on the row of an item that the caller may change or delete."""
    conditions = [Item.id == item_id]
{%- if cookiecutter.use_auth == "yes" %}
    conditions.append(Item.owner_id == g.user.id)  # its owner's only
{%- endif %}
    return conditions


def refuse_change(item_id: int) -> NoReturn:
    """Answer a change that matched no row: the item is gone, or not one the caller may change."""
{%- if cookiecutter.use_auth == "yes" %}
    if db.session.get(Item, item_id) is not None:
        abort(403, description="Only the user who created an item may change or delete it.")
{%- endif %}
    no_such_item(item_id)


@bp.get("/items/<id:item_id>")
@access(Access.SIGNED_IN_TO_WRITE)
def get_item(item_id: int) -> tuple[bytes | Response, dict[str, str]]:
    """Return one item; the X-Cache header says whether the cache served it."""
    refuse_unstorable(item_id)
    body = caching.get(cache_key(item_id))
    if isinstance(body, bytes):  # a hit is sent as stored: no decoding, no encoding
        return body, {"Content-Type": "application/json", "X-Cache": "hit"}
    item = database.read_session().get(Item, item_id)
    if item is None:
        no_such_item(item_id)
    response = jsonify(item_body(item))
    if item.status == PROCESSED:  # a pending item changes soon: never cache it
        caching.keep(cache_key(item_id), response.get_data(), timeout=cache_ttl())
    return response, {"X-Cache": "miss"}


@bp.put("/items/<id:item_id>")
@access(Access.SIGNED_IN_TO_WRITE)
@limit_writes
def update_item(item_id: int) -> dict[str, object]:
    """Replace an item's name and description with those of a JSON object body."""
    body = request.get_json()
    if not isinstance(body, dict):
        abort(400, description="The body must be a JSON object.")
    data = ItemIn.model_validate(body)
    refuse_unstorable(item_id)
    # One statement: a concurrent delete or change leaves nothing half done, and no 500.
    changed = db.session.scalars(
        update(Item)
        .where(*changeable(item_id))
        .values(name=data.name, description=data.description)
        .returning(Item)
    ).one_or_none()
    stored = None if changed is None else item_body(changed)  # read before the commit ends it
    db.session.commit()
    if stored is None:
        refuse_change(item_id)
    caching.forget(cache_key(item_id), timeout=cache_ttl())
    log.info("item changed", extra={"item_id": item_id})
    return stored


@bp.delete("/items/<id:item_id>")
@access(Access.SIGNED_IN_TO_WRITE)
@limit_writes
def delete_item(item_id: int) -> Response:
    """Delete an item; of the same delete sent twice at once, one answers 204, the other 404."""
    refuse_unstorable(item_id)
    deleted = db.session.scalars(
        delete(Item).where(*changeable(item_id)).returning(Item.id)
    ).one_or_none()
    db.session.commit()
    if deleted is None:
        refuse_change(item_id)
    caching.forget(cache_key(item_id), timeout=cache_ttl())
    log.info("item deleted", extra={"item_id": item_id})
    return no_content()


@bp.get("/items")
@access(Access.SIGNED_IN_TO_WRITE)
def list_items() -> dict[str, object]:
    """List items, newest first, with limit/offset paging."""
    page = Page.model_validate(request.args.to_dict())
    session = database.read_session()
    rows = session.scalars(
        select(Item).order_by(Item.id.desc()).limit(page.limit).offset(page.offset)
    )
    total = session.execute(select(func.count()).select_from(Item)).scalar_one()
    items = [ItemOut.model_validate(row) for row in rows]
    return ItemList(items=items, total=total, **page.model_dump()).model_dump(mode="json")
