"""Send every log line to STDOUT, as JSON lines or text, each with the request id; carry the
fields the app adds to a request's access line (access_field) to the server that writes it.
A ``flask`` command run in a terminal logs text lines, between its own: a person reads them."""

import logging
import logging.config
import sys
from collections.abc import Mapping
from typing import Any

import click
from flask import Flask, g, has_app_context, request
from flask.cli import FlaskGroup
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
JSON_FORMAT = "%(levelname)s %(name)s %(message)s %(request_id)s"
JSON_RENAMES = {"levelname": "level", "name": "logger"}
# Where a request's own access-line fields wait for the server: a key of its WSGI environ, named
# after the package as PEP 3333 asks of an application's own keys.
ACCESS_FIELDS = "{{ cookiecutter.package_name }}.access_fields"
AccessValue = str | int | float | bool | None
# The names a log record has of its own (logging refuses an extra field of these names).
RECORD_NAMES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served, or None outside one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``request_id`` unless a caller already set it."""
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_app_context() else None
        return True


def logging_config(level: str, fmt: str, *loggers: str) -> dict[str, Any]:
    """Return a dictConfig sending the root logger, werkzeug's and ``loggers`` to STDOUT."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "json": {
                "()": JsonFormatter,
                "fmt": JSON_FORMAT,
                "rename_fields": JSON_RENAMES,
                "timestamp": "time",
            },
            "text": {"format": TEXT_FORMAT},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": fmt,
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        # Their own handlers dropped, they write through the root's, in the same format.
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("werkzeug", *loggers)},
    }


def access_field(name: str, value: AccessValue) -> None:
    """Add a field to the access line of the request being served (a feature's hook calls it:
    the signed-in user's id, say); the line's own fields (method, path, status...) keep theirs.
    A name a log record has of its own (``msg``, ``name``...) raises ValueError."""
    if name in RECORD_NAMES:
        raise ValueError(f"{name!r} names a log record's own attribute: choose another name")
    request.environ.setdefault(ACCESS_FIELDS, {})[name] = value


def access_fields(environ: Mapping[str, object]) -> dict[str, AccessValue]:
    """Return the fields the app added to a request's access line, from its WSGI environ."""
    found = environ.get(ACCESS_FIELDS)
    return dict(found) if isinstance(found, dict) else {}


def in_a_terminal_command() -> bool:
    """Say whether the app serves a ``flask`` command whose output is a terminal."""
    context = click.get_current_context(silent=True)
    command = context.find_root().command if context else None
    return isinstance(command, FlaskGroup) and sys.stdout.isatty()


def init_app(app: Flask) -> None:
    """Configure logging from the app's settings; text in a terminal command's output."""
    settings = app.extensions["settings"]
    fmt = "text" if in_a_terminal_command() else settings.log_format
    logging.config.dictConfig(logging_config(settings.log_level, fmt))
