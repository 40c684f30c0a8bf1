"""The frontend's images: the Node stand-in the asset stage builds on."""

from __future__ import annotations

from .matrix import DOCKER

pytestmark = DOCKER

NODE_IMAGE = "node:24.11.0-bookworm-slim"
PYTHON_IMAGE = "python:3.12.12-slim-bookworm"


def test_node_stand_in_runs_node_and_npm_under_the_pinned_name(engine, standins):
    """It tags Debian's nodejs and npm as the node image, and Python's stand-in as python."""
    standins.bases([NODE_IMAGE, PYTHON_IMAGE])
    script = "console.log(require('crypto').createHash('sha256').update('x').digest('hex'))"
    ran = engine.docker("run", "--rm", "--network", "none", NODE_IMAGE, "node", "-e", script)
    assert ran.stdout.strip().startswith("2d711642b726b044")
    npm = engine.docker("run", "--rm", "--network", "none", NODE_IMAGE, "npm", "--version")
    assert npm.stdout.strip()[0].isdigit(), npm.stdout
    python = engine.docker("run", "--rm", "--network", "none", PYTHON_IMAGE, "python", "-V")
    assert python.stdout.startswith("Python 3."), python.stdout
