"""Database commands for development: `flask seed` adds example items, `flask reset` starts over.

Seeding is idempotent: an example item that exists (by name) is not added again. Reset drops
every table and builds the schema again; it refuses to run with APP_ENV=production.
"""

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
{%- if cookiecutter.use_postgres == "yes" %}
from flask_migrate import upgrade as build_schema
{%- endif %}
from sqlalchemy import MetaData, select

from ..extensions import db
{%- if cookiecutter.use_postgres != "yes" %}
from ..platform.database import create_tables as build_schema
{%- endif %}
from .api import ItemIn, add_item
from .models import Item

EXAMPLES = (
    ItemIn(name="Example: a first item", description="Added by the flask seed command."),
    ItemIn(name="Example: a second item", description="Seeding again adds nothing."),
    ItemIn(name="Example: an item without a description"),
)


def seed_items() -> int:
    """Add each example item that does not exist yet; return how many were added."""
    names = [example.name for example in EXAMPLES]
    existing = set(db.session.scalars(select(Item.name).where(Item.name.in_(names))))
    missing = [example for example in EXAMPLES if example.name not in existing]
    for example in missing:
        add_item(example)
    return len(missing)


def drop_every_table() -> None:
    """Drop every table of the database, those no model describes too."""
    tables = MetaData()
    with db.engine.begin() as connection:
        tables.reflect(connection)
        tables.drop_all(connection)


@click.command("seed")
@with_appcontext
def seed_command() -> None:
    """Add the example items that are missing (running it again adds nothing)."""
    added = seed_items()
    click.echo(f"Seeded {added} example item(s); {len(EXAMPLES) - added} existed already.")


@click.command("reset")
@with_appcontext
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset_command(yes: bool) -> None:
    """Drop every table and build the schema again (refused with APP_ENV=production)."""
    if current_app.extensions["settings"].app_env == "production":
        raise click.ClickException("refusing to reset the database with APP_ENV=production")
    if not yes:
        click.confirm(f"Drop every table of {db.engine.url.render_as_string()}?", abort=True)
    drop_every_table()
    build_schema()
    click.echo("The database is empty, its schema built again.")


def init_app(app: Flask) -> None:
    """Register the seed and reset commands."""
    app.cli.add_command(seed_command)
    app.cli.add_command(reset_command)
