"""The OpenAPI 3.1 document of the service, built from the code and served at /openapi.json.

Paths, methods and path parameters come from the URL map; the schemas from the pydantic models
(those api.py validates input with, and responses.py's answers); the statuses and headers each
route answers are listed in OPERATIONS below. A route missing from it fails the document (and
the test that builds it): a new route is documented or the tests say so.
"""

import html
import re
from string import Template
from typing import NamedTuple

from apispec import APISpec
from flask import Blueprint, Flask, current_app, jsonify
from pydantic import BaseModel
from werkzeug.routing import Rule

from . import api, responses
from .rate_limits import is_limited

bp = Blueprint("openapi", __name__)
TITLE = "{{ cookiecutter.project_name | replace('"', '\\"') }}"
VERSION = "0.1.0"
REF = "#/components/schemas/{model}"
RULE_PART = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
CONVERTERS = {"id": {"type": "integer", "minimum": 0}, "int": {"type": "integer", "minimum": 0}}
# Not the API: static files, and the metrics scrapers read on the app's own port (a public
# proxy in front answers 404 for them, so the public document must not promise them).
UNDOCUMENTED_ENDPOINTS = {"static", "metrics"}
# Not the API either: blueprints of HTML pages and of the development toolbar, when present.
UNDOCUMENTED_BLUEPRINTS = {"pages", "debugtoolbar", "_debug_toolbar"}
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
NUMBER = {"type": "string", "pattern": "^[0-9]+$"}
HEADERS = {
    "X-Request-ID": {
        "description": "The request's id: the caller's X-Request-ID when it is 1 to 128 of "
        "A-Z a-z 0-9 . _ : - (else a new one). Logs carry it.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": NUMBER,
    },
    "X-RateLimit-Limit": {"description": "Requests allowed per window (the tightest limit)."},
    "X-RateLimit-Remaining": {"description": "Requests left in the current window."},
    "X-RateLimit-Reset": {"description": "When the window ends, in seconds since the epoch."},
    "Location": {"description": "The new item's URL.", "required": True},
    "X-Cache": {
        "description": "Whether the cache served the item.",
        "required": True,
        "schema": {"type": "string", "enum": ["hit", "miss"]},
    },
}
# The development-only page at /docs: Swagger UI, pinned, from a CDN, checked by its SRI hashes.
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0"
DOCS_PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title API</title>
<link rel="stylesheet" href="$cdn/swagger-ui.css" crossorigin="anonymous"
 integrity="sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I">
</head><body><div id="ui"></div>
<script src="$cdn/swagger-ui-bundle.js" crossorigin="anonymous"
 integrity="sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"></script>
<script>SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui" });</script>
</body></html>
""")
ERRORS = {
    "400": ("The body is not JSON, or not a JSON object.", ()),
    "404": ("No such item.", ()),
    "413": ("The body is larger than MAX_CONTENT_LENGTH.", ()),
    "415": ("The body is not declared as application/json.", ()),
    "422": ("Invalid fields; the detail lists them.", ()),
    "429": ("A rate limit is exceeded.", ("Retry-After",)),
    "503": ("The database failed (unreachable, read-only, locked or too slow).", ("Retry-After",)),
}


class Operation(NamedTuple):
    """What one route answers: its success and error statuses, and the models of its input."""

    success: dict[str, tuple[str, type[BaseModel] | None, tuple[str, ...]]]
    errors: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    media_type: str = "application/json"


OPERATIONS = {
    "health.healthz": Operation({"200": ("The process answers.", responses.Liveness, ())}),
    "health.readyz": Operation(
        {
            "200": (
                "Every hard dependency answers (soft ones may be degraded).",
                responses.Readiness,
                (),
            ),
            "503": ("A hard dependency failed or did not answer in time.", responses.Readiness, ()),
        }
    ),
    "api.create_item": Operation(
        {"201": ("The item was created.", responses.Item, ("Location",))},
        ("400", "413", "415", "422", "503"),
        body=api.ItemIn,
    ),
    "api.get_item": Operation({"200": ("The item.", responses.Item, ("X-Cache",))}, ("404", "503")),
    "api.list_items": Operation(
        {"200": ("A page of items, newest first.", responses.ItemList, ())},
        ("422", "503"),
        query=api.Page,
    ),
    "openapi.document": Operation({"200": ("This document.", None, ())}),
    "openapi.docs": Operation(
        {"200": ("This document in Swagger UI.", None, ())}, media_type="text/html"
    ),
}


def schema_ref(spec: APISpec, model: type[BaseModel], mode: str = "serialization") -> dict:
    """Register a model's JSON schema (and those it nests) as components; return its $ref."""
    schema = model.model_json_schema(ref_template=REF, mode=mode)
    for name, nested in schema.pop("$defs", {}).items():
        if name not in spec.components.schemas:
            spec.components.schema(name, nested)
    if model.__name__ not in spec.components.schemas:
        spec.components.schema(model.__name__, schema)
    return {"$ref": REF.format(model=model.__name__)}


