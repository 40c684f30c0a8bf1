"""Every lock's runtime packages have a wheel for every offered Python, on x86_64 and arm64.

Read from the locks themselves (uv.lock names each file of each package): nothing is downloaded.
The image installs wheels only when one fits; a package with an sdist alone would need a compiler
the slim image does not have.
"""

import json
import sys
import tomllib
from pathlib import Path

import pytest
from combinations import PYTHON_VERSIONS
from packaging.markers import Marker, default_environment
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import lock

PLATFORMS = {
    "x86_64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "aarch64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"],
}


def test_every_offered_version_has_a_pinned_image():
    """It finds a pinned base image for exactly the Python versions the prompt offers."""
    images = json.loads(lock.COOKIECUTTER_JSON.read_text())["_python_images"]
    assert sorted(images) == sorted(PYTHON_VERSIONS)


def image_version(version: str) -> str:
    """Return the exact Python version of the base image offered for ``version`` (its tag's)."""
    images = json.loads(lock.COOKIECUTTER_JSON.read_text())["_python_images"]
    return images[version].split(":")[1].split("-")[0]


def runtime_packages(locked: dict, environment: dict[str, str]) -> dict[str, dict]:
    """Return the lock's packages the project's runtime needs in ``environment``, by name."""
    packages = {package["name"]: package for package in locked["package"]}
    (project,) = [p for p in locked["package"] if p.get("source") == {"virtual": "."}]
    needed: dict[str, dict] = {}
    wanted = [(d, set(d.get("extra", []))) for d in project.get("dependencies", [])]
    while wanted:
        dependency, extras = wanted.pop()
        marker = dependency.get("marker")
        if marker and not Marker(marker).evaluate(environment):
            continue
        package = packages[dependency["name"]]
        needed[package["name"]] = package
        wanted += [(d, set(d.get("extra", []))) for d in package.get("dependencies", [])]
        for extra in extras:
            wanted += [(d, set()) for d in package["optional-dependencies"][extra]]
    return needed


@pytest.mark.parametrize("arch", sorted(PLATFORMS))
@pytest.mark.parametrize("version", PYTHON_VERSIONS)
@pytest.mark.parametrize("name", sorted(lock.distinct()))
def test_every_runtime_package_has_a_wheel(name, version, arch):
    """It finds, in each lock, a wheel of every runtime package for the image's Python and CPU."""
    locked = tomllib.loads((lock.LOCKS / name).read_text())
    full = image_version(version)
    environment = {
        **default_environment(),
        "python_full_version": full,
        "python_version": ".".join(full.split(".")[:2]),
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": arch,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    interpreter = tuple(map(int, full.split(".")[:2]))
    tags = {
        *cpython_tags(interpreter, platforms=PLATFORMS[arch]),
        *compatible_tags(interpreter, "cp" + "".join(map(str, interpreter)), PLATFORMS[arch]),
    }
    needed = runtime_packages(locked, environment)
    without = [
        f"{package['name']}=={package['version']}"
        for package in needed.values()
        if not any(
            tags & set(parse_wheel_filename(wheel["url"].rsplit("/", 1)[1])[3])
            for wheel in package.get("wheels", [])
        )
    ]
    assert not without, f"no wheel for Python {full} on {arch}: {without}"
    assert canonicalize_name("flask") in needed
