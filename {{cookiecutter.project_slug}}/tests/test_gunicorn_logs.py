"""gunicorn's access lines are JSON with the request id, its own refusals included."""

import json


def test_access_line_of_a_response_gunicorn_wrote_itself(capsys):
    """It logs gunicorn's own error answers, which carry only ``status``, and unparsed requests."""
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config
    from gunicorn.http.wsgi import Response

    from {{ cookiecutter.package_name }}.gunicorn_logs import GunicornLogger
    from {{ cookiecutter.package_name }}.logs import logging_config

    config = Config()
    config.set("logconfig_dict", logging_config("INFO", "json"))
    logger = GunicornLogger(config)
    refusal = Response(None, None, Config())
    refusal.status = "400 Bad Request"
    refusal.headers = [("X-Request-ID", "refused-1")]
    request = SimpleNamespace(method="POST", path="/api/items")
    logger.access(refusal, request, {"REMOTE_ADDR": "127.0.0.1"}, timedelta(milliseconds=1))
    logger.access(refusal, None, {}, timedelta(milliseconds=1))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("POST", "/api/items", 400),
        (None, None, 400),
    ]
    assert {a["request_id"] for a in access} == {"refused-1"}
