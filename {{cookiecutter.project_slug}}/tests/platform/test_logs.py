"""Logs go to STDOUT as JSON lines (or text), each carrying the request id.

Each test builds its app after capsys is active, so the log handler writes into the capture.
"""

import io
import json
import logging
import os
import pty
import re
import sys

import click
import pytest
from flask import request
from flask.cli import FlaskGroup

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.platform import logs


def _json_lines(text: str, message: str) -> list[dict]:
    """Parse every line as JSON; return those with the given message."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [line for line in lines if line["message"] == message]


def test_json_lines_carry_level_message_and_request_id(capsys, settings_overrides):
    """It writes each line as JSON with level, logger, message, time and request id."""
    app = create_app(settings_overrides)

    @app.get("/log-something")
    def log_something():
        app.logger.info("hello from a view")
        return {}

    app.test_client().get("/log-something", headers={"X-Request-ID": "trace-123"})
    lines = _json_lines(capsys.readouterr().out, "hello from a view")
    assert len(lines) == 1
    assert lines[0]["level"] == "INFO"
    assert lines[0]["request_id"] == "trace-123"
    assert lines[0]["time"]


def test_lines_outside_requests_have_a_null_request_id(capsys, settings_overrides):
    """It still writes the request_id key outside a request."""
    create_app(settings_overrides)
    logging.getLogger("outside").warning("no request here")
    (line,) = _json_lines(capsys.readouterr().out, "no request here")
    assert line["request_id"] is None


def test_text_format(capsys, settings_overrides):
    """It writes plain text lines when LOG_FORMAT=text."""
    app = create_app({**settings_overrides, "log_format": "text"})
    app.logger.warning("plain words")
    out = capsys.readouterr().out
    assert "WARNING [None]" in out and "plain words" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.strip().splitlines()[-1])


def test_a_command_in_a_terminal_logs_text(monkeypatch, settings_overrides):
    """It writes text lines, whatever LOG_FORMAT says, for a ``flask`` command whose output is
    a terminal (a person running ``flask users create``), and JSON lines for one piped."""
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal, os.fdopen(leader, "rb", buffering=0) as screen:
        monkeypatch.setattr(sys, "stdout", terminal)
        with click.Context(FlaskGroup()):
            create_app({**settings_overrides, "log_format": "json"}).logger.warning("by hand")
        terminal.flush()
        os.set_blocking(leader, False)  # what was written is there to read; no wait for more
        shown = b"".join(iter(lambda: screen.read(65536) or None, None))  # a line at a time
        assert re.search(rb"WARNING \[None\] \S+: by hand\r\n", shown), shown
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stdout", piped)
    with click.Context(FlaskGroup()):
        create_app({**settings_overrides, "log_format": "json"}).logger.warning("by a script")
    assert _json_lines(piped.getvalue(), "by a script")


def test_level_filters_lines(capsys, settings_overrides):
    """It drops lines below LOG_LEVEL."""
    app = create_app({**settings_overrides, "log_level": "ERROR"})
    app.logger.warning("too quiet to show")
    assert "too quiet to show" not in capsys.readouterr().out


def test_a_feature_adds_fields_to_the_access_line(settings_overrides):
    """It keeps the fields a request's code adds for its access line in the WSGI environ, where
    the server reads them, and refuses a name a log record has of its own."""
    app = create_app(settings_overrides)
    with app.test_request_context("/api/items"):
        assert logs.access_fields(request.environ) == {}
        logs.access_field("user_id", 7)
        logs.access_field("plan", "free")
        assert logs.access_fields(request.environ) == {"user_id": 7, "plan": "free"}
        with pytest.raises(ValueError, match="'msg' names a log record's own attribute"):
            logs.access_field("msg", "x")
