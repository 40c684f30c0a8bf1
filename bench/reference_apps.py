"""The references: the least a Flask app does for the same work as the service, written as a user
would write it by hand, served by plain gunicorn with the service's worker model (serve.py).

- ``create_flask_app``: /healthz alone, no logging.
- ``create_read_app``: ``GET /api/items/<id>`` on the service's own stack and data: Flask-Caching
  over Redis (``cache.get``; ``cache.set`` of a found row's dict), then Flask-SQLAlchemy's
  ``db.session.get`` on the bake's ``items`` table over psycopg; JSON 404 for an unknown id.
  No logging, metrics, limits or request ids. ``X-Cache`` says hit or miss, as the service does,
  so the bench can check that a cached read stays cached. It reads DATABASE_URL, REDIS_URL and
  CACHE_TTL_SECONDS from the environment the service is given.
"""

import os
from datetime import datetime

from flask import Flask
from flask_caching import Cache
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def create_flask_app() -> Flask:
    """Build a Flask app whose only route returns the JSON /healthz returns; no logging."""
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        """Answer 200 with a small JSON body."""
        return {"status": "ok"}

    return app


class Base(DeclarativeBase):
    """The declarative base of the one model."""


db = SQLAlchemy(model_class=Base)
cache = Cache()


class Item(db.Model):
    """The bake's items table, the columns the service answers."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def create_read_app() -> Flask:
    """Build a Flask app answering the primary-key read as the service does, cache-aside."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ["DATABASE_URL"],
        CACHE_TYPE="RedisCache",
        CACHE_REDIS_URL=os.environ["REDIS_URL"],
        CACHE_KEY_PREFIX="reference:",
        CACHE_DEFAULT_TIMEOUT=int(os.environ.get("CACHE_TTL_SECONDS", "60")),
    )
    db.init_app(app)
    cache.init_app(app)

    @app.get("/api/items/<int:item_id>")
    def read(item_id: int):
        """Answer an item from the cache, else from the database (caching it), else 404."""
        key = f"item:{item_id}"
        body = cache.get(key)
        if body is not None:
            return body, {"X-Cache": "hit"}
        item = db.session.get(Item, item_id)
        if item is None:
            return {"error": {"status": 404, "detail": f"No item with id {item_id}."}}, 404
        body = {
            "id": item.id,
            "name": item.name,
            "description": item.description,
            "created_at": item.created_at.isoformat(),
            "status": item.status,
            "processed_at": item.processed_at and item.processed_at.isoformat(),
        }
        cache.set(key, body)
        return body, {"X-Cache": "miss"}

    @app.get("/healthz")
    def healthz():
        """Answer 200 with a small JSON body."""
        return {"status": "ok"}

    return app
