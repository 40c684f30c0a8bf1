"""The generated pre-commit config runs the pinned tools in .venv: offline, at make lint's pins."""

import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from combinations import ALL_OFF, ALL_ON, params

VENV_BIN = Path(sys.executable).parent  # holds the tools of the generated dev group
PINNED = ("pre-commit", "pre-commit-hooks", "ruff")
# An unused import with trailing blanks: ruff check and the whitespace fixer refuse it.
UNTIDY = "import os  \n"


def hook_entries(root: Path) -> list[str]:
    """Return the entry of every hook in the project's pre-commit config, checking it is local."""
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    return [hook["entry"] for repo in config["repos"] for hook in repo["hooks"]]


def stand_in_venv(root: Path) -> None:
    """Give the project a .venv whose bin holds the tools its hooks and pre-commit run.

    They are the template venv's, installed from the generated dev group: `make install` would
    install the same pins (checked here) from the package index.
    """
    dev = tomllib.loads((root / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    pins = dict(pin.split("==") for pin in dev)
    assert {name: version(name) for name in PINNED} == {name: pins[name] for name in PINNED}
    (root / ".venv" / "bin").mkdir(parents=True)
    tools = {entry.split()[0] for entry in hook_entries(root)} | {".venv/bin/pre-commit"}
    for tool in tools:
        assert tool.startswith(".venv/bin/"), tool
        (root / tool).symlink_to(VENV_BIN / Path(tool).name)


def offline(args: list[str], root: Path, env: dict) -> subprocess.CompletedProcess:
    """Run a command in a network namespace of its own: no interface but loopback, down."""
    return subprocess.run(
        ["unshare", "--map-root-user", "--net", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("combo", params([ALL_ON, ALL_OFF]))
def test_the_first_commit_runs_every_hook_offline(bake, combo, clean_env, tmp_path):
    """It commits a fresh bake with the hooks installed, no network, nothing cloned or fetched.

    Then it refuses an untidy file, which the hooks fix.
    """
    root = tmp_path / "project"
    shutil.copytree(bake(combo), root, symlinks=True)
    stand_in_venv(root)
    home = tmp_path / "home"  # no user config, no cached hook environments
    home.mkdir()
    env = {
        **clean_env,
        "HOME": str(home),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
        "GIT_CONFIG_NOSYSTEM": "1",
        **{f"GIT_{who}_NAME": "Template Tests" for who in ("AUTHOR", "COMMITTER")},
        **{f"GIT_{who}_EMAIL": "tests@example.com" for who in ("AUTHOR", "COMMITTER")},
    }
    git = ["git", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "--quiet"], cwd=root, env=env, check=True, timeout=60)
    installed = offline([".venv/bin/pre-commit", "install"], root, env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    subprocess.run([*git, "add", "--all"], cwd=root, env=env, check=True, timeout=60)

    first = offline([*git, "commit", "--quiet", "-m", "Generate"], root, env)

    assert first.returncode == 0, first.stdout + first.stderr
    ran = [line for line in (first.stdout + first.stderr).splitlines() if line.endswith("Passed")]
    assert len(ran) == len(hook_entries(root)), first.stdout + first.stderr
    assert not list((tmp_path / "pre-commit").glob("repo*")), "a hook repository was cloned"

    (root / "untidy.py").write_text(UNTIDY)
    subprocess.run([*git, "add", "untidy.py"], cwd=root, env=env, check=True, timeout=60)
    refused = offline([*git, "commit", "--quiet", "-m", "Untidy"], root, env)
    assert refused.returncode != 0
    assert (root / "untidy.py").read_text() == ""  # the unused import and the blanks, fixed
