"""Tier 1: Dependabot keeps every pin of each bake moving: images, lock files, actions.

Dependabot reads each entry's directories only (not their subfolders), and reads image references
as written: a FROM line with a build argument, or a tag in a file no entry's directory holds,
never moves. So each image reference (Dockerfile FROM lines, compose `image:`, Kubernetes
containers' `image:`) and each lock file must sit in a directory an entry of its ecosystem names.
"""

import re
import shutil
import sys
import tomllib
from pathlib import Path

import project_files as project
import pytest
import yaml
from combinations import ALL_ON, DEFAULTS_COMBO, params
from developer import uv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from lock import DEPENDABOT_PROBE

ECOSYSTEMS = {"uv", "docker", "docker-compose", "npm", "github-actions"}
# An exact tag: a version of digits (a leading v where the project tags so, as Mailpit does; a
# variant such as -slim-trixie), never `latest`.
EXACT_TAG = re.compile(r"[a-z0-9][\w./-]*:v?\d+(\.\d+)*(-[\w.]+)*")


def entries(root: Path) -> list[dict]:
    """Return the bake's Dependabot update entries."""
    return yaml.safe_load((root / ".github" / "dependabot.yml").read_text())["updates"]


def folders(entry: dict) -> list[str]:
    """Return the directories one entry reads (``directory`` or ``directories``)."""
    return entry.get("directories") or [entry["directory"]]


def where(root: Path, path: Path) -> str:
    """Return the folder holding ``path`` as Dependabot names it ("/" is the project root)."""
    return "/" + path.parent.relative_to(root).as_posix().removeprefix(".")


def own(root: Path, image: str) -> bool:
    """Say whether ``image`` is one the project builds (its slug, or its slug-nginx)."""
    name = image.rpartition(":")[0] if ":" in image else image
    return name.split("/")[-1] in (root.name, f"{root.name}-nginx")


def container_images(node) -> list[str]:
    """Return the ``image`` of every container (and init container) in a Kubernetes object."""
    if isinstance(node, list):
        return [image for item in node for image in container_images(item)]
    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        if key in ("containers", "initContainers"):
            found += [container["image"] for container in value]
        else:
            found += container_images(value)
    return found


def pulled_images(root: Path) -> list[tuple[str, Path, str]]:
    """Return (ecosystem, file, image) for every image the bake pulls, where it is written."""
    found = []
    for dockerfile in root.rglob("Dockerfile"):
        found += [("docker", dockerfile, image) for image in project.base_images(dockerfile)]
    for compose in root.glob("compose*.yaml"):
        services = (yaml.safe_load(compose.read_text()) or {}).get("services") or {}
        for service in services.values():
            if service.get("image") and "build" not in service:  # built images are the project's
                found.append(("docker-compose", compose, service["image"]))
    for manifest in (root / "deploy").rglob("*.yaml") if (root / "deploy").is_dir() else []:
        for doc in yaml.safe_load_all(manifest.read_text()):
            for image in container_images(doc):
                if not own(root, image):
                    found.append(("docker", manifest, image))
    return found


def lock_files(root: Path) -> list[tuple[str, Path]]:
    """Return (ecosystem, file) for every lock file and workflow folder of the bake.

    The project root's uv.lock is expected even where this branch's bake has none yet: the uv
    entry must read the root either way.
    """
    found = [("uv", root / "uv.lock")]
    found += [("npm", p) for p in root.rglob("package-lock.json") if "node_modules" not in p.parts]
    found += [("github-actions", root / ".github" / "workflows" / "ci.yml")]
    return found


def uncovered(root: Path, updates: list[dict]) -> list[str]:
    """Return each image reference or lock file no entry of its ecosystem reads."""
    read = {(u["package-ecosystem"], folder) for u in updates for folder in folders(u)}
    problems = []
    for ecosystem, path, image in pulled_images(root):
        if (ecosystem, where(root, path)) not in read:
            problems.append(f"{image} in {path.relative_to(root)}: no {ecosystem} entry reads it")
    for ecosystem, path in lock_files(root):
        # Dependabot reads the workflows of the directory "/" (it looks in .github/workflows).
        folder = "/" if ecosystem == "github-actions" else where(root, path)
        if (ecosystem, folder) not in read:
            problems.append(f"{path.relative_to(root)}: no {ecosystem} entry reads it")
    return problems


@pytest.mark.parametrize("combo", params())
def test_every_image_and_lock_file_is_covered(bake, combo):
    """It names, for each image reference and lock file, an entry of its ecosystem and folder.

    (The file's schema is checked for every combination in tests/test_supply_chain.py.)"""
    root = bake(combo)
    assert uncovered(root, entries(root)) == []
    images = [image for _, _, image in pulled_images(root)]
    assert images, "a bake pulls at least its Python image"
    for image in images:
        assert EXACT_TAG.fullmatch(image), f"{image} is not pinned to an exact tag"


