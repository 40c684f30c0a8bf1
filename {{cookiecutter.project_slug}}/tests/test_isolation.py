"""The suite reads no .env and none of the environment's service settings (only TEST_* reach
it): where both name a mail server, a database and a Redis, it passes and reaches none of them.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT

# A part of the suite that builds apps with and without overrides and, with accounts, would
# send mail or open sign-up if the .env or the environment reached it.
PART = [
    "tests/test_factory.py",
{%- if cookiecutter.use_auth == "yes" %}
    "tests/auth/test_recovery.py::test_with_mail_off_a_reset_answers_503_saying_so",
    "tests/auth/test_recovery.py::test_known_and_unknown_addresses_get_the_same_answer_and_only_a_real_one_gets_mail",
    "tests/auth/test_sign_up.py::test_sign_up_is_off_by_default",
    "tests/auth/test_sign_up.py::test_with_mail_off_sign_up_answers_503_saying_so",
{%- endif %}
]


def surroundings(mail_port: int) -> tuple[dict[str, str], dict[str, str]]:
    """Return what a developer's .env and environment may hold: a mail server on ``mail_port``,
    a database and a Redis that cannot be reached, sign-up open (settings a bake lacks are
    ignored)."""
    dot_env = {
        "APP_ENV": "development",
        "LOG_LEVEL": "ERROR",
        "MAIL_URL": f"smtp://127.0.0.1:{mail_port}",
        "MAIL_FROM": "My Service <no-reply@example.com>",
        "PUBLIC_URL": "https://app.example.com",
        "MAIL_TIMEOUT": "1",  # a message waits this long for the greeting never sent
    }
    exported = {
        "APP_ENV": "development",
        "DATABASE_URL": "sqlite:////nowhere/no-such-folder/app.db",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # port 1: nothing listens
        "AUTH_SIGN_UP": "true",
    }
    return dot_env, exported


def connections_to(server: socket.socket) -> int:
    """Return how many connections reached the listening ``server`` (none are accepted)."""
    server.setblocking(False)
    count = 0
    for _ in range(1000):  # more than any run makes
        try:
            server.accept()[0].close()
        except BlockingIOError:
            break
        count += 1
    return count


def test_the_suite_reaches_no_server_its_env_file_or_environment_names(tmp_path: Path):
    """It passes, and connects to no mail server, run in a folder whose .env names a listening
    mail server, with an environment naming an unreachable database and Redis."""
    (tmp_path / "run").mkdir()
    with socket.create_server(("127.0.0.1", 0)) as mail_server:
        dot_env, exported = surroundings(mail_server.getsockname()[1])
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
        reached = connections_to(mail_server)
    assert result.returncode == 0, result.stdout[-4000:]
    assert reached == 0, f"{reached} connection(s) reached the mail server"
