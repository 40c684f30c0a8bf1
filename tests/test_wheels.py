"""Every locked package has a wheel for every offered Python, on x86_64 and arm64.

Read from the template's one lock (uv.lock names each file of each package), whose packages every
bake's lock is a part of: nothing is downloaded. The image installs the runtime packages, wheels
only when one fits: a package with an sdist alone would need a compiler the slim image does not
have. The development group (CI's and the developer's `uv sync`) is held to the same.
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


def needed_packages(locked: dict, environment: dict[str, str], dev: bool) -> dict[str, dict]:
    """Return the lock's packages the project needs in ``environment`` (with ``dev``, its dev
    group's too), by name and version."""
    versions: dict[str, list[dict]] = {}
    for package in locked["package"]:
        versions.setdefault(package["name"], []).append(package)
    (project,) = [p for p in locked["package"] if p.get("source") == {"virtual": "."}]
    needed: dict[str, dict] = {}
    wanted = [*project.get("dependencies", [])]
    wanted += project.get("dev-dependencies", {}).get("dev", []) if dev else []
    while wanted:
        dependency = wanted.pop()
        marker = dependency.get("marker")
        if marker and not Marker(marker).evaluate(environment):
            continue
        (package,) = [
            p
            for p in versions[dependency["name"]]
            if dependency.get("version", p["version"]) == p["version"]
        ]
        needed[f"{package['name']}=={package['version']}"] = package
        wanted += package.get("dependencies", [])
        for extra in dependency.get("extra", []):
            wanted += package["optional-dependencies"][extra]
    return needed


def without_wheel(locked: dict, version: str, arch: str, dev: bool) -> list[str]:
    """Return each package the project needs (``dev``: its dev group too) with no wheel for the
    image's Python ``version`` on ``arch``, as name==version."""
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
    needed = needed_packages(locked, environment, dev)
    assert canonicalize_name("flask") in {name.partition("==")[0] for name in needed}
    return [
        pinned
        for pinned, package in needed.items()
        if not any(
            tags & set(parse_wheel_filename(wheel["url"].rsplit("/", 1)[1])[3])
            for wheel in package.get("wheels", [])
        )
    ]


@pytest.mark.parametrize("dev", [False, True], ids=["runtime", "dev"])
@pytest.mark.parametrize("arch", sorted(PLATFORMS))
@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_every_package_has_a_wheel(version, arch, dev):
    """It finds in the lock a wheel of every package the project needs (runtime, or with its dev
    group, import-linter's included) for the image's Python and CPU."""
    locked = tomllib.loads(lock.UNIVERSAL.read_text())
    assert not without_wheel(locked, version, arch, dev), f"no wheel for {version} on {arch}"
    needed = needed_packages(locked, default_environment(), dev=True)
    assert any(name.startswith("import-linter==") for name in needed)


def test_a_package_with_an_sdist_alone_is_reported():
    """It names the package whose wheels were taken out of the lock, and only that one."""
    locked = tomllib.loads(lock.UNIVERSAL.read_text())
    (greenlet,) = [p for p in locked["package"] if p["name"] == "greenlet"]
    greenlet["wheels"] = [w for w in greenlet["wheels"] if "x86_64" not in w["url"]]
    assert without_wheel(locked, PYTHON_VERSIONS[0], "x86_64", dev=False) == [
        f"greenlet=={greenlet['version']}"
    ]
    assert not without_wheel(locked, PYTHON_VERSIONS[0], "aarch64", dev=False)
