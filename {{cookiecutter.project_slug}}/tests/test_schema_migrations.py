"""The migrations build exactly the schema the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from {{ cookiecutter.package_name }}.extensions import db


def test_upgrade_matches_models_and_downgrade_empties(app):
    """It migrates an empty database to the models' schema, and back down to nothing."""
    with app.app_context():
        db.drop_all()
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []
        downgrade(revision="base")
        with db.engine.connect() as connection:
            assert not db.inspect(connection).has_table("items")
