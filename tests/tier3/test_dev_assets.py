"""The development stack (`make up-dev`) rebuilds the pages' assets when their sources change."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import project_files
import pytest

from .images import build_image
from .matrix import TIER3, docker_params
from .net import request
from .project import pulled_services, stand_in_kind
from .stack import open_stack, wait_ready

DEV_FILES = ("compose.yaml", "compose.dev.yaml")
REBUILD_TIMEOUT = 60  # seconds for esbuild's watch to write a changed bundle
NODE_UID = 1000  # the uid compose.dev.yaml runs the assets service as: a developer's usual uid


def _frontend_combination() -> list:
    """Return one served frontend combination whose development web honours PORT (gunicorn)."""
    combos = [
        combo
        for combo in TIER3
        if combo.selected("use_frontend") and combo.value("app_server") == "gunicorn"
    ]
    return docker_params(combos[:1])


def prepare_static(project: Path) -> Path:
    """Do what `make up-dev` does before compose, over an earlier `make assets`'s manifest."""
    static = project / project_files.package_name(project) / "static"
    static.mkdir(exist_ok=True)
    (static / "cache_manifest.json").write_text(json.dumps({"style.css": "style-0.css"}))
    subprocess.run(["make", "dev-static"], cwd=project, check=True, capture_output=True)
    assert not (static / "cache_manifest.json").exists(), "make dev-static kept the manifest"
    os.chown(static, NODE_UID, NODE_UID)  # a developer with uid 1000 owns what mkdir made
    return static


def tag_dev_images(engine, standins, build, stack) -> None:
    """Give each service of a development stack its image: the app's build, the Dockerfile's other
    stages built, a stand-in for each pulled image."""
    for name, service in stack.config["services"].items():
        # A service naming no image runs compose's default name, from the project name `-p` gives.
        image = service.get("image") or f"{stack.name}-{name}"
        if name in project_files.stage_services(stack.config):  # the Node stage, nginx's
            build_image(engine, stack.project_dir, image, target=service["build"]["target"])
        elif name in pulled_services(stack.config):
            standins.service(stand_in_kind(image), image)
        else:
            engine.docker("tag", build.tag, image)


def up_dev(stack) -> str:
    """Start a development stack, wait until its web is ready; return the web service's name."""
    try:
        stack.up()
    except Exception as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None
    # The web of compose.yaml alone (the dev file gives it a command; it also publishes PostgreSQL).
    web = project_files.web_service(project_files.compose_model(stack.project_dir))
    wait_ready(stack, stack.ports[web])
    return web


def _wait_for_text(port: int, path: str, text: str, stack) -> None:
    """Poll a URL of the dev web until its body holds ``text``; fail with the logs otherwise."""
    deadline = time.monotonic() + REBUILD_TIMEOUT
    reply = None
    while time.monotonic() < deadline:
        reply = request(port, "GET", path)
        if reply.status == 200 and text.encode() in reply.body:
            return
        time.sleep(0.5)
    raise AssertionError(f"{path} never held {text!r} (last: {reply}):\n{stack.logs()}")


@pytest.fixture
def dev_stack(combo, engine, standins, app_image, tmp_path):
    """Run a copy of a bake's development stack on the host network; take it down after."""
    build = app_image(combo)
    project = shutil.copytree(build.context, tmp_path / "project")  # the test edits its sources
    static = prepare_static(project)
    stack = open_stack(engine, project, f"fst3-devassets-{combo.id}", tmp_path, DEV_FILES)
    tag_dev_images(engine, standins, build, stack)
    try:
        yield stack, project, static
    finally:
        stack.down(volumes=True)


@pytest.mark.parametrize("combo", _frontend_combination())
def test_dev_stack_rebuilds_assets_on_a_source_change(combo, dev_stack, report):
    """It serves esbuild's bundles under plain names and serves a changed stylesheet soon after."""
    stack, project, static = dev_stack
    started = time.monotonic()
    port = stack.ports[up_dev(stack)]
    _wait_for_text(port, "/static/style.css", "{", stack)  # esbuild's first build
    report(f"dev stack {combo.id}: assets built in {time.monotonic() - started:.1f} s")
    page = request(port, "GET", "/")
    assert page.status == 200, page
    assert b"/static/style.css" in page.body and b"/static/app.js" in page.body, page.body[:3000]
    assert (static / "style.css").stat().st_uid == NODE_UID

    marker = f"dev-marker-{secrets.token_hex(4)}"
    source = project / "assets" / "src" / "main.css"
    changed = time.monotonic()
    source.write_text(source.read_text() + f"\n.{marker} {{ color: red; }}\n")
    _wait_for_text(port, "/static/style.css", marker, stack)
    report(f"dev stack {combo.id}: stylesheet rebuilt {time.monotonic() - changed:.1f} s after")
