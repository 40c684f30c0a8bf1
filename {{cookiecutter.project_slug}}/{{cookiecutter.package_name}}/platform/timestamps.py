"""Timestamps as every part of the service stores and shows them: timezone-aware, in UTC."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer, WithJsonSchema


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Return the moment in UTC (SQLite keeps no zone: its values are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_utc(moment: datetime | None) -> str | None:
    """Format a timestamp alike on every backend: UTC, microseconds, +00:00."""
    return None if moment is None else as_utc(moment).isoformat(timespec="microseconds")


# A timestamp field of an answer model: read as UTC, written by iso_utc, documented as date-time.
UtcTimestamp = Annotated[
    datetime,
    AfterValidator(as_utc),
    PlainSerializer(iso_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
