"""The example resource: its model, its API and what it answers, its pages and tasks."""

from flask import Flask

from ..platform import openapi
from . import api, operations{% if cookiecutter.use_frontend == "yes" %}, pages, seed{% endif %}{% if cookiecutter.use_celery == "yes" %}, tasks{% endif %}


def init_app(app: Flask) -> None:
    """Register the items: the routes, commands and tasks of each module, what the API answers."""
    app.register_blueprint(api.bp, url_prefix="/api")
    openapi.describe(app, operations.OPERATIONS)
{%- if cookiecutter.use_frontend == "yes" %}
    pages.init_app(app)
    seed.init_app(app)
{%- endif %}
{%- if cookiecutter.use_celery == "yes" %}
    tasks.init_app(app)
{%- endif %}
