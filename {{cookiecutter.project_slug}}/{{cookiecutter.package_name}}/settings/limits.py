"""Check the rate limit settings (`limits`' notation) when the settings load."""

from typing import Annotated

from limits import parse_many
from pydantic import AfterValidator


def checked_limits(value: str) -> str:
    """Return a setting like ``60 per minute`` or ``10/second;600/minute``; raise ValueError."""
    try:
        if all(limit.amount >= 1 for limit in parse_many(value)):
            return value
    except ValueError:
        pass
    raise ValueError(
        "expected one or more limits like '60 per minute' or '10/second;600/minute', "
        "each of at least 1 request"
    )


def checked_optional_limits(value: str) -> str:
    """Return a limits setting that may be empty (no limit); raise ValueError otherwise."""
    return value if not value.strip() else checked_limits(value)


Limits = Annotated[str, AfterValidator(checked_limits)]
OptionalLimits = Annotated[str, AfterValidator(checked_optional_limits)]
