"""Tier 1: the template's one lock and each bake's trim of it are current, complete, installable.

CI audits a bake's lock and writes an SBOM.

Nothing here leaves the machine: uv installs offline from a uv cache (UV_CACHE_DIR, default
`.uvcache` in the template) that `python tools/lock.py cache .uvcache` fills before the test run
(`.ci/run` does).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from combinations import ALL_ON, ALL_ON_GRANIAN, COMBINATIONS, params
from developer import uv
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

TEMPLATE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TEMPLATE / "tools"))
import lock  # noqa: E402

FILL = "fill it first: python tools/lock.py cache .uvcache"
BIN = Path(sys.executable).parent


def universal(folder: Path) -> Path:
    """Write the universal project (every option's dependencies) and its lock into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(lock.universal_pyproject())
    shutil.copyfile(lock.UNIVERSAL, folder / "uv.lock")
    return folder


def project(folder: Path, root: Path) -> Path:
    """Copy a bake's pyproject.toml and uv.lock into ``folder`` (its venv then lives there)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copyfile(root / name, folder / name)
    return folder


def runtime(folder: Path) -> dict[str, str]:
    """Return name -> version of the lock's runtime packages (what the image installs)."""
    result = uv(
        "export", "--locked", "--no-dev", "--no-emit-project", "--no-hashes",
        "--format", "requirements-txt", "--python", sys.executable, cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in map(str.strip, result.stdout.splitlines()) if line[:1] not in "#"]
    return {
        canonicalize_name(requirement.name): str(requirement.specifier).removeprefix("==")
        for requirement in map(Requirement, lines)
        if not requirement.marker or requirement.marker.evaluate()
    }


def test_the_template_ships_one_current_lock(tmp_path):
    """It ships one lock, current for the union of every selection's dependencies, under 1.5 MB."""
    assert sorted(p.name for p in lock.LOCKS.iterdir()) == [lock.FORKS.name, lock.UNIVERSAL.name]
    assert lock.UNIVERSAL.stat().st_size < 1_500_000
    result = uv("lock", "--locked", cwd=universal(tmp_path))
    assert result.returncode == 0, f"{result.stderr}\n(python tools/lock.py re-locks it)"


def test_a_lock_that_does_not_match_its_pyproject_is_refused(tmp_path):
    """It has uv refuse a lock pyproject.toml moved away from (as CI's uv sync --locked does).

    Offline, uv then fails to re-resolve rather than saying the lock is stale: either way, no.
    """
    folder = universal(tmp_path)
    assert uv("lock", "--locked", cwd=folder).returncode == 0
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('    "click==8.5.1",\n', ""))
    result = uv("lock", "--locked", cwd=folder)
    assert result.returncode != 0
    assert "error:" in result.stderr, result.stderr


@pytest.mark.parametrize("combo", params([*COMBINATIONS, ALL_ON_GRANIAN]))
def test_bake_holds_the_current_lock_of_its_selection(bake, combo):
    """It bakes a uv.lock current for the bake's pyproject.toml, naming the project as it does."""
    project_dir = bake(combo)
    assert not (project_dir / "uv-lock").exists()
    result = uv("lock", "--locked", cwd=project_dir)
    assert result.returncode == 0, result.stderr
    locked = tomllib.loads((project_dir / "uv.lock").read_text())
    name = tomllib.loads((project_dir / "pyproject.toml").read_text())["project"]["name"]
    assert {"name": name, "virtual": "."} in [
        {"name": p["name"], **p["source"]} for p in locked["package"]
    ]


@pytest.mark.parametrize("name", ["aa-first", "mid-name", "zz-last"])
def test_the_lock_names_the_project_wherever_it_sorts(cookies, name):
    """It renames the lock's project as the slug, at the place uv keeps it (a current lock)."""
    result = cookies.bake(extra_context={"project_name": "Any", "project_slug": name})
    assert result.exit_code == 0, result.exception
    check = uv("lock", "--locked", cwd=result.project_path)
    assert check.returncode == 0, check.stderr