def _response(spec: APISpec, description, model, headers, limited, media="application/json"):
    """Return a response object with its headers (X-Request-ID always)."""
    names = ["X-Request-ID", *headers, *(RATE_LIMIT_HEADERS if limited else ())]
    body = schema_ref(spec, model) if model else {"type": "object"}
    return {
        "description": description,
        "headers": {name: name for name in names},
        "content": {media: {"schema": body if media == "application/json" else {"type": "string"}}},
    }


def _parameters(rule: Rule, query: type[BaseModel] | None) -> list[dict]:
    """Return the path parameters of a rule (typed by converter) and the query model's fields."""
    found = [
        {
            "in": "path",
            "name": part["name"],
            "required": True,
            "schema": CONVERTERS.get(part["converter"], {"type": "string"}),
        }
        for part in RULE_PART.finditer(rule.rule)
    ]
    if query is not None:
        schema = query.model_json_schema(mode="validation")
        for name, field in schema["properties"].items():
            required = name in schema.get("required", ())
            found.append({"in": "query", "name": name, "required": required, "schema": field})
    return found


def _operation(spec: APISpec, view, rule: Rule, operation: Operation, limited: bool) -> dict:
    """Return the OpenAPI operation of one route (``limited``: its requests are counted)."""
    answers = {
        status: _response(spec, *success, limited, operation.media_type)
        for status, success in operation.success.items()
    }
    for status in (*operation.errors, *(("429",) if limited else ())):
        description, headers = ERRORS[status]
        answers[status] = _response(spec, description, responses.Error, headers, limited)
    documented = {
        "operationId": rule.endpoint.replace(".", "_"),
        "summary": (view.__doc__ or rule.endpoint).strip().splitlines()[0],
        "tags": [rule.endpoint.split(".")[0]],
        "parameters": _parameters(rule, operation.query),
        "responses": answers,
    }
    if operation.body is not None:
        body = schema_ref(spec, operation.body, mode="validation")
        documented["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return documented


def build(app: Flask) -> dict:
    """Return the document of every route of ``app``; raise KeyError for an undocumented one."""
    spec = APISpec(title=TITLE, version=VERSION, openapi_version="3.1.0")
    for name, header in HEADERS.items():
        spec.components.header(name, {"schema": {"type": "string"}, **header})
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.endpoint in UNDOCUMENTED_ENDPOINTS:
            continue
        if rule.endpoint.partition(".")[0] in UNDOCUMENTED_BLUEPRINTS:
            continue
        operation = OPERATIONS.get(rule.endpoint)
        if operation is None:
            raise KeyError(f"route {rule.rule} ({rule.endpoint}) is not in openapi.OPERATIONS")
        view = app.view_functions[rule.endpoint]
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        limited = is_limited(app, rule.endpoint)
        documented = {m.lower(): _operation(spec, view, rule, operation, limited) for m in methods}
        spec.path(RULE_PART.sub(r"{\g<name>}", rule.rule), operations=documented)
    return spec.to_dict()


@bp.get("/openapi.json")
def document():
    """Return the OpenAPI 3.1 document of this service."""
    app = current_app._get_current_object()
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = build(app)
    return jsonify(app.extensions["openapi"])


def docs():
    """Show this document in Swagger UI (development only)."""
    return DOCS_PAGE.substitute(title=html.escape(TITLE), cdn=SWAGGER_UI)


def init_app(app: Flask) -> None:
    """Serve the document at /openapi.json, and the /docs page in development."""
    if app.extensions["settings"].app_env == "development":
        app.add_url_rule("/docs", endpoint="openapi.docs", view_func=docs)
    app.register_blueprint(bp)
