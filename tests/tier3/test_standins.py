"""The stand-ins run what their tags name, and the generated suite passes inside the 3.14 image.

The suite's run installs the bake's development environment the way `make install` does, with
`uv sync --locked` from the bake's uv.lock, using the uv image the Dockerfile's builder names, into
a container of the Python stand-in; it reaches the package index like the image build does.
"""

from __future__ import annotations

import re
import shutil
from importlib.metadata import version

import project_files
import pytest
from combinations import DEFAULTS

from .images import build_image
from .matrix import DOCKER, TIER3
from .project import base_images, pulled_services, repository, stand_in_kind
from .standins import cache_dir, tag_version

pytestmark = DOCKER

SUITE_PYTHON = "3.14"


def _most_selected(combos):
    """Return the combination selecting most yes/no options (the first such)."""
    return max(combos, key=lambda combo: sum(value == "yes" for value in combo.answers.values()))


# The 3.14 row selecting most options: the generated suite runs there.
SUITE_COMBO = _most_selected(c for c in TIER3 if c.value("python_version") == SUITE_PYTHON)
TESTER = """\
FROM {uv} AS uv
FROM {python}
COPY --from=uv /uv /uvx /usr/local/bin/
"""
# In the container: the locked environment (development group included) into /opt/venv, with
# the image's own interpreter only, then the project's tests as tier 1 runs them.
SUITE_SCRIPT = """\
set -eu
uv sync --locked
/opt/venv/bin/python -c 'import sys; print("suite python", sys.version.split()[0])'
exec /opt/venv/bin/python -m pytest -q -rfEs -p no:cacheprovider -p no:xdist
"""
SUITE_ENV = {
    "UV_PROJECT_ENVIRONMENT": "/opt/venv",
    "UV_PYTHON_DOWNLOADS": "never",
    "UV_LINK_MODE": "copy",
    "UV_CACHE_DIR": "/uv-cache",
}
SUITE_TIMEOUT = 900
# As in tier 1, only tests that need a real Redis or PostgreSQL server may skip.
SERVER_SKIPS = ("needs a Redis server", "needs a PostgreSQL server")


def _uv_image(images: list[str]) -> str:
    """Return the uv image a Dockerfile's FROM lines name (the builder's uv stage)."""
    found = [image for image in images if repository(image) == "uv"]
    assert len(found) == 1, (
        f"the Dockerfile names no single uv image (FROM ...uv:<version>): {images}"
    )
    return found[0]


def test_stand_ins_run_the_versions_their_tags_name(standins, bake):
    """Each Python, Node, PostgreSQL, Redis and nginx stand-in runs the version its tag names.

    The Jaeger stand-in (a profile's service) runs no Jaeger: it says it is the tests' OTLP
    receiver, decoding with the test environment's opentelemetry-proto. The Mailpit stand-in (the
    development stack's) runs no Mailpit: it says it is aiosmtpd behind a small HTTP API.
    """
    images = {image for combo in TIER3 for image in base_images(bake(combo) / "Dockerfile")}
    files = ("compose.yaml", "compose.dev.yaml")
    model = project_files.compose_model(bake(_most_selected(TIER3)), files, profiles=("*",))
    services = {s["image"] for s in pulled_services(model).values() if "build" not in s}
    (jaeger,) = [image for image in services if stand_in_kind(image) == "jaeger"]
    (mailpit,) = [image for image in services if stand_in_kind(image) == "mailpit"]
    pythons = {image for image in images if image.startswith("python:")}
    assert {tag_version(image)[:4] for image in pythons} == {"3.13", "3.14", "3.15"}, pythons
    described = {}
    for image in sorted(images | services):
        if repository(image) == "uv":
            continue  # no program to ask but uv, checked when the stand-in is made
        if image in services:
            tag = standins.service(stand_in_kind(image), image)
        else:
            tag = standins.bases([image])[image]
        described[image] = standins.describe(tag)
    receiver = f"the tests' OTLP receiver (opentelemetry-proto {version('opentelemetry-proto')})"
    assert described.pop(jaeger) == f"tier-3 stand-in for Jaeger: {receiver}"
    assert re.fullmatch(r"tier-3 stand-in for Mailpit: aiosmtpd [\d.]+ .*", described.pop(mailpit))
    wrong = {
        image: line
        for image, line in described.items()
        if not re.search(rf"(?<![\d.]){re.escape(tag_version(image))}(?![\d.])", line)
    }
    assert not wrong, f"stand-ins run other versions than their tags name: {wrong}"


@pytest.mark.parametrize("combo", [pytest.param(SUITE_COMBO, id=SUITE_COMBO.id)])
def test_generated_suite_passes_inside_the_python_image(
    combo, engine, standins, bake, tmp_path, report
):
    """The bake's own tests pass in its Python image, installed with uv from its uv.lock."""
    assert DEFAULTS["python_version"] == SUITE_PYTHON, "the suite runs on the default Python"
    project = shutil.copytree(bake(combo), tmp_path / "project")
    images = base_images(project / "Dockerfile")
    (python,) = [image for image in images if image.startswith("python:")]
    assert tag_version(python).startswith(f"{SUITE_PYTHON}."), python
    uv = _uv_image(images)
    standins.bases([python, uv])
    assert (project / "uv.lock").is_file(), "the bake has no uv.lock to install from"
    context = tmp_path / "tester"
    context.mkdir()
    (context / "Dockerfile").write_text(TESTER.format(uv=uv, python=python))
    build_image(engine, context, "fst3-suite:tester")
    cache = cache_dir() / "uv-cache"  # kept between runs: the next one downloads nothing
    cache.mkdir(exist_ok=True)
    flags = ["--network", "host", "-v", f"{project}:/src", "-v", f"{cache}:/uv-cache", "-w", "/src"]
    flags += [flag for name, value in SUITE_ENV.items() for flag in ("-e", f"{name}={value}")]
    ran = engine.docker(
        "run",
        "--rm",
        *flags,
        "fst3-suite:tester",
        "sh",
        "-c",
        SUITE_SCRIPT,
        check=False,
        timeout=SUITE_TIMEOUT,
    )
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output[-8000:]
    assert f"suite python {tag_version(python)}\n" in ran.stdout, output[-4000:]
    summary = ran.stdout.strip().splitlines()[-1]
    assert " passed" in summary, output[-4000:]
    skipped = [line for line in ran.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all(any(reason in line for reason in SERVER_SKIPS) for line in skipped), skipped
    report(f"generated suite in {python} (stand-in, {combo.id}): {summary}")