def test_a_slug_named_as_a_dependency_is_refused(tmp_path):
    """It refuses a project named as one of its dependencies (uv could not lock it): no files."""
    result = subprocess.run(
        [BIN / "cookiecutter", "--no-input", "-o", tmp_path / "out", TEMPLATE,
         "project_name=Python Dotenv"],
        env={**os.environ, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "project_slug='python-dotenv' is a dependency's name; choose another" in result.stderr
    assert not list((tmp_path / "out").iterdir())


@pytest.fixture(scope="module")
def synced(tmp_path_factory, bake):
    """Return a function that installs a bake's lock offline (uv sync --locked) once: its folder."""
    folders: dict[tuple[str, bool], Path] = {}

    def _sync(combo, dev: bool = True) -> Path:
        if (combo.id, dev) not in folders:
            folder = project(tmp_path_factory.mktemp("lock"), bake(combo))
            groups = [] if dev else ["--no-dev"]
            result = uv("sync", "--locked", *groups, "--python", sys.executable, cwd=folder)
            assert result.returncode == 0, f"{result.stderr[-3000:]}\n({FILL})"
            folders[combo.id, dev] = folder
        return folders[combo.id, dev]

    return _sync


@pytest.mark.parametrize("combo", params([*COMBINATIONS, ALL_ON_GRANIAN]))
def test_bake_installs_offline_with_nothing_missing(synced, combo):
    """It installs each bake's lock with uv sync --locked from the cache; nothing is missing."""
    folder = synced(combo)
    result = uv("pip", "check", "--python", str(folder / ".venv" / "bin" / "python"), cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr


def workflow_step(project_dir: Path, marker: str) -> str:
    """Return the run script of the one CI step that mentions ``marker``."""
    jobs = yaml.safe_load((project_dir / ".github/workflows/ci.yml").read_text())["jobs"]
    runs = [s["run"] for job in jobs.values() for s in job["steps"] if marker in s.get("run", "")]
    assert len(runs) == 1, runs
    return runs[0]


def dev_pin(name: str, requirements: str = "requirements-dev.txt") -> str:
    """Return the version the template's own requirements file pins ``name`` at."""
    text = (TEMPLATE / requirements).read_text()
    return re.search(rf"^{re.escape(name)}==(\S+)$", text, re.MULTILINE)[1]


@pytest.mark.xdist_group(ALL_ON.id)
def test_ci_sbom_lists_every_installed_distribution(bake, synced):
    """It runs the CI's SBOM command on an environment from the lock: every distribution is in."""
    project_dir = bake(ALL_ON)
    script = workflow_step(project_dir, "cyclonedx-py environment")
    pin = dev_pin("cyclonedx-bom", "tools/requirements-sbom.txt")
    assert f"cyclonedx-bom=={pin}" in script
    # The command runs inside the image on its venv, the one the Dockerfile's uv sync makes.
    assert "UV_PROJECT_ENVIRONMENT=/opt/venv" in (project_dir / "Dockerfile").read_text()
    command = re.search(r"cyclonedx-py environment ([^']*) /opt/venv/bin/python'", script)
    folder = synced(ALL_ON, dev=False)
    venv = folder / ".venv"
    result = subprocess.run(
        [BIN / "cyclonedx-py", "environment", *command[1].split(), venv / "bin" / "python"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    listed = {
        canonicalize_name(c["name"]): c["version"] for c in json.loads(result.stdout)["components"]
    }
    assert listed == runtime(folder)


@pytest.mark.xdist_group(ALL_ON.id)
def test_ci_audits_exactly_the_runtime_packages_of_the_lock(bake):
    """It runs the CI's pip-audit commands (dry run: no database here) over the lock's runtime."""
    project_dir = bake(ALL_ON)
    export, audit = workflow_step(project_dir, "pip-audit").strip().splitlines()
    export_args = re.fullmatch(r"\.uv/bin/uv (export .*)", export)[1].split()
    assert "--locked" in export_args and "--no-dev" in export_args
    result = uv(*export_args, cwd=project_dir)
    assert result.returncode == 0, result.stderr
    spec, command = re.fullmatch(r"pipx run --spec (\S+) pip-audit (.*)", audit).groups()
    assert spec == f"pip-audit=={dev_pin('pip-audit')}"
    result = subprocess.run(
        [BIN / "pip-audit", "--dry-run", *command.split()],
        cwd=project_dir, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert f"would have audited {len(runtime(project_dir))} packages" in result.stderr


@pytest.mark.parametrize("combo", params())
def test_make_uses_the_uv_the_image_builds_with(bake, combo):
    """It bootstraps (no uv on PATH) and locks with the uv of the Dockerfile's stage, ours too."""
    project_dir = bake(combo)
    (stage,) = re.findall(
        r"^FROM ghcr.io/astral-sh/uv:(\S+) AS uv$", (project_dir / "Dockerfile").read_text(), re.M
    )
    assert stage == dev_pin("uv")
    dry = subprocess.run(
        ["make", "-n", "install", "lock", "UV=.uv/bin/uv"],
        cwd=project_dir, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f".uv/bin/pip install --quiet uv=={stage}\n" in dry.stdout
    assert ".uv/bin/uv sync --locked" in dry.stdout and ".uv/bin/uv lock\n" in dry.stdout
    pyproject = tomllib.loads((project_dir / "pyproject.toml").read_text())
    locked = tomllib.loads((project_dir / "uv.lock").read_text())
    assert locked["requires-python"] == pyproject["project"]["requires-python"] == ">=3.11"


def check_schema(schema: str, path: Path) -> None:
    """Validate ``path`` against one of check-jsonschema's built-in schemas."""
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", schema, path],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("combo", params())
def test_dependabot_config_and_workflow_are_valid(bake, combo):
    """It keeps uv's lock, the base image and the workflow's actions moving, in a valid config."""
    config = bake(combo) / ".github" / "dependabot.yml"
    check_schema("vendor.dependabot", config)
    check_schema("vendor.github-workflows", bake(combo) / ".github" / "workflows" / "ci.yml")
    updates = yaml.safe_load(config.read_text())["updates"]
    assert "uv" in [u["package-ecosystem"] for u in updates]


@pytest.mark.xdist_group(ALL_ON.id)
def test_ci_installs_with_the_lock_checked(bake):
    """It has CI install through make (uv sync --locked: a stale lock fails) with the image's uv."""
    project_dir = bake(ALL_ON)
    assert workflow_step(project_dir, "make install").strip() == "make install UV=.uv/bin/uv"
