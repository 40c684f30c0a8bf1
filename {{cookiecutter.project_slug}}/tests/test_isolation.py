"""The suite reads no .env and none of the environment's service settings (only TEST_* reach
it): where both name the servers this bake uses, one listening, it passes and reaches none. A
test that changes the app the tests share fails.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from {{ cookiecutter.package_name }}.extensions import cache, db
from {{ cookiecutter.package_name }}.items.models import Item
from tests.conftest import PROJECT, changes, connections_to, shape_of

# A part of the suite that builds apps with and without overrides, and would act on the .env or
# the environment if they reached it.
PART = [
    "tests/test_factory.py",
{%- if cookiecutter.use_auth == "yes" %}
    "tests/auth/test_recovery.py::test_with_mail_off_a_reset_answers_503_saying_so",
    "tests/auth/test_recovery.py::test_known_and_unknown_addresses_get_the_same_answer_and_only_a_real_one_gets_mail",
    "tests/auth/test_sign_up.py::test_sign_up_is_off_by_default",
    "tests/auth/test_sign_up.py::test_with_mail_off_sign_up_answers_503_saying_so",
{%- endif %}
]


def surroundings(port: int) -> tuple[dict[str, str], dict[str, str]]:
    """Return what a developer's .env and environment may hold: servers this bake uses, any
    that listens on ``port``, the others unreachable."""
    dot_env = {
        "APP_ENV": "development",
        "LOG_LEVEL": "ERROR",
{%- if cookiecutter.use_auth == "yes" %}
        "MAIL_URL": f"smtp://127.0.0.1:{port}",
        "MAIL_FROM": "My Service <no-reply@example.com>",
        "PUBLIC_URL": "https://app.example.com",
        "MAIL_TIMEOUT": "1",  # a message waits this long for the greeting never sent
{%- endif %}
    }
    exported = {
        "APP_ENV": "development",
        "DATABASE_URL": "sqlite:////nowhere/no-such-folder/app.db",
{%- if cookiecutter.use_redis == "yes" %}
        "REDIS_URL": "redis://127.0.0.1:1/0",  # port 1: nothing listens
{%- endif %}
{%- if cookiecutter.use_auth == "yes" %}
        "AUTH_SIGN_UP": "true",
{%- endif %}
    }
    return dot_env, exported


def test_the_suite_reaches_no_server_its_env_file_or_environment_names(tmp_path: Path):
    """It passes, and connects to no server, run in a folder whose .env and environment name
    the servers this bake uses, one of them listening."""
    (tmp_path / "run").mkdir()
    with socket.create_server(("127.0.0.1", 0)) as server:
        dot_env, exported = surroundings(server.getsockname()[1])
        (tmp_path / "run" / ".env").write_text("".join(f"{k}={v}\n" for k, v in dot_env.items()))
        # TEST_* stay out: the run here must not empty the database this session uses.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
        result = subprocess.run(  # noqa: S603  (this Python, fixed arguments)
            [
                *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
                f"--basetemp={tmp_path / 'basetemp'}",
                *(str(PROJECT / path) for path in PART),
            ],
            cwd=tmp_path / "run",
            env={**env, **exported},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        reached = connections_to(server)
    assert result.returncode == 0, result.stdout[-4000:]
    assert reached == 0, f"{reached} connection(s) reached the listening server"


def test_a_shared_app_is_one_per_set_of_settings_emptied_at_a_tests_first_ask(shared_app, app):
    """It gives ``app`` for no overrides, one app for the same overrides in any order and another
    for others; a second ask in a test gets the app as it is, its rows kept."""
    assert shared_app() is app
    mine = shared_app(log_level="DEBUG", ratelimit_default="5 per second")
    assert shared_app(log_level="INFO") is not mine
    with mine.app_context():
        db.session.add(Item(name="kept"))
        db.session.commit()
    again = shared_app(ratelimit_default="5 per second", log_level="DEBUG")
    assert again is mine
    with again.app_context():
        assert db.session.scalar(select(func.count(Item.id))) == 1


def test_every_kind_of_change_to_the_shared_app_is_seen(make_app):
    """It sees each change a test could leave on the app the tests share, so the check after each
    test fails the test that made it; what the app fills as it serves is no change."""
    memory = {"CACHE_TYPE": "SimpleCache", "CACHE_OPTIONS": {}}  # no other kind's options
    changed_by = {
        "configuration": lambda app: app.config.update(TESTING=False),
        "settings": lambda app: setattr(app.extensions["settings"], "log_level", "ERROR"),
        "routes": lambda app: app.add_url_rule("/added", "added", lambda: ""),
        "hooks": lambda app: app.before_request(lambda: None),
        "app context teardowns": lambda app: app.teardown_appcontext(lambda _: None),
        "error handlers": lambda app: app.register_error_handler(418, lambda _: ""),
        "extensions": lambda app: app.extensions.update(cache_outage=object()),
        "static folder": lambda app: setattr(app, "static_folder", "elsewhere"),
        "cache": lambda app: cache.init_app(app, memory),
    }
    for part, change in changed_by.items():
        app = make_app()
        before = shape_of(app)
        change(app)
        assert part in changes(before, shape_of(app)), part
    app = make_app()
    before = shape_of(app)
    assert app.test_client().get("/openapi.json").status_code == 200  # an extension filled
    assert changes(before, shape_of(app)) == []
