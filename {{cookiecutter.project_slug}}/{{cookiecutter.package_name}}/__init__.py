"""{{ cookiecutter.project_name }}: {{ cookiecutter.description }}"""

from flask import Flask
{% if cookiecutter.use_auth == "yes" %}
from .auth import api as auth_api
from .auth import cli as users_cli
{%- endif %}
{%- if cookiecutter.use_frontend == "yes" and cookiecutter.use_auth == "yes" %}
from .auth import pages as sign_in
{%- endif %}
from .items import api{% if cookiecutter.use_frontend == "yes" %}, pages, seed{% endif %}{% if cookiecutter.use_celery == "yes" %}, tasks{% endif %}
from .platform import (
    caching,
{%- if cookiecutter.use_celery == "yes" %}
    celery_app,
{%- endif %}
    database,
    errors,
    health,
    logs,
    metrics,
    openapi,
{%- if cookiecutter.use_nginx == "yes" %}
    proxy,
{%- endif %}
    rate_limits,
    request_body,
    request_id,
{%- if cookiecutter.use_postgres == "yes" %}
    schema_migrations,
{%- endif %}
{%- if cookiecutter.use_opentelemetry == "yes" %}
    telemetry,
{%- endif %}
)
from .settings import Settings, load_settings
{%- if cookiecutter.use_frontend == "yes" %}
from .web import dev_toolbar, static_files
from .web import security as page_security
{%- endif %}


def create_app(overrides: dict[str, object] | None = None) -> Flask:
    """Build the application: settings, then each concern, then the routes."""
    settings = load_settings(Settings, overrides)
    app = Flask(__name__, template_folder="web/templates")
    app.config.from_mapping(settings.flask_config())
    app.extensions["settings"] = settings

    logs.init_app(app)  # first: the concerns below may log while they start
    request_id.init_app(app)
{%- if cookiecutter.use_opentelemetry == "yes" %}
    telemetry.init_app(app)  # after logs, before the database: its engine is traced
{%- endif %}
    request_body.init_app(app)
    errors.init_app(app)
    database.init_app(app)
    metrics.init_app(app)
{%- if cookiecutter.use_postgres == "yes" %}
    schema_migrations.init_app(app)
{%- endif %}
    caching.init_app(app)
{%- if cookiecutter.use_auth == "yes" %}
    users_cli.init_app(app)  # its import registered the users and tokens tables
{%- endif %}
{%- if cookiecutter.use_nginx == "yes" %}
    proxy.init_app(app)
{%- endif %}
{%- if cookiecutter.use_celery == "yes" %}
    celery_app.init_app(app)
    tasks.init_app(app)  # new items are processed by a task
{%- endif %}

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp, url_prefix="/api")
{%- if cookiecutter.use_auth == "yes" %}
    app.register_blueprint(auth_api.bp, url_prefix="/api/auth")  # its import guards api.bp
{%- endif %}
{%- if cookiecutter.use_frontend == "yes" %}
    page_security.init_app(app)  # CSRF for every form, the API exempt; the pages' CSP
    pages.init_app(app)
{%- if cookiecutter.use_auth == "yes" %}
    sign_in.init_app(app)  # after the pages: it wraps their item form
{%- endif %}
    static_files.init_app(app)  # after the pages: it reads the manifest for their templates
    dev_toolbar.init_app(app)  # development only; last, to relax the policy set above
    seed.init_app(app)
{%- endif %}
    rate_limits.init_app(app)  # limits the routes registered above
    openapi.init_app(app)  # documents the routes registered above
    return app
