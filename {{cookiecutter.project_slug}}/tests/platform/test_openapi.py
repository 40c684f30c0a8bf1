"""The OpenAPI document: valid, complete, and true to what the service answers.

`make contract` fuzzes a running service against it; these tests check it in-process.
"""

import re

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.items import operations as items_operations
from {{ cookiecutter.package_name }}.platform import health, openapi, routes
from {{ cookiecutter.package_name }}.platform.operations import ERRORS
from {{ cookiecutter.package_name }}.platform.routes import Access
from tests.conftest import {% if cookiecutter.use_auth == "yes" %}send_token, {% endif %}writer_of

PATH_PARAMETER = re.compile(r"<(?:[^>:]+:)?([^>]+)>")


def document(client) -> dict:
    """Return the document the service serves."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json


def body_schema(doc: dict, answer: dict) -> dict:
    """Return the JSON schema of an answer's body, with the components it refers to."""
    return {**answer["content"]["application/json"]["schema"], "components": doc["components"]}


def assert_conforms(doc: dict, path: str, method: str, response) -> None:
    """Assert that the document lists this answer: status, media type, body and its headers."""
    documented = doc["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, (response.status_code, response.data)
    answer = documented[str(response.status_code)]
    media_type = response.mimetype
    if not media_type:  # no body (a 204): the document lists no content either
        assert "content" not in answer and not response.data
    else:
        assert media_type in answer["content"], media_type
    components = doc["components"]
    if media_type == "application/json":
        OAS31Validator(body_schema(doc, answer)).validate(response.json)
    for name, ref in answer["headers"].items():
        header = components["headers"][ref["$ref"].rsplit("/", 1)[1]]
        value = response.headers.get(name)
        if value is None:
            assert not header.get("required"), f"{name} is missing"
        else:
            OAS31Validator(header["schema"]).validate(value)
    sent = {name for name in components["headers"] if name in response.headers}
    assert sent <= answer["headers"].keys(), f"undocumented: {sent - answer['headers'].keys()}"


def test_the_document_is_valid_openapi_3_1(client):
    """It serves a document that passes the OpenAPI 3.1 validator."""
    doc = document(client)
    assert doc["openapi"] == "3.1.0"
    validate(doc)


@pytest.mark.parametrize("app_env", ["test", "development"])
def test_every_route_and_method_is_documented(make_app, app_env):
    """It documents every URL rule of the app (the development page included) and its methods.

    Only static files, the scrapers' /metrics (not published by a public proxy) and the pages
    (routes declaring Access.PAGE) stay out.
    """
    app = make_app(app_env=app_env)
    paths = document(app.test_client())["paths"]
    assert "/metrics" not in paths
    hidden = {"static", "metrics"}  # Flask's static files; the scrapers' route, marked undocumented
    assert {e for e in app.view_functions if not openapi.is_documented(app, e)} - hidden == {
        e for e in app.view_functions if routes.declared(app, e) is Access.PAGE
    }
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in hidden and routes.declared(app, rule.endpoint) is not Access.PAGE
    ]
    assert ("openapi.docs" in {rule.endpoint for rule in rules}) == (app_env == "development")
    for rule in rules:
        path = PATH_PARAMETER.sub(r"{\1}", rule.rule)
        assert path in paths, rule.rule
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], (rule.rule, method)


def test_a_route_says_what_its_own_errors_mean(client):
    """It describes a status in a route's own words where its operation has them (texts), in
    the platform's elsewhere."""
    paths = document(client)["paths"]
    own = items_operations.OPERATIONS["items.get_item"].texts["404"]
    assert paths["/api/items/{item_id}"]["get"]["responses"]["404"]["description"] == own
    assert paths["/api/items"]["get"]["responses"]["422"]["description"] == ERRORS["422"][0]


def test_an_undocumented_route_fails_the_document(make_app):
    """It refuses to build a document that leaves a route out."""
    app = make_app()
    app.add_url_rule("/new", endpoint="new", view_func=lambda: "")
    with pytest.raises(KeyError, match="/new"):
        openapi.build(app)


