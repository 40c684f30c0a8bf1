"""`flask seed` adds example items once; `flask reset` empties the database, never in production."""

from sqlalchemy import inspect

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.items.seed import EXAMPLES
from tests.conftest import writer_of


def item_names(app) -> list[str]:
    """Return the names of the stored items."""
    with app.app_context():
        return sorted(item["name"] for item in app.test_client().get("/api/items").json["items"])


def test_seed_adds_the_examples_once(app):
    """It adds every example item, and running it again adds nothing."""
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    assert f"Seeded {len(EXAMPLES)} example item(s)" in first.output
    second = runner.invoke(args=["seed"])
    assert second.exit_code == 0, second.output
    assert "Seeded 0 example item(s)" in second.output
    assert item_names(app) == sorted(example.name for example in EXAMPLES)


def test_seed_adds_only_the_missing_examples(app):
    """It keeps other items and adds only the examples that are not there."""
    client = writer_of(app)
    client.post("/api/items", json={"name": EXAMPLES[0].name})
    client.post("/api/items", json={"name": "mine"})
    result = app.test_cli_runner().invoke(args=["seed"])
    assert f"Seeded {len(EXAMPLES) - 1} example item(s)" in result.output
    assert len(item_names(app)) == len(EXAMPLES) + 1


def test_reset_refuses_production(make_app):
    """It refuses to reset with APP_ENV=production and leaves the data alone."""
    app = make_app(app_env="production")
    writer_of(app).post("/api/items", json={"name": "kept"})
    result = app.test_cli_runner().invoke(args=["reset", "--yes"])
    assert result.exit_code != 0
    assert "refusing to reset the database with APP_ENV=production" in result.output
    assert item_names(app) == ["kept"]


def test_reset_empties_the_database_and_rebuilds_the_schema(app):
    """It drops every table and builds the schema again: the items are gone, the API works."""
    writer_of(app).post("/api/items", json={"name": "gone"})
    result = app.test_cli_runner().invoke(args=["reset", "--yes"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert "items" in inspect(db.engine).get_table_names()
    assert item_names(app) == []
    assert writer_of(app).post("/api/items", json={"name": "new"}).status_code == 201


def test_reset_asks_before_dropping(app):
    """It asks for confirmation without --yes, and keeps the data when refused."""
    writer_of(app).post("/api/items", json={"name": "kept"})
    result = app.test_cli_runner().invoke(args=["reset"], input="n\n")
    assert result.exit_code != 0
    assert "Drop every table" in result.output
    assert item_names(app) == ["kept"]
