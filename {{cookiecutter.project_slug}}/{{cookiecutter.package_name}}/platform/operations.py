"""What the service answers: the error body, the headers, the statuses a route may answer, and
the operations of the platform's own routes (probes, this document). Each feature lists its own
routes' operations beside them; openapi.py builds the document from all of them.
"""

from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple

from flask import Flask, Response
from pydantic import BaseModel, ConfigDict, Field


class Answer(BaseModel):
    """A body the service answers: its schema refuses properties it does not list, so an answer
    that drifts from the document fails the tests and `make contract`."""

    model_config = ConfigDict(extra="forbid")


class FieldError(Answer):
    """One invalid field of a 422 answer."""

    field: str | None = Field(description="The field's dotted path; null for the whole input.")
    message: str


class ErrorDetail(Answer):
    """What went wrong: the HTTP status, its title, and a sentence or the invalid fields."""

    status: int = Field(ge=400, le=599)
    title: str
    detail: str | list[FieldError] | None


class Error(Answer):
    """The one JSON error body of the service (errors.py), whatever the status."""

    error: ErrorDetail


class Liveness(Answer):
    """The process answers."""

    status: Literal["ok"]


class CheckResult(Answer):
    """How one readiness check went."""

    status: Literal["ok", "error", "degraded"]
    duration_ms: float | None = None
    error: str | None = None
{%- if cookiecutter.use_celery == "yes" %}
    length: int | None = Field(None, ge=0, description="Tasks waiting (the task queue's check).")
{%- endif %}


class Readiness(Answer):
    """Each dependency's check; the status is "unavailable" when a hard one failed."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, CheckResult]


LIMITER_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
RATE_LIMIT_HEADERS = ("Retry-After", *LIMITER_HEADERS)
NUMBER = "^[0-9]+$"
# name -> (description, pattern of its value). The limiter sends LIMITER_HEADERS on each answer
# of a limited route while it is enabled (not with APP_ENV=test), Retry-After on its 429s; other
# headers where listed.
HEADERS = {
    "X-Request-ID": ("The request's id: the caller's if well-formed.", "^[A-Za-z0-9._:-]{1,128}$"),
    "Retry-After": ("Seconds to wait before retrying.", NUMBER),
    "Location": ("The new resource's URL.", "^/"),
    "X-Cache": ("Whether the cache served the answer.", "^(hit|miss)$"),
    "X-RateLimit-Limit": ("Requests allowed per window (the tightest limit).", NUMBER),
    "X-RateLimit-Remaining": ("Requests left in the current window.", NUMBER),
    "X-RateLimit-Reset": ("When the window ends, in seconds since the epoch.", NUMBER),
{%- if cookiecutter.use_auth == "yes" %}
    "WWW-Authenticate": ("The scheme to use: a bearer token (RFC 6750).", "^Bearer realm="),
    "Cache-Control": ("The answer holds a secret: never store it.", "^no-store$"),
{%- endif %}
}
# status -> (description, headers): the platform's defaults; an Operation's ``texts`` says what
# one of its own statuses means instead.
ERRORS = {
    "400": ("The body is not JSON, or not a JSON object.", ()),
{%- if cookiecutter.use_auth == "yes" %}
    "401": ("No valid bearer token, or a wrong email or password.", ("WWW-Authenticate",)),
    "403": ("The request is not allowed.", ()),
    "409": ("The request does not fit the resource's state now.", ()),
{%- endif %}
    "404": ("No such resource.", ()),
    "413": ("The body is larger than MAX_CONTENT_LENGTH.", ()),
    "415": ("The body is not declared as application/json.", ()),
    "422": ("Invalid fields; the detail lists them.", ()),
    "429": ("A rate limit is exceeded.", ("Retry-After",)),
    "503": ("The database failed (unreachable, read-only, locked or too slow).", ("Retry-After",)),
}


def no_content() -> Response:
    """Return a 204: no body, so no Content-Type either (Flask would name text/html)."""
    answer = Response(status=204)
    answer.headers.remove("Content-Type")
    return answer


Success = tuple[str, type[BaseModel] | None, tuple[str, ...]]  # description, body, headers


class Operation(NamedTuple):
    """What one route answers: its success and error statuses, and the models of its input."""

    success: dict[str, Success]
    errors: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    media_type: str = "application/json"  # empty: no body (a 204)
    texts: Mapping[str, str] = MappingProxyType({})  # status -> its description, for this route


OPERATIONS = {
    "health.healthz": Operation({"200": ("The process answers.", Liveness, ())}),
    "health.readyz": Operation(
        {
            "200": ("Every hard dependency answers (soft ones may be degraded).", Readiness, ()),
            "503": ("A hard dependency failed or did not answer in time.", Readiness, ()),
        }
    ),
    "openapi.document": Operation({"200": ("This document.", None, ())}),
    "openapi.docs": Operation(
        {"200": ("This document in Swagger UI.", None, ())}, media_type="text/html"
    ),
}


class Security(NamedTuple):
    """How a feature's routes are authenticated: its schemes, which requests need one, and which
    routes refuse (403) a valid credential that lacks a role, with what text."""

    schemes: dict[str, dict[str, str]]
    needed: Callable[[Flask, str, Collection[str]], bool]  # (app, endpoint, methods) -> bool
    role_needed: Callable[[Flask, str], bool]  # (app, endpoint) -> bool
    refusal: str  # what its 403 means
