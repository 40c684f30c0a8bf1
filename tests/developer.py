"""What a developer does with a generated project: run its make targets, call its JSON API."""

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path


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


def request(url: str, body: dict | None = None) -> tuple[int, dict]:
    """Send one request (a JSON body makes it a POST); return status and JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
