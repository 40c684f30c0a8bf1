"""Every route declares who may call it (platform/routes.py), and the declaration counts."""

import pytest
{%- if cookiecutter.use_auth == "yes" %}
from flask import Blueprint, g
{%- endif %}

from {{ cookiecutter.package_name }}.platform import routes
from {{ cookiecutter.package_name }}.platform.routes import Access
{%- if cookiecutter.use_auth == "yes" %}
from tests.auth.test_api import assert_asks_for_a_token
from tests.conftest import send_token
{%- endif %}

{%- if cookiecutter.use_auth == "yes" %}

# Settings that serve every optional route.
EVERY_ROUTE: dict[str, object] = {
    "auth_sign_up": True,
{%- if cookiecutter.use_frontend == "yes" %}
    "passkey_origins": "http://localhost:8000",
{%- endif %}
}
{%- endif %}


@pytest.mark.parametrize("app_env", ["test", "development"])
def test_every_route_declares_who_may_call_it(make_app, app_env):
    """It finds a declaration for each rule of the URL map (a route that forgot one would get
    the default silently: this test names it instead)."""
    app = make_app(app_env=app_env{% if cookiecutter.use_auth == "yes" %}, **EVERY_ROUTE{% endif %})
    undeclared = sorted(
        f"{rule.rule} ({rule.endpoint})"
        for rule in app.url_map.iter_rules()
        if routes.declared(app, rule.endpoint) is None
    )
    assert not undeclared, f"declare who may call these (platform/routes.py): {undeclared}"


def test_a_route_that_declares_nothing_gets_the_safe_default(app):
    """It answers SIGNED_IN_TO_WRITE for an endpoint with no declaration."""
    app.add_url_rule("/undeclared", endpoint="undeclared", view_func=lambda: "")
    assert routes.declared(app, "undeclared") is None
    assert routes.access_of(app, "undeclared") is Access.SIGNED_IN_TO_WRITE
{%- if cookiecutter.use_auth == "yes" %}


@pytest.fixture
def second_api_app(make_app, monkeypatch):
    """Return an app with a second API, built like items, that declares nothing, registered by a
    feature after every other (as late as create_app allows: right before the routes' rules are
    applied)."""
    second = Blueprint("second_api", __name__)

    @second.post("/second")
    def create_thing() -> tuple[dict[str, int], int]:
        return {"user_id": g.user.id}, 201

    @second.get("/second")
    def list_things() -> dict[str, list[int]]:
        return {"things": []}

    apply_rules = routes.init_app

    def with_second_api(app):
        app.register_blueprint(second, url_prefix="/api")
        apply_rules(app)

    monkeypatch.setattr(routes, "init_app", with_second_api)
    return make_app


def test_an_api_that_declares_nothing_takes_writes_only_with_a_token(second_api_app):
    """Its writes need a token, whatever its blueprint's name; its reads are public."""
    app = second_api_app()
    client = app.test_client()
    assert_asks_for_a_token(client.post("/api/second", json={}), invalid_token=False)
    assert client.get("/api/second").status_code == 200
    answer = send_token(app.test_client()).post("/api/second", json={})
    assert answer.status_code == 201
    assert answer.json["user_id"] >= 1


def test_an_api_that_declares_nothing_keeps_its_reads_private_with_the_setting(second_api_app):
    """With AUTH_PRIVATE_READS its reads need a token too, as the items API's do."""
    app = second_api_app(auth_private_reads=True)
    assert_asks_for_a_token(app.test_client().get("/api/second"), invalid_token=False)
    assert send_token(app.test_client()).get("/api/second").status_code == 200
{%- endif %}
