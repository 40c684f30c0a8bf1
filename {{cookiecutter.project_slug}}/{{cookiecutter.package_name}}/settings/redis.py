"""Check REDIS_URL when the settings load, without connecting."""

from typing import Annotated
from urllib.parse import urlsplit

import redis
from pydantic import AfterValidator


def checked_redis_url(value: str | None) -> str | None:
    """Return a REDIS_URL redis-py can use, or None for an empty one; raise ValueError."""
    if not value:
        return None
    redis.ConnectionPool.from_url(value)  # raises a ValueError saying what is wrong; no connection
    database = urlsplit(value).path.strip("/")
    if not value.startswith("unix:") and database and not database.isdigit():
        raise ValueError("the database of a Redis URL is a number (e.g. redis://localhost/0)")
    return value


RedisUrl = Annotated[str | None, AfterValidator(checked_redis_url)]
