"""The development stack (`make up-dev`) delivers the service's mail to its Mailpit service, and
docs/auth.md's walk from a fresh bake to a signed-up user runs on it as written.

Mailpit cannot be pulled here: the stack runs the Mailpit stand-in (standins/mailpit), which
accepts SMTP and answers the part of Mailpit's HTTP API read below.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .matrix import TIER3, docker_params
from .net import request
from .stack import open_stack, sign_up
from .test_dev_assets import prepare_static, tag_dev_images, up_dev

DEV_FILES = ("compose.yaml", "compose.dev.yaml")
MAIL_TIMEOUT = 30  # seconds for a mail sent at once (no Celery) to reach Mailpit
MAILPIT = "mailpit"  # compose.dev.yaml's service
WALK = "## From a fresh bake to a signed-up user"  # docs/auth.md's section
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.DOTALL | re.MULTILINE)
# The ports the walk names: the web's published one (HTTP_PORT's default) and Mailpit's API.
WALK_PORTS = {"web": 8000, MAILPIT: 8025}
PACE = 1  # seconds before each command, as a person pastes them: a mail leaves after its 202
WALK_TIMEOUT = 120


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


def walk_script(project: Path) -> tuple[str, list[int]]:
    """Return the commands of docs/auth.md's walk after `make up-dev` (the stack is up), and the
    statuses their comments promise (`# 202`), in order."""
    text = (project / "docs" / "auth.md").read_text()
    assert WALK in text, f"docs/auth.md has no {WALK!r}"
    blocks = SH_BLOCK.findall(text.split(WALK, 1)[1].split("\n## ", 1)[0])
    lines = [line for block in blocks for line in block.splitlines()]
    assert lines and lines[0].startswith("make up-dev"), lines
    script = "\n".join(lines[1:])
    promised = [int(s) for s in re.findall(r"#\s*(\d{3})\b", script)]
    assert promised.count(204) >= 2 and 201 in promised, f"statuses {promised}:\n{script}"
    return script, promised


@pytest.mark.parametrize("combo", _auth_combination())
def test_the_walk_of_docs_auth_signs_up_verifies_and_resets_through_mailpit(
    combo, dev_stack, report
):
    """docs/auth.md's walk, run as written against the dev stack (its ports moved to the stack's
    loopback ones) with sign-up on in .env: each request answers the status its comment says,
    with each token read from Mailpit's API."""
    stack = dev_stack
    env = stack.project_dir / ".env"
    env.write_text(env.read_text().replace("AUTH_SIGN_UP=false", "AUTH_SIGN_UP=true"))
    script, promised = walk_script(stack.project_dir)
    web = up_dev(stack)
    ports = {"web": stack.ports[web], MAILPIT: stack.ports[MAILPIT]}
    for name, port in WALK_PORTS.items():
        script = re.sub(rf"127\.0\.0\.1:{port}\b", f"127.0.0.1:{ports[name]}", script)
    started = time.monotonic()
    walked = subprocess.run(
        ["bash", "-c", f"trap 'sleep {PACE}' DEBUG\n{script}"],
        capture_output=True, text=True, timeout=WALK_TIMEOUT, check=False,
    )  # fmt: skip
    answered = [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3})", walked.stdout, re.MULTILINE)]
    report(f"dev stack {combo.id}: docs/auth.md's walk in {time.monotonic() - started:.1f} s")
    assert answered == promised, f"{walked.stdout}\n{walked.stderr}\n{stack.logs()}"
