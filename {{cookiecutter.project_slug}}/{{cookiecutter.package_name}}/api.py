"""The example JSON API: create, read and list items."""

import logging
from typing import Annotated

from flask import Blueprint, abort, current_app, jsonify, request, url_for
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from werkzeug.routing import BaseConverter

from . import caching
from .errors import json_error
from .extensions import db
from .models import PROCESSED, Item, initial_state, item_created
from .rate_limits import limit_writes

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)
# The largest id and offset an INTEGER column holds on every supported database; larger ones are
# refused here instead of failing in the database.
MAX_ID = 2**31 - 1


class IdConverter(BaseConverter):
    """Match ids of ASCII digits only: ``\\d`` would take other scripts' digits as numbers."""

    regex = r"[0-9]{1,20}"

    def to_python(self, value: str) -> int:
        """Return the id as an int."""
        return int(value)


@bp.record_once
def _register_converters(state) -> None:
    """Make ``<id:...>`` available to the routes below (they are registered after this)."""
    state.app.url_map.converters["id"] = IdConverter


def _storable(value: str) -> str:
    """Refuse text a database cannot store: NUL characters and unpaired surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


# The document (openapi.py) states what _storable and stripping refuse, as patterns: no NUL, and
# for a name, one character that is not whitespace.
NO_NUL = "^[^\\u0000]*$"
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
Text = Annotated[str, AfterValidator(_storable), Field(json_schema_extra={"pattern": NO_NUL})]


class ItemIn(BaseModel):
    """The body accepted when creating an item."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    name: Text = Field(min_length=1, max_length=100, json_schema_extra={"pattern": NOT_BLANK})
    description: Text = Field("", max_length=2000)


class Page(BaseModel):
    """The paging query of the list endpoint."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=MAX_ID)


def _invalid(exc: ValidationError):
    """Answer 422 with one entry per invalid field."""
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]) or None, "message": error["msg"]}
        for error in exc.errors(include_url=False)
    ]
    return json_error(422, "Unprocessable Content", errors)


def add_item(data: ItemIn) -> dict:
    """Store a new item and return it as stored, then announce it (processing listens)."""
    item = Item(name=data.name, description=data.description, **initial_state())
    db.session.add(item)
    db.session.commit()
    log.info("item created", extra={"item_id": item.id})
    stored = item.to_dict()
    item_created.send(current_app._get_current_object(), item_id=item.id)
    return stored


@bp.post("/items")
@limit_writes
def create_item():
    """Create an item from a JSON object body."""
    body = request.get_json()
    if not isinstance(body, dict):
        abort(400, description="The body must be a JSON object.")
    try:
        data = ItemIn.model_validate(body)
    except ValidationError as exc:
        return _invalid(exc)
    item = add_item(data)
    response = jsonify(item)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_item", item_id=item["id"])
    return response


def item_key(item_id: int) -> str:
    """Name the cache entry of an item's answer: its JSON body, ready to send."""
    return f"item:{item_id}:json"


@bp.get("/items/<id:item_id>")
def get_item(item_id: int):
    """Return one item; the X-Cache header says whether the cache served it."""
    if not 1 <= item_id <= MAX_ID:
        abort(404, description=f"No item with id {item_id}.")
    key = item_key(item_id)
    body = caching.get(key)
    if body is not None:  # a hit is sent as stored: no decoding, no encoding
        app = current_app._get_current_object()
        response = app.response_class(body, mimetype=app.json.mimetype)
        response.headers["X-Cache"] = "hit"
        return response
    item = db.session.get(Item, item_id)
    if item is None:
        abort(404, description=f"No item with id {item_id}.")
    response = jsonify(item.to_dict())
    if item.status == PROCESSED:  # a pending item changes soon: never cache it
        ttl = current_app.extensions["settings"].cache_ttl_seconds
        caching.set(key, response.get_data(), timeout=ttl)
    response.headers["X-Cache"] = "miss"
    return response


@bp.get("/items")
def list_items():
    """List items, newest first, with limit/offset paging."""
    try:
        page = Page.model_validate(request.args.to_dict())
    except ValidationError as exc:
        return _invalid(exc)
    items = db.session.scalars(
        select(Item).order_by(Item.id.desc()).limit(page.limit).offset(page.offset)
    ).all()
    total = db.session.scalar(select(func.count()).select_from(Item))
    return jsonify(
        items=[item.to_dict() for item in items], total=total, limit=page.limit, offset=page.offset
    )
