"""The development stack (`make up-dev`) delivers the service's mail to its Mailpit service.

Mailpit cannot be pulled here: the stack runs the Mailpit stand-in (standins/mailpit), which
accepts SMTP and answers the part of Mailpit's HTTP API read below.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from .matrix import TIER3, docker_params
from .net import request
from .stack import open_stack, sign_up
from .test_dev_assets import prepare_static, tag_dev_images, up_dev

DEV_FILES = ("compose.yaml", "compose.dev.yaml")
MAIL_TIMEOUT = 30  # seconds for a mail sent at once (no Celery) to reach Mailpit
MAILPIT = "mailpit"  # compose.dev.yaml's service


def _auth_combination() -> list:
    """Return the served auth combination selecting fewest options whose development web
    honours PORT (gunicorn): the cheapest stack that sends mail."""
    combos = [c for c in TIER3 if c.selected("use_auth") and c.value("app_server") == "gunicorn"]
    cheapest = min(combos, key=lambda c: sum(value == "yes" for value in c.answers.values()))
    return docker_params([cheapest])


def _mail_to(port: int, address: str, stack) -> dict:
    """Poll Mailpit's API until it holds a message to ``address``; return it with its bodies."""
    deadline = time.monotonic() + MAIL_TIMEOUT
    listed = None
    while time.monotonic() < deadline:
        listed = request(port, "GET", "/api/v1/messages").json()
        for message in listed["messages"]:
            if address in [to["Address"] for to in message["To"]]:
                return request(port, "GET", f"/api/v1/message/{message['ID']}").json()
        time.sleep(0.5)
    raise AssertionError(f"Mailpit got no mail to {address} (it holds {listed}):\n{stack.logs()}")


@pytest.fixture
def dev_stack(combo, engine, standins, app_image, tmp_path):
    """Run a copy of a bake's development stack on the host network; take it down after."""
    build = app_image(combo)
    project = shutil.copytree(build.context, tmp_path / "project")
    if combo.selected("use_frontend"):  # the assets service's esbuild writes there
        prepare_static(project)
    stack = open_stack(engine, project, f"fst3-devmail-{combo.id}", tmp_path, DEV_FILES)
    tag_dev_images(engine, standins, build, stack)
    try:
        yield stack
    finally:
        stack.down(volumes=True)


@pytest.mark.parametrize("combo", _auth_combination())
def test_dev_stack_mails_a_password_reset_to_mailpit(combo, dev_stack, tmp_path, report):
    """A password reset requested through the dev web reaches Mailpit, to the account's address,
    with a link under the dev stack's PUBLIC_URL."""
    stack = dev_stack
    started = time.monotonic()
    web = up_dev(stack)
    port = stack.ports[web]
    public_url = stack.config["services"][web]["environment"]["PUBLIC_URL"]
    email = "reset@example.com"
    sign_up(stack, port, tmp_path, email, web)
    reply = request(port, "POST", "/api/auth/password-reset", {"email": email})
    assert reply.status == 202, f"{reply}\n{stack.logs()}"
    mail = _mail_to(stack.ports[MAILPIT], email, stack)
    seconds = time.monotonic() - started
    report(f"dev stack {combo.id}: reset mail in Mailpit {seconds:.1f} s after up")
    links = re.findall(r"https?://\S+", mail["Text"])
    assert any(link.startswith(f"{public_url}/reset-password?token=") for link in links), mail
