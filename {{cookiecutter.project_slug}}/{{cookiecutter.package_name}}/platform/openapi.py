"""The OpenAPI 3.1 document of the service, served at /openapi.json: its paths from the URL
map but pages (routes declaring Access.PAGE), the rest from the operations each feature describes
(a route missing from them fails the document).
"""

import functools
import re
from typing import Any

from flask import Blueprint, Flask, current_app
from flask.typing import RouteCallable
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode
from werkzeug.routing import Rule

from .operations import (
    ERRORS,
    HEADERS,
    LIMITER_HEADERS,
    OPERATIONS,
    RATE_LIMIT_HEADERS,
    Error,
    Operation,
    Security,
    Success,
)
from .rate_limits import is_limited
from .routes import Access, access, declared

bp = Blueprint("openapi", __name__)
TITLE = "{{ cookiecutter.project_name | replace('"', '\\"') }}"
REF = "#/components/schemas/{model}"
JSON = dict[str, object]  # a part of the document
RULE_PART = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
CONVERTERS = {"id": {"type": "integer", "minimum": 0}, "int": {"type": "integer", "minimum": 0}}
HIDDEN = "openapi_undocumented"  # set on a view by undocumented
# The development-only page at /docs: Swagger UI, pinned, from a CDN, checked by its SRI hashes.
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ cookiecutter.project_name | e }} API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/swagger-ui.css"
 integrity="sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I"
 crossorigin="anonymous"></head><body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/swagger-ui-bundle.js"
 integrity="sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
 crossorigin="anonymous"></script>
<script>SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui" });</script></body></html>
"""


def undocumented(view: RouteCallable) -> RouteCallable:
    """Leave the view below out of the document: not the API (the metrics scrapers read on the
    app's own port; a public proxy in front answers 404 for it, so the document must not promise
    it). Pages (routes declaring Access.PAGE) and static files are left out without it."""
    setattr(view, HIDDEN, True)
    return view


def is_documented(app: Flask, endpoint: str) -> bool:
    """Say whether the document lists a route: neither marked undocumented, a page nor Flask's
    static files."""
    hidden = getattr(app.view_functions.get(endpoint), HIDDEN, False)
    return not hidden and endpoint != "static" and declared(app, endpoint) is not Access.PAGE


@functools.cache
def json_schema(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
    """Return a model's JSON schema, those it nests under "$defs": made once per model and mode,
    though most operations name the same error model. Callers must not change it."""
    return model.model_json_schema(ref_template=REF, mode=mode)


def schema_ref(schemas: JSON, model: type[BaseModel], mode: JsonSchemaMode) -> JSON:
    """Add a model's JSON schema (and those it nests) to ``schemas``; return its $ref."""
    schema = dict(json_schema(model, mode))  # a copy: the "$defs" are taken out of it
    schemas.update({**schema.pop("$defs", {}), model.__name__: schema})
    return {"$ref": REF.format(model=model.__name__)}


def answer(schemas: JSON, success: Success, limited: bool, media: str = "application/json") -> JSON:
    """Return a response object: its body (none if ``media`` is empty), its headers."""
    description, model, headers = success
    names = ["X-Request-ID", *headers, *(LIMITER_HEADERS if limited else ())]
    body = schema_ref(schemas, model, "serialization") if model else {"type": "object"}
    found: JSON = {
        "description": description,
        "headers": {name: {"$ref": f"#/components/headers/{name}"} for name in names},
    }
    if media:
        schema = body if media == "application/json" else {"type": "string"}
        found["content"] = {media: {"schema": schema}}
    return found


def parameters(schemas: JSON, rule: Rule, query: type[BaseModel] | None) -> list[JSON]:
    """Return the path parameters of a rule (typed by converter) and the query model's fields
    (adding the schemas they name, an enumeration's, to ``schemas``)."""
    found = [
        {"in": "path", "name": name, "required": True, "schema": CONVERTERS.get(kind, {})}
        for kind, name in RULE_PART.findall(rule.rule)
    ]
    schema = dict(json_schema(query, "validation")) if query else {"properties": {}}
    schemas.update(schema.pop("$defs", {}))
    for name, field in schema["properties"].items():
        required = name in schema.get("required", ())
        found.append({"in": "query", "name": name, "required": required, "schema": field})
    return found


