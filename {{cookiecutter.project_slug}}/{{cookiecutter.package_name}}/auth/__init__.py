"""Users and their API tokens: accounts, the token API, the command line, signing in."""

from flask import Flask

from ..platform import openapi
from . import (
    admin_api,
{%- if cookiecutter.use_frontend == "yes" %}
    admin_pages,
    admin_passkeys,
{%- endif %}
    api,
    audit,
    audit_api,
{%- if cookiecutter.use_celery == "yes" %}
    audit_tasks,
{%- endif %}
    cli,
    notices,
    operations,
{%- if cookiecutter.use_frontend == "yes" %}
    pages,
    passkey_pages,
{%- endif %}
    recovery,
{%- if cookiecutter.use_frontend == "yes" %}
    recovery_pages,
{%- endif %}
    second_factor_api,
{%- if cookiecutter.use_frontend == "yes" %}
    security_pages,
{%- endif %}
    sign_up,
{%- if cookiecutter.use_frontend == "yes" %}
    sign_up_pages,
    sso_pages,
{%- endif %}
)


def init_app(app: Flask) -> None:
    """Register the users: the routes, commands and mail of each module, what the API answers,
    and the token guard every route declaring it gets (platform/routes.py applies it)."""
    api.init_app(app)
    audit.init_app(app)
    recovery.init_app(app)
    sign_up.init_app(app)  # when AUTH_SIGN_UP is on
    second_factor_api.init_app(app)
    admin_api.init_app(app)
    audit_api.init_app(app)
{%- if cookiecutter.use_celery == "yes" %}
    audit_tasks.init_app(app)  # the scheduler prunes the trail daily
{%- endif %}
    notices.init_app(app)
    cli.init_app(app)
    openapi.describe(app, {**operations.OPERATIONS, **recovery.OPERATIONS, **sign_up.OPERATIONS})
    openapi.describe(app, second_factor_api.OPERATIONS)
    openapi.describe(app, {**admin_api.OPERATIONS, **audit_api.OPERATIONS})
    openapi.secure(app, operations.SECURITY)
{%- if cookiecutter.use_frontend == "yes" %}
    pages.init_app(app)
    admin_pages.init_app(app)
    admin_passkeys.init_app(app)
    openapi.describe(app, admin_passkeys.OPERATIONS)
    passkey_pages.init_app(app)  # when PASSKEY_ORIGINS names the site
    recovery_pages.init_app(app)
    security_pages.init_app(app)
    sign_up_pages.init_app(app)  # when AUTH_SIGN_UP is on
    sso_pages.init_app(app)  # when OIDC_ISSUER names a provider
{%- endif %}
