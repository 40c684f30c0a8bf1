"""{{ cookiecutter.project_name }}: {{ cookiecutter.description }}"""

from flask import Flask

from . import {% if cookiecutter.use_auth == "yes" %}auth, {% endif %}items{% if cookiecutter.use_frontend == "yes" %}, web{% endif %}
from .platform import (
    caching,
{%- if cookiecutter.use_celery == "yes" %}
    celery_app,
{%- endif %}
    database,
    errors,
    fields,
    health,
    logs,
{%- if cookiecutter.use_auth == "yes" %}
    mail,
{%- endif %}
{%- if cookiecutter.use_auth == "yes" and cookiecutter.use_celery == "yes" %}
    mail_tasks,
{%- endif %}
    metrics,
    openapi,
{%- if cookiecutter.use_nginx == "yes" %}
    proxy,
{%- endif %}
    rate_limits,
    request_body,
    request_id,
    routes,
{%- if cookiecutter.use_postgres == "yes" %}
    schema_migrations,
{%- endif %}
{%- if cookiecutter.use_opentelemetry == "yes" %}
    telemetry,
{%- endif %}
)
from .settings import Settings, load_settings


def create_app(overrides: dict[str, object] | None = None) -> Flask:
    """Build the application: its settings, then the platform, then the features."""
    settings = load_settings(Settings, overrides)
    app = Flask(__name__, template_folder="web/templates")
    # Werkzeug would redirect /api//items to /api/items, and a path without a rule's trailing
    # slash to it, by an absolute URL naming the Host the client sent: neither is redirected.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.config.from_mapping(settings.flask_config())
    app.extensions["settings"] = settings

    logs.init_app(app)  # first: the concerns below may log while they start
    request_id.init_app(app)
{%- if cookiecutter.use_opentelemetry == "yes" %}
    telemetry.init_app(app)  # after logs, before the database: its engine is traced
{%- endif %}
    request_body.init_app(app)
    fields.init_app(app)  # before the features: their routes may take <id:...>
    errors.init_app(app)
    database.init_app(app)
    metrics.init_app(app)
{%- if cookiecutter.use_postgres == "yes" %}
    schema_migrations.init_app(app)
{%- endif %}
    caching.init_app(app)
{%- if cookiecutter.use_nginx == "yes" %}
    proxy.init_app(app)
{%- endif %}
{%- if cookiecutter.use_celery == "yes" %}
    celery_app.init_app(app)
{%- endif %}
{%- if cookiecutter.use_auth == "yes" %}
    mail.init_app(app{% if cookiecutter.use_celery == "yes" %}, mail_tasks.queue(app){% endif %})
{%- endif %}
    app.register_blueprint(health.bp)
    openapi.init_app(app)
{%- if cookiecutter.use_frontend == "yes" %}
    web.init_app(app)  # what every page shares
{%- endif %}

    # The features, in any order: each registers its routes, commands, tasks and operations.
    items.init_app(app)
{%- if cookiecutter.use_auth == "yes" %}
    auth.init_app(app)
{%- endif %}

    routes.init_app(app)  # after the features: it applies the guards their routes declare
    rate_limits.init_app(app)  # after the guards: it wraps the views the features marked
    return app
