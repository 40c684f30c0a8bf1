"""Every pinned runtime requirement has a wheel for every offered Python, on x86_64 and arm64."""

import json
import subprocess
import sys

import pytest
from combinations import ALL_ON, PYTHON_VERSIONS, UNION

PLATFORMS = {
    "x86_64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "aarch64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"],
}


def test_every_offered_version_has_a_pinned_image(template_dir):
    """It finds a pinned base image for exactly the Python versions the prompt offers."""
    images = json.loads((template_dir / "cookiecutter.json").read_text())["_python_images"]
    assert sorted(images) == sorted(PYTHON_VERSIONS)


@pytest.mark.xdist_group(ALL_ON.id)
@pytest.mark.parametrize("arch", sorted(PLATFORMS))
@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_wheels_exist(bake, tmp_path, version, arch):
    """It downloads a binary wheel (no sdist) of every pinned runtime requirement of any option.

    The union bakes (all-on, then each other choice such as app_server=granian) hold them all.
    """
    lines = {
        line
        for combo in UNION
        for line in (bake(combo) / "requirements.txt").read_text().splitlines()
    }
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(sorted(lines)) + "\n")
    wheels = tmp_path / "wheels"
    platforms = [arg for name in [*PLATFORMS[arch], "any"] for arg in ("--platform", name)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            version,
            "--implementation",
            "cp",
            *platforms,
            "--dest",
            str(wheels),
            "--requirement",
            str(requirements),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pinned = [
        line for line in requirements.read_text().splitlines() if line and not line.startswith("#")
    ]
    assert len(list(wheels.glob("*.whl"))) == len(pinned)
