"""The cookiecutter CLI, with --no-input or typed answers, gives a service that gunicorn serves."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# Typed answers, in prompt order: name, slug, package, description, author, email,
# then choices: python 3.13 (2), postgres no (2), redis yes (1), nginx no (1), kubernetes no (1).
TYPED = "Orders API\n\n\nShips orders\nAda\nada@example.org\n2\n2\n1\n1\n1\n"


def free_port() -> int:
    """Return a free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cookiecutter(template_dir, output: Path, args: list[str], stdin: str | None = None) -> None:
    """Run the cookiecutter CLI with a private HOME (no replay or config leaks)."""
    env = {**os.environ, "HOME": str(output)}
    cli = Path(sys.executable).with_name("cookiecutter")
    subprocess.run(
        [str(cli), "-o", str(output), *args, str(template_dir)],
        input=stdin,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


def request(url: str, body: dict | None = None) -> tuple[int, dict]:
    """Send one request; return status and JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def serve_and_probe(project: Path, package: str, clean_env: dict, tmp_path: Path) -> None:
    """Start gunicorn with the project's config; check health, readiness and the API."""
    port = free_port()
    env = {
        **clean_env,
        "APP_ENV": "development",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [*command, f"{package}:create_app()"], cwd=project, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # up to ~10 s for the first answer
            try:
                if request(base + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail((tmp_path / "gunicorn.log").read_text())
        assert request(base + "/readyz")[0] == 200
        status, item = request(base + "/api/items", {"name": "from the CLI test"})
        assert status == 201
        assert request(f"{base}/api/items/{item['id']}") == (200, item)
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0
        log.close()


@pytest.mark.xdist_group("cli")
def test_no_input_bake_serves(template_dir, tmp_path, clean_env):
    """It generates the defaults with --no-input, and gunicorn serves them."""
    cookiecutter(template_dir, tmp_path, ["--no-input"])
    serve_and_probe(tmp_path / "my-service", "my_service", clean_env, tmp_path)


@pytest.mark.xdist_group("cli")
def test_typed_answers_bake_serves(template_dir, tmp_path, clean_env):
    """It takes answers typed at the prompts, and gunicorn serves the result."""
    cookiecutter(template_dir, tmp_path, [], stdin=TYPED)
    project = tmp_path / "orders-api"
    assert (project / "orders_api" / "redis_store.py").exists()
    assert not (project / "migrations").exists()
    workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert 'python-version: "3.13"' in workflow
    serve_and_probe(project, "orders_api", clean_env, tmp_path)
