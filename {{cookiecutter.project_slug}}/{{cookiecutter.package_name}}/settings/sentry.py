"""Check SENTRY_DSN when the settings load, without sending anything."""

from typing import Annotated

from pydantic import AfterValidator, HttpUrl, TypeAdapter, ValidationError

HTTP_URL = TypeAdapter(HttpUrl)


def checked_dsn(value: str) -> str:
    """Return an empty DSN, or one of the form Sentry documents (https://KEY@HOST/PROJECT_ID,
    the project a number); raise ValueError, so start-up names SENTRY_DSN."""
    if not value:
        return value
    try:
        url = HTTP_URL.validate_python(value)
    except ValidationError:
        url = None
    if url is None or not url.username or not url.path or not url.path.rpartition("/")[2].isdigit():
        raise ValueError(
            "expected a DSN like https://KEY@o0.ingest.sentry.io/PROJECT_ID "
            "(the project's Client Keys page in Sentry)"
        )
    return value


SentryDsn = Annotated[str, AfterValidator(checked_dsn)]