@pytest.mark.parametrize(
    ("name", "status"), [(" a ", 201), ("", 422), (" \t\n", 422), ("a\x00b", 422), ("\x00", 422)]
)
def test_the_body_schema_accepts_the_names_the_app_accepts(writer, name, status):
    """It documents the names the app refuses (found fuzzing: NUL or blank names looked valid)."""
    doc = document(writer)
    body = doc["paths"]["/api/items"]["post"]["requestBody"]["content"]["application/json"]
    valid = OAS31Validator({**body["schema"], "components": doc["components"]}).is_valid
    assert writer.post("/api/items", json={"name": name}).status_code == status
    assert valid({"name": name}) == (status == 201)


def test_a_property_the_document_does_not_list_fails_the_check(writer):
    """It refuses an item answered with a property its schema lacks (a column shown in the answer
    but missing from the document): the answer models are the document, and nothing else."""
    created = writer.post("/api/items", json={"name": "a"})
    listed = writer.get("/api/items")
    doc = document(writer)
    answers = [(created, "post", "201"), (listed, "get", "200")]
    for response, method, status in answers:
        schema = body_schema(doc, doc["paths"]["/api/items"][method]["responses"][status])
        assert OAS31Validator(schema).is_valid(response.json)
    drifted = [{**created.json, "unlisted": "x"}, {**listed.json, "unlisted": "x"}]
    drifted.append({**listed.json, "items": [{**listed.json["items"][0], "unlisted": "x"}]})
    for body, (_, method, status) in zip(drifted, [*answers, answers[1]], strict=True):
        schema = body_schema(doc, doc["paths"]["/api/items"][method]["responses"][status])
        assert not OAS31Validator(schema).is_valid(body), body


def test_the_docs_page_is_served_in_development_only(make_app):
    """It serves /docs, pointing at /openapi.json, only with APP_ENV=development."""
    assert make_app().test_client().get("/docs").status_code == 404
    page = make_app(app_env="development").test_client().get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert '"/openapi.json"' in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "method", "request_args", "status"),
    [
        ("/api/items", "post", {"json": {"name": "a"}}, 201),
        ("/api/items", "post", {"data": "{", "content_type": "application/json"}, 400),
        ("/api/items", "post", {"json": ["a list"]}, 400),
        ("/api/items", "post", {"data": "x" * 2048, "content_type": "application/json"}, 413),
        ("/api/items", "post", {"data": "name=a"}, 415),
        ("/api/items", "post", {"json": {"name": ""}}, 422),
        ("/api/items", "post", {"json": {"name": "a\x00"}}, 422),
        ("/api/items", "get", {"query_string": {"limit": "0"}}, 422),
        ("/api/items", "get", {}, 200),
        ("/api/items/{item_id}", "get", {}, 404),
        ("/api/items/{item_id}", "put", {"json": {"name": "a"}}, 404),
        ("/api/items/{item_id}", "put", {"json": {"name": 1}}, 422),
        ("/api/items/{item_id}", "delete", {}, 404),
        ("/healthz", "get", {}, 200),
        ("/readyz", "get", {}, 200),
        ("/openapi.json", "get", {}, 200),
    ],
)
def test_answers_match_the_document(make_app, path, method, request_args, status):
    """It answers with statuses, media types, bodies and headers the document lists."""
    client = writer_of(make_app(max_content_length=1024))
    url = path.replace("{item_id}", "2147483647")
    response = getattr(client, method)(url, **request_args)
    assert response.status_code == status
    assert_conforms(document(client), path, method, response)


def test_a_read_item_and_its_cache_header_match_the_document(writer, shared_cache):
    """It documents a read item's body and its X-Cache header."""
    location = writer.post("/api/items", json={"name": "a"}).headers["Location"]
    for _ in range(2):
        assert_conforms(document(writer), "/api/items/{item_id}", "get", writer.get(location))


