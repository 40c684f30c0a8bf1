"""Check DATABASE_URL when the settings load, without connecting."""

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError


def checked_database_url(value: str) -> str:
    """Return a DATABASE_URL whose database and driver load here; raise ValueError, unconnected."""
{%- if cookiecutter.use_postgres == "yes" %}
    if value.startswith("postgres://"):  # the form some hosts hand out; SQLAlchemy's is postgresql
        value = value.replace("postgres://", "postgresql://", 1)
{%- endif %}
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("not a database URL (e.g. sqlite:///app.db)") from None
    scheme = f"{url.drivername}://"
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ValueError(f"SQLAlchemy knows no database or driver {scheme}") from None
    except ImportError as exc:
        raise ValueError(f"the driver of {scheme} is not installed ({exc})") from None
    return value
