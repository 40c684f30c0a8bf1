"""The shapes of the service's answers as pydantic models: the OpenAPI document's response schemas.

The views build their JSON with ``jsonify``; these models describe it (the contract tests check
that real answers match them).
"""

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field


class FieldError(BaseModel):
    """One invalid field of a 422 answer."""

    field: str | None = Field(description="The field's dotted path; null for the whole input.")
    message: str


class ErrorDetail(BaseModel):
    """What went wrong: the HTTP status, its title, and a sentence or the invalid fields."""

    status: int = Field(ge=400, le=599)
    title: str
    detail: str | list[FieldError] | None


class Error(BaseModel):
    """The one JSON error body of the service (errors.py), whatever the status."""

    error: ErrorDetail


class Item(BaseModel):
    """An item as the API returns it."""

    id: int = Field(ge=1)
    name: str
    description: str
    created_at: AwareDatetime
    status: Literal["pending", "processed"]
    processed_at: AwareDatetime | None


class ItemList(BaseModel):
    """One page of items, newest first, with the total count."""

    items: list[Item]
    total: int = Field(ge=0)
    limit: int
    offset: int


class Liveness(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class CheckResult(BaseModel):
    """How one readiness check went."""

    status: Literal["ok", "error", "degraded"]
    duration_ms: float | None = None
    error: str | None = None


class Readiness(BaseModel):
    """Each dependency's check; the status is "unavailable" when a hard one failed."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, CheckResult]
