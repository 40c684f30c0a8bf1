"""Every pinned runtime requirement has a wheel for every offered Python, on x86_64 and arm64."""

import json
import subprocess
import sys

import pytest
from combinations import BY_ID, PYTHON_VERSIONS

ALL_ON = BY_ID["pg-redis-nginx"]
PLATFORMS = {
    "x86_64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "aarch64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"],
}


def test_offered_versions_match_the_template(template_dir):
    """It checks exactly the Python versions cookiecutter.json offers."""
    offered = json.loads((template_dir / "cookiecutter.json").read_text())["python_version"]
    assert sorted(offered) == sorted(PYTHON_VERSIONS)


@pytest.mark.xdist_group(ALL_ON.id)
@pytest.mark.parametrize("arch", sorted(PLATFORMS))
@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_wheels_exist(bake, tmp_path, version, arch):
    """It downloads a binary wheel (no sdist) of every pinned runtime requirement."""
    requirements = bake(ALL_ON) / "requirements.txt"
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
            str(tmp_path),
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
    assert len(list(tmp_path.glob("*.whl"))) == len(pinned)
