"""The factory builds a configured app without side effects at import time."""
{%- if cookiecutter.use_frontend == "no" %}

from flask import session
{%- endif %}

from {{ cookiecutter.package_name }} import create_app


def test_config_comes_from_overrides(settings_overrides):
    """It applies overrides passed to the factory."""
    app = create_app({**settings_overrides, "max_content_length": 4096})
    assert app.config["MAX_CONTENT_LENGTH"] == 4096
    assert app.testing


def test_routes_are_registered(app):
    """It registers the health and example API routes."""
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert {"/healthz", "/readyz", "/api/items", "/api/items/<id:item_id>"} <= rules


def test_no_path_is_redirected_to_a_url_naming_the_clients_host(app):
    """It answers a doubled slash with a JSON 404, never a redirect built from the Host sent."""
    answer = app.test_client().get("/api//items", headers={"Host": "evil.example"})
    assert (answer.status_code, answer.headers.get("Location")) == (404, None)
    assert answer.json is not None and answer.json["error"]["status"] == 404
{%- if cookiecutter.use_frontend == "no" %}


def test_no_request_opens_a_cookie_session(app):
    """It gives Flask no secret key: nothing here keeps a session, and given a key Flask would
    open and sign one for every request."""
    with app.test_client() as client:
        assert client.get("/healthz").status_code == 200
        assert app.session_interface.is_null_session(session)
{%- endif %}


def test_an_app_overriding_only_its_database_has_the_defaults(test_database_url):
    """It builds and serves on the settings' defaults: the tests' environment sets APP_ENV=test
    alone, and no .env is read. (The default database is the developer's: never used here.)"""
    app = create_app({"database_url": test_database_url})
    settings = app.extensions["settings"]
    made = {"secret_key"}  # a random one, when none is set
    assert settings.model_fields_set - made == {"app_env", "database_url"}
    assert settings.app_env == "test"
    assert app.test_client().get("/healthz").status_code == 200