@pytest.mark.parametrize("combo", params())
def test_every_entry_reads_a_folder_that_holds_its_files_and_waits(bake, combo):
    """It points each entry at folders holding its ecosystem's files, with a cooldown."""
    root = bake(combo)
    manifests = {
        "uv": lambda d: (d / "pyproject.toml").is_file(),
        "docker": lambda d: (d / "Dockerfile").is_file() or any(d.glob("*.yaml")),
        "docker-compose": lambda d: any(d.glob("compose*.yaml")),
        "npm": lambda d: (d / "package.json").is_file() and (d / "package-lock.json").is_file(),
        "github-actions": lambda d: any((d / ".github" / "workflows").glob("*.yml")),
    }
    updates = entries(root)
    assert {u["package-ecosystem"] for u in updates} <= ECOSYSTEMS
    assert ("npm" in {u["package-ecosystem"] for u in updates}) == combo.selected("use_frontend")
    for update in updates:
        ecosystem = update["package-ecosystem"]
        for folder in folders(update):
            assert manifests[ecosystem](root / folder.lstrip("/")), (ecosystem, folder)
        assert update["cooldown"]["default-days"] >= 1, ecosystem
        assert update["schedule"]["interval"], ecosystem


@pytest.mark.xdist_group(ALL_ON.id)
def test_the_coverage_check_reports_a_missing_entry(bake):
    """It reports what an entry covered once the entry is gone, for each entry of all-on."""
    root = bake(ALL_ON)
    updates = entries(root)
    for index, update in enumerate(updates):
        rest = updates[:index] + updates[index + 1 :]
        assert uncovered(root, rest), f"nothing reported without {update['package-ecosystem']}"
    nginx = [image for eco, path, image in pulled_images(root) if path.name == "deployment.yaml"]
    assert nginx and all("nginx" in image for image in nginx)  # the sidecar is seen and checked


def locked_versions(folder: Path) -> dict[str, str]:
    """Return name -> version of each package in uv.lock, read as Dependabot's uv updater reads
    it (a TOML file of `[[package]]` entries, lock format version 1)."""
    locked = tomllib.loads((folder / "uv.lock").read_text())
    assert locked["version"] == 1
    return {p["name"]: p["version"] for p in locked["package"] if p["name"] != "deprecated"}


def pin(folder: Path, requirement: str) -> None:
    """Set one `==` pin in pyproject.toml, as Dependabot's pull request does."""
    name = requirement.partition("==")[0]
    path = folder / "pyproject.toml"
    text, count = re.subn(rf'"{re.escape(name)}==[^"]+"', f'"{requirement}"', path.read_text())
    assert count == 1, f"{name} is pinned {count} times"
    path.write_text(text)


@pytest.mark.xdist_group(DEFAULTS_COMBO.id)
def test_dependabot_moves_a_pin_of_the_trimmed_lock(bake, tmp_path):
    """It has the trimmed lock behave as Dependabot's uv ecosystem needs: every pin of
    pyproject.toml found in it, a moved pin refused by `uv lock --locked` and relocked by `uv lock`.

    Offline, the move goes from the release before (DEPENDABOT_PROBE, whose metadata the cache
    holds) to the bake's own pin: the relocked file must be the bake's uv.lock again, byte for byte,
    every other package where it was.
    """
    root = bake(DEFAULTS_COMBO)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copyfile(root / name, tmp_path / name)
    versions = locked_versions(tmp_path)
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    pins = pyproject["project"]["dependencies"] + pyproject["dependency-groups"]["dev"]
    for requirement in pins:
        name, _, version = re.sub(r"\[.*\]", "", requirement).partition("==")
        assert versions[name.lower()] == version, requirement
    probe, _, older = DEPENDABOT_PROBE.partition("==")
    current = f"{probe}=={versions[probe]}"
    assert older != versions[probe]

    pin(tmp_path, DEPENDABOT_PROBE)  # where the project stood a release ago
    assert uv("lock", "--locked", cwd=tmp_path).returncode != 0
    result = uv("lock", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert locked_versions(tmp_path) == {**versions, probe: older}

    pin(tmp_path, current)  # Dependabot's bump
    result = uv("lock", "--locked", cwd=tmp_path)
    assert result.returncode != 0 and "error:" in result.stderr, result.stderr
    result = uv("lock", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "uv.lock").read_text() == (root / "uv.lock").read_text()
    assert uv("lock", "--locked", cwd=tmp_path).returncode == 0
