"""{{ cookiecutter.project_name }}: {{ cookiecutter.description }}"""

from flask import Flask
{% if cookiecutter.use_auth == "yes" %}
from .auth import api as auth_api
from .auth import cli as users_cli
from .auth import operations as auth_operations
{%- endif %}
{%- if cookiecutter.use_frontend == "yes" and cookiecutter.use_auth == "yes" %}
from .auth import pages as sign_in
from .auth import passkey_pages as passkeys
{%- endif %}
{%- if cookiecutter.use_auth == "yes" %}
from .auth import recovery{% if cookiecutter.use_frontend == "yes" %}, recovery_pages{% endif %}, sign_up{% if cookiecutter.use_frontend == "yes" %}, sign_up_pages{% endif %}
{%- endif %}
from .items import api{% if cookiecutter.use_frontend == "yes" %}, pages, seed{% endif %}{% if cookiecutter.use_celery == "yes" %}, tasks{% endif %}
from .items import operations as item_operations
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
{%- if cookiecutter.use_frontend == "yes" %}
from .web import dev_toolbar, static_files
from .web import security as page_security
{%- endif %}


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
{%- if cookiecutter.use_frontend == "yes" %}
    page_security.init_app(app)  # CSRF for the pages' forms (routes declaring Access.PAGE)
    static_files.init_app(app)
    dev_toolbar.init_app(app)  # development only; it relaxes the policy page_security set
{%- endif %}

    app.register_blueprint(api.bp, url_prefix="/api")
{%- if cookiecutter.use_frontend == "yes" %}
    pages.init_app(app{% if cookiecutter.use_auth == "yes" %}, item_form="pages/_signed_in.html"{% endif %})
    seed.init_app(app)
{%- endif %}
{%- if cookiecutter.use_celery == "yes" %}
    tasks.init_app(app)  # new items are processed by a task
{%- endif %}
{%- if cookiecutter.use_auth == "yes" %}
    auth_api.init_app(app)  # a bearer token where a route declares it (platform/routes.py)
    recovery.init_app(app)
    sign_up.init_app(app)  # when AUTH_SIGN_UP is on
    users_cli.init_app(app)
{%- endif %}
{%- if cookiecutter.use_frontend == "yes" and cookiecutter.use_auth == "yes" %}
    sign_in.init_app(app)
    passkeys.init_app(app)  # when PASSKEY_ORIGINS names the site
    recovery_pages.init_app(app)
    sign_up_pages.init_app(app)  # when AUTH_SIGN_UP is on
{%- endif %}

    routes.init_app(app)  # after the features: it applies the guards their routes declare
    rate_limits.init_app(app)  # after the guards: it wraps the views the features marked
    operations = {**item_operations.OPERATIONS}
{%- if cookiecutter.use_auth == "yes" %}
    operations.update(auth_operations.OPERATIONS)
    operations.update(recovery.OPERATIONS)
    operations.update(sign_up.OPERATIONS)
{%- endif %}
    openapi.init_app(app, operations{% if cookiecutter.use_auth == "yes" %}, auth_operations.SECURITY{% endif %})
    return app
