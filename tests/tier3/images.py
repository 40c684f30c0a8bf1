"""Build generated projects' images and read what they hold."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from combinations import Combination

from .engine import DockerEngine

BUILD_TIMEOUT = 900
# What a developer's checkout holds and the image must not.
CONTEXT_LEFTOVERS = (".env", ".git", "tests")


@dataclass
class Build:
    """One `docker build` of a generated project: its image, time and output."""

    combo: Combination
    context: Path
    tag: str
    seconds: float
    output: str


def build_image(
    engine: DockerEngine,
    context: Path,
    tag: str,
    *,
    classic: bool = False,
    no_cache: bool = False,
    target: str | None = None,
) -> tuple[float, str]:
    """Build a project folder's Dockerfile on host networking; return seconds and all output."""
    args = ["build", "--network", "host", "-t", tag]
    if target:
        args += ["--target", target]
    if no_cache:
        args.append("--no-cache")
    if not classic:
        args += ["--progress", "plain"]
    started = time.monotonic()
    result = engine.docker(
        *args,
        ".",
        cwd=context,
        timeout=BUILD_TIMEOUT,
        env={"DOCKER_BUILDKIT": "0" if classic else "1"},
    )
    return time.monotonic() - started, result.stdout + result.stderr


def prepare_context(baked: Path, destination: Path) -> Path:
    """Copy a baked project and give it what a developer's checkout has: a .git folder."""
    shutil.copytree(baked, destination)
    subprocess.run(["git", "init", "-q", str(destination)], check=True, capture_output=True)
    for leftover in CONTEXT_LEFTOVERS:
        assert (destination / leftover).exists(), f"the build context lacks {leftover}"
    return destination


def package_dir(project: Path) -> Path:
    """Return the generated project's Python package (the folder, not tests/, with settings/)."""
    found = [
        path.parent.parent
        for path in project.glob("*/settings/__init__.py")
        if (path.parent.parent / "__init__.py").is_file() and path.parent.parent.name != "tests"
    ]
    assert len(found) == 1, f"no single package in {project}: {found}"
    return found[0]


def warnings_in(output: str) -> list[str]:
    """Return the lines of build output that report a warning."""
    return [
        line for line in output.splitlines() if re.search(r"\bwarn(ing)?\b", line, re.IGNORECASE)
    ]


def history_bytes(engine: DockerEngine, image: str) -> list[int]:
    """Return the sizes of an image's layers from `docker history`, oldest first."""
    out = engine.docker(
        "history", "--no-trunc", "--human=false", "--format", "{{.Size}}", image
    ).stdout
    return [int(size) for size in reversed(out.split())]


def added_bytes(engine: DockerEngine, image: str, base: str) -> int:
    """Return what an image adds on top of its base: its history beyond the base's layers."""
    own, under = history_bytes(engine, image), history_bytes(engine, base)
    assert own[: len(under)] == under, f"{image} is not built on {base}"
    return sum(own[len(under) :])


def megabytes(size: int) -> str:
    """Format a byte count in MB."""
    return f"{size / 1_000_000:.1f} MB"
