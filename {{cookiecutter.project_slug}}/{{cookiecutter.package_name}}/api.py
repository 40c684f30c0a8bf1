"""The example JSON API: create, read and list items."""

import logging

from flask import Blueprint, abort, current_app, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select

from . import caching
from .extensions import db, limiter
from .models import Item

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)


class ItemIn(BaseModel):
    """The body accepted when creating an item."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=2000)


class Page(BaseModel):
    """The paging query of the list endpoint."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0)


def _invalid(exc: ValidationError):
    """Answer 422 with one entry per invalid field."""
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]) or None, "message": error["msg"]}
        for error in exc.errors(include_url=False)
    ]
    body = {"error": {"status": 422, "title": "Unprocessable Content", "detail": errors}}
    return jsonify(body), 422


def _write_limit() -> str:
    """Return the per-client limit for writes, from settings."""
    return current_app.extensions["settings"].ratelimit_write


@bp.post("/items")
@limiter.limit(_write_limit)
def create_item():
    """Create an item from a JSON object body."""
    body = request.get_json()
    if not isinstance(body, dict):
        abort(400, description="The body must be a JSON object.")
    try:
        data = ItemIn.model_validate(body)
    except ValidationError as exc:
        return _invalid(exc)
    item = Item(name=data.name, description=data.description)
    db.session.add(item)
    db.session.commit()
    log.info("item created", extra={"item_id": item.id})
    response = jsonify(item.to_dict())
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_item", item_id=item.id)
    return response


@bp.get("/items/<int:item_id>")
def get_item(item_id: int):
    """Return one item; the X-Cache header says whether the cache served it."""
    key = f"item:{item_id}"
    cached = caching.get(key)
    if cached is not None:
        response = jsonify(cached)
        response.headers["X-Cache"] = "hit"
        return response
    item = db.session.get(Item, item_id)
    if item is None:
        abort(404, description=f"No item with id {item_id}.")
    data = item.to_dict()
    caching.set(key, data, timeout=current_app.extensions["settings"].cache_ttl_seconds)
    response = jsonify(data)
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
