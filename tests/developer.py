"""What a developer does with a generated project: run its make targets, call its JSON API."""

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
# The uv cache `.ci/run` fills (python tools/lock.py cache .uvcache): bakes install offline from it.
UV_CACHE = Path(os.environ.get("UV_CACHE_DIR") or TEMPLATE / ".uvcache")
# What a test's copy of the template leaves out: the checkout's environment and caches (hundreds
# of megabytes, and written to by other tests while the copy runs).
TEMPLATE_ONLY = shutil.ignore_patterns(
    ".git", ".venv", ".uvcache", ".npmcache", "__pycache__", ".pytest_cache", ".ruff_cache"
)


def offline_uv(env: dict[str, str], cache: Path = UV_CACHE) -> dict[str, str]:
    """Return ``env`` with uv offline, installing only what ``cache`` holds."""
    return {**env, "UV_CACHE_DIR": str(cache), "UV_OFFLINE": "1", "UV_NO_CONFIG": "1"}


def uv(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the tools' uv offline on the tests' cache, blind to this machine's uv configuration."""
    env = offline_uv({k: v for k, v in os.environ.items() if not k.startswith("UV_")})
    return subprocess.run(
        [Path(sys.executable).parent / "uv", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def make(root: Path, env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run make in a generated project; return the finished process, whatever its status.

    Its input is empty, as in a script or CI job: a task that asks a question reads no answer.
    """
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def request(url: str, body: dict | None = None, token: str = "") -> tuple[int, dict]:
    """Send one request (a JSON body makes it a POST; a token, with its bearer header); return
    status and JSON body ({} for none)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=5) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
