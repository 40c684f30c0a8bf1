"""Unbound extension objects, created once and bound to the app by each concern."""

from flask import current_app
from flask_caching import Cache
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Base class of the ORM models."""


db = SQLAlchemy(model_class=Base)
cache = Cache()


def _default_limit() -> str:
    """Return the running app's default per-client limit (read per app, not fixed at import)."""
    return current_app.extensions["settings"].ratelimit_default


limiter = Limiter(key_func=get_remote_address, default_limits=[_default_limit])