def test_a_change_and_a_delete_match_the_document(writer):
    """It documents the changed item, and the empty answer of a delete."""
    location = writer.post("/api/items", json={"name": "a"}).headers["Location"]
    path = "/api/items/{item_id}"
    assert_conforms(document(writer), path, "put", writer.put(location, json={"name": "b"}))
    deleted = writer.delete(location)
    assert deleted.status_code == 204
    assert_conforms(document(writer), path, "delete", deleted)


def test_a_refusal_by_the_rate_limiter_matches_the_document(limited_client):
    """It documents the 429 with its Retry-After and X-RateLimit-* headers."""
    client = limited_client(ratelimit_default="1 per minute")
    doc = document(client)
    assert client.get("/api/items").status_code == 200
    refused = client.get("/api/items")
    assert refused.status_code == 429
    assert_conforms(doc, "/api/items", "get", refused)
    assert set(refused.headers.keys()) >= {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Reset"}


def limited_operations(doc: dict) -> set[tuple[str, str]]:
    """Return the (path, method) of each operation the document says may answer 429."""
    return {
        (path, method)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if "429" in operation["responses"]
    }


def test_429_is_documented_where_requests_are_limited(make_app):
    """It documents a 429 on the writes (reads only with RATELIMIT_DEFAULT), and on every route
    but the probes with RATELIMIT_DEFAULT."""
    writes = limited_operations(make_app().test_client().get("/openapi.json").json)
    assert not {(path, method) for path, method in writes if method == "get"}
    assert writes >= {
        ("/api/items", "post"),
        ("/api/items/{item_id}", "put"),
        ("/api/items/{item_id}", "delete"),
{%- if cookiecutter.use_auth == "yes" %}
        ("/api/auth/tokens", "post"),  # sign-in attempts
        ("/api/auth/password-reset", "post"),  # counted with them, per client address
        ("/api/auth/password", "post"),
{%- endif %}
    }
    every = make_app(ratelimit_default="600 per minute").test_client().get("/openapi.json").json
    limited = limited_operations(every)
    reads = {("/api/items", "get"), ("/api/items/{item_id}", "get"), ("/openapi.json", "get")}
    assert reads <= limited
    assert not {path for path, _ in limited} & {"/healthz", "/readyz"}


@pytest.mark.parametrize(("path", "method"), [("/api/items", "get"), ("/api/items", "post")])
def test_a_database_failure_matches_the_document(settings_overrides, tmp_path, path, method):
    """It documents the 503 of a database without the service's tables."""
    app = create_app({**settings_overrides, "database_url": f"sqlite:///{tmp_path / 'e.db'}"})
    with app.app_context():
        db.drop_all()
    client = app.test_client()
{%- if cookiecutter.use_auth == "yes" %}
    send_token(client, "x" * 43)  # any token: checking it needs the tables that are missing
{%- endif %}
    response = getattr(client, method)(path, json={"name": "a"} if method == "post" else None)
    assert response.status_code == 503
    assert_conforms(document(client), path, method, response)


def test_an_unready_service_matches_the_document(client, monkeypatch):
    """It documents the 503 of /readyz when a hard dependency fails."""

    def fails() -> None:
        raise ConnectionError("down")

    monkeypatch.setattr(health, "dependencies", lambda app: {"database": fails})
    response = client.get("/readyz")
    assert response.status_code == 503
    assert_conforms(document(client), "/readyz", "get", response)
{%- if cookiecutter.use_celery == "yes" %}


def test_the_task_queues_readiness_matches_the_document(client, monkeypatch):
    """It documents the task queue's length, the one fact a readiness check adds to its result."""
    monkeypatch.setattr(health, "dependencies", lambda app: {"task_queue": lambda: {"length": 3}})
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"]["task_queue"]["length"] == 3
    assert_conforms(document(client), "/readyz", "get", response)
{%- endif %}
