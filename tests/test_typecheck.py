"""Tier 1: every bake type-checks clean with its own mypy configuration (strict for its package).

mypy runs as `make typecheck` runs it, from the bake's folder with no arguments: the files and
options come from the bake's pyproject.toml. The last tests show the configuration is strict and
that the same run reports a type error written into a copy of a bake, so a clean run means
something. The bakes of one xdist worker share mypy's cache (projects.mypy_cache), outside the
bakes.
"""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from combinations import ALL_OFF, ALL_ON, ALL_ON_GRANIAN, COMBINATIONS, params
from project_files import package_name
from projects import mypy_cache

ERROR = " error: "


def mypy(root: Path, env: dict, caches: Path) -> subprocess.CompletedProcess:
    """Run mypy in ``root`` with the bake's configuration and its version's shared cache."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--show-traceback",
            "--cache-dir",
            str(mypy_cache(caches, root)),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


# All-on and all-off are type-checked by `make typecheck` in tests/test_readme_recipes.py, with
# the README's examples applied.
CHECKED_WITH_THE_EXAMPLES = {ALL_ON, ALL_OFF}


@pytest.mark.parametrize(
    "combo",
    params([c for c in [*COMBINATIONS, ALL_ON_GRANIAN] if c not in CHECKED_WITH_THE_EXAMPLES]),
)
def test_the_bake_has_no_type_errors(bake, clean_env, mypy_caches, combo):
    """It finds no error in the package, the server config and the tests (exit status 0)."""
    result = mypy(bake(combo), clean_env, mypy_caches)
    errors = [line for line in result.stdout.splitlines() if ERROR in line]
    assert result.returncode == 0 and not errors, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.parametrize("combo", params([ALL_OFF]))
def test_the_package_is_checked_strictly_and_make_typecheck_runs_mypy(bake, combo):
    """It checks the package with strict = true, and `make typecheck` runs .venv's mypy."""
    root = bake(combo)
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mypy"]
    package = package_name(root)
    assert config["strict"] is True and package in config["files"]
    assert not [o for o in config.get("overrides", []) if f"{package}.*" in o["module"]]
    makefile = (root / "Makefile").read_text()
    assert "\ntypecheck: install ## " in makefile
    assert "\n\t$(BIN)/mypy\n" in makefile.split("\ntypecheck:")[1].split("\n.PHONY")[0]


@pytest.mark.parametrize("combo", params([ALL_OFF]))
def test_a_type_error_in_the_package_is_reported(bake, clean_env, mypy_caches, tmp_path, combo):
    """It reports a str passed where the code declares an int, naming the file and the line,
    also where the shared cache holds the same copy checked clean a moment before."""
    root = tmp_path / "project"
    shutil.copytree(bake(combo), root)
    package = package_name(root)
    clean = mypy(root, clean_env, mypy_caches)
    assert clean.returncode == 0, clean.stdout[-6000:] + clean.stderr[-2000:]
    with (root / package / "platform" / "errors.py").open("a") as module:
        module.write('\n\ndef _wrong() -> int:\n    return json_error(400, "Bad", "x")[1] + "1"\n')
    result = mypy(root, clean_env, mypy_caches)
    assert result.returncode == 1
    assert f"{package}/platform/errors.py:" in result.stdout and "[operator]" in result.stdout