def operation(
    schemas: JSON, app: Flask, rule: Rule, documented: Operation, security: Security | None
) -> JSON:
    """Return the OpenAPI operation of one route; it answers 429 if its requests are counted,
    401 if it needs authentication, and 403 if it needs a role too."""
    limited = is_limited(app, rule.endpoint)
    answers = {
        status: answer(schemas, success, limited, documented.media_type)
        for status, success in documented.success.items()
    }
    protected = security is not None and security.needed(app, rule.endpoint, rule.methods or ())
    texts = dict(documented.texts)
    errors = [*documented.errors, *(("401",) if protected else ())]
    if protected and security is not None and security.role_needed(app, rule.endpoint):
        errors.append("403")
        texts.setdefault("403", security.refusal)
    for status in dict.fromkeys((*errors, *(("429",) if limited else ()))):
        description, headers = ERRORS[status]
        text = texts.get(status, description)
        answers[status] = answer(schemas, (text, Error, headers), limited)
    found: JSON = {
        "summary": (app.view_functions[rule.endpoint].__doc__ or rule.endpoint).splitlines()[0],
        "parameters": parameters(schemas, rule, documented.query),
        "responses": answers,
    }
    if protected and security is not None:
        found["security"] = [{name: []} for name in security.schemes]
    if documented.body is not None:
        body = {"schema": schema_ref(schemas, documented.body, mode="validation")}
        found["requestBody"] = {"required": True, "content": {"application/json": body}}
    return found


def build(app: Flask) -> JSON:
    """Return the document of every route of ``app``; raise KeyError for an undocumented one."""
    operations: dict[str, Operation] = app.extensions["openapi_operations"]
    security: Security | None = app.extensions["openapi_security"]
    schemas: JSON = {}
    paths: dict[str, JSON] = {}
    for rule in app.url_map.iter_rules():
        if not is_documented(app, rule.endpoint):
            continue
        if rule.endpoint not in operations:
            raise KeyError(f"route {rule.rule} ({rule.endpoint}) is not in any OPERATIONS")
        documented = operation(schemas, app, rule, operations[rule.endpoint], security)
        path = paths.setdefault(RULE_PART.sub(r"{\g<name>}", rule.rule), {})
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}  # Flask adds these to each rule
        path.update({method.lower(): documented for method in methods})
    headers = {
        name: {
            "description": description,
            "required": name not in RATE_LIMIT_HEADERS,
            "schema": {"type": "string", "pattern": pattern},
        }
        for name, (description, pattern) in HEADERS.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "headers": headers,
            **({"securitySchemes": security.schemes} if security else {}),
        },
    }


@bp.get("/openapi.json")
@access(Access.ANYONE)
def document() -> JSON:
    """Return the OpenAPI 3.1 document of this service."""
    found: JSON = current_app.extensions.get("openapi") or build(current_app)
    current_app.extensions["openapi"] = found
    return found


@access(Access.ANYONE)
def docs() -> str:
    """Show this document in Swagger UI (development only)."""
    return DOCS_PAGE


def describe(app: Flask, operations: dict[str, Operation]) -> None:
    """Add what a feature's routes answer to the document (a feature's init_app calls it)."""
    app.extensions.setdefault("openapi_operations", {}).update(operations)


def secure(app: Flask, security: Security) -> None:
    """Say how routes authenticate (the feature that checks credentials calls it)."""
    app.extensions["openapi_security"] = security


def init_app(app: Flask) -> None:
    """Serve the document of the operations the features described (and the platform's own) at
    /openapi.json, and the /docs page in development."""
    describe(app, OPERATIONS)
    app.extensions.setdefault("openapi_security", None)
    if app.extensions["settings"].app_env == "development":
        app.add_url_rule("/docs", endpoint="openapi.docs", view_func=docs)
    app.register_blueprint(bp)
