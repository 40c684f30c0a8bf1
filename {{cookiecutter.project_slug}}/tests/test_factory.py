"""The factory builds a configured app without side effects at import time."""

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
