"""Every extension object, created unbound: the concern that configures one binds it to the app.

The rate limits' counters are no extension: platform/rate_limits.py makes them per app.
"""

from flask_caching import Cache
{%- if cookiecutter.use_auth == "yes" and cookiecutter.use_frontend == "yes" %}
from flask_login import LoginManager
{%- endif %}
{%- if cookiecutter.use_postgres == "yes" %}
from flask_migrate import Migrate
{%- endif %}
from flask_sqlalchemy import SQLAlchemy
{%- if cookiecutter.use_frontend == "yes" %}
from flask_wtf.csrf import CSRFProtect
{%- endif %}
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Base class of the ORM models."""


db = SQLAlchemy(model_class=Base)  # bound by platform/database.py
cache = Cache()  # bound by platform/caching.py
{%- if cookiecutter.use_frontend == "yes" %}
csrf = CSRFProtect()  # bound by web/security.py
{%- endif %}
{%- if cookiecutter.use_auth == "yes" and cookiecutter.use_frontend == "yes" %}
login_manager = LoginManager()  # bound by auth/pages.py
{%- endif %}
{%- if cookiecutter.use_postgres == "yes" %}
migrate = Migrate()  # bound by platform/schema_migrations.py
{%- endif %}
