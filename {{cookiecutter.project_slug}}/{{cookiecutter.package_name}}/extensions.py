"""The database extension, created once and bound to the app by platform/database.py."""

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Base class of the ORM models."""


db = SQLAlchemy(model_class=Base)
