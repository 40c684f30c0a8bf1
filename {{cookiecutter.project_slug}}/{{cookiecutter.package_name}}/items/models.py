"""ORM models of the example API (what it answers of them: `ItemOut` in api.py)."""

from datetime import datetime

from blinker import Namespace
from sqlalchemy import DateTime, {% if cookiecutter.use_auth == "yes" %}ForeignKey, {% endif %}String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..platform.timestamps import utc_now

PENDING, PROCESSED = "pending", "processed"
# Sent by the API once a new item is committed (with its id); background processing listens.
item_created = Namespace().signal("item-created")
# New items wait for the background task that processes them, or are processed when created.
PROCESSED_BY_TASK = {{ "True" if cookiecutter.use_celery == "yes" else "False" }}


def initial_state() -> dict[str, object]:
    """Return the status fields of a new item: pending its task, or processed at once."""
    if PROCESSED_BY_TASK:
        return {"status": PENDING, "processed_at": None}
    now = utc_now()
    return {"status": PROCESSED, "created_at": now, "processed_at": now}


class Item(db.Model):  # type: ignore[name-defined, misc]  # made at run time: mypy#8603
    """A named thing, the resource of the example API."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, server_default=func.now()
    )
    status: Mapped[str] = mapped_column(String(20), server_default=PROCESSED)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
{%- if cookiecutter.use_auth == "yes" %}
    # Who created it through the API or the pages; none for items made before users or seeded.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
{%- endif %}
