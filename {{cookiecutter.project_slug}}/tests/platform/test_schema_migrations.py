"""The migrations build exactly the schema the models describe; the app builds none itself."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db


def test_downgrade_empties_and_upgrade_matches_models(app):
    """It migrates the test database down to nothing and back up to the models' schema."""
    with app.app_context():
        downgrade(revision="base")
        with db.engine.connect() as connection:
            assert not db.inspect(connection).has_table("items")
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []


def test_the_app_creates_no_tables_itself(settings_overrides, empty_database_url):
    """It leaves the schema to the migrations: starting the app on an empty database adds nothing.

    Tables made at start-up would make ``flask db migrate`` and ``flask db upgrade`` fail.
    """
    app = create_app({**settings_overrides, "database_url": empty_database_url})
    with app.app_context(), db.engine.connect() as connection:
        assert db.inspect(connection).get_table_names() == []
    with app.app_context():
        db.engine.dispose()
