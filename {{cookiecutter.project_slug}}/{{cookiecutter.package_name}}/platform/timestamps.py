"""Timestamps as every part of the service stores and shows them: timezone-aware, in UTC."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def iso_utc(moment: datetime | None) -> str | None:
    """Format a timestamp alike on every backend (SQLite keeps no zone: its values are UTC)."""
    if moment is None:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")
