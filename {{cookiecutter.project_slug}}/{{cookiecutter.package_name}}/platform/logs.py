"""Send every log line to STDOUT, as JSON lines or text, each with the request id."""

import logging
import logging.config
from typing import Any

from flask import Flask, g, has_app_context
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
JSON_FORMAT = "%(levelname)s %(name)s %(message)s %(request_id)s"
JSON_RENAMES = {"levelname": "level", "name": "logger"}


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


def init_app(app: Flask) -> None:
    """Configure logging from the app's settings."""
    settings = app.extensions["settings"]
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
