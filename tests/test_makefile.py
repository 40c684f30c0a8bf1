"""The generated Makefile: well-formed in every combination, and a failed install is retried."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from combinations import ALL_OFF, ALL_ON, alone, params
from developer import make
from test_kubernetes import KUBERNETES_VERSIONS, validate

RULE = re.compile(r"^([A-Za-z][\w-]*)\s*:(?!=)")
PHONY = re.compile(r"^\.PHONY:\s*(.+)$")
VENV_BIN = Path(sys.executable).parent


def rules(text: str) -> dict[str, list[str]]:
    """Return each named rule's recipe lines (the tab-indented lines that follow its header)."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = RULE.match(line)
        if match:
            current = found.setdefault(match.group(1), [])
        elif line.startswith("\t") and current is not None:
            current.append(line[1:])
        else:
            current = None
    return found


def phony(text: str) -> list[str]:
    """Return every name declared .PHONY."""
    return [
        name
        for line in text.splitlines()
        for names in PHONY.findall(line)
        for name in names.split()
    ]


@pytest.mark.parametrize("combo", params())
def test_every_target_is_declared_and_documented(bake, combo):
    """It declares each task .PHONY after a blank line, with a rule, help text, no glued recipe."""
    text = (bake(combo) / "Makefile").read_text()
    declared = phony(text)
    found = rules(text)
    assert sorted(declared) == sorted(found), "each task .PHONY and each .PHONY a rule"
    for name, recipe in found.items():
        assert not any(".PHONY" in line or RULE.match(line) for line in recipe), (name, recipe)
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(".PHONY:"):
            assert lines[index - 1] == "", f"no blank line before {line!r}"
    documented = re.findall(r"^([a-z][\w-]*):.*## ", text, re.MULTILINE)
    assert sorted(documented) == sorted(found)


@pytest.mark.parametrize("combo", params())
def test_make_help_and_dry_runs_of_every_task_succeed(bake, combo, clean_env):
    """It lists every task in `make help`, and `make -n <task>` parses for each of them."""
    root = bake(combo)
    tasks = sorted(rules((root / "Makefile").read_text()))
    result = make(root, clean_env, "help")
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert sorted(listed) == tasks
    for task in tasks:
        result = make(root, clean_env, "-n", task)
        assert result.returncode == 0, (task, result.stderr)
        assert "PHONY" not in result.stdout, (task, result.stdout)
    if combo.selected("use_postgres"):
        upgrade = make(root, clean_env, "-n", "migrate").stdout.splitlines()[-1]
        assert upgrade.endswith("db upgrade"), upgrade
        # The schema comes from the migrations only; a new migration is compared with a
        # database at the latest one.
        for task in ("demo", "dev", "migration"):
            assert "db upgrade" in make(root, clean_env, "-n", task).stdout, task


@pytest.mark.parametrize("combo", params([ALL_OFF]))
def test_a_failed_install_is_retried_by_the_next_task(bake, combo, clean_env, tmp_path):
    """It installs again on the next task after pip failed (an unreachable index)."""
    root = tmp_path / "project"
    subprocess.run(["cp", "-a", str(bake(combo)), str(root)], check=True, timeout=60)
    with_closed_index = {
        **clean_env,
        "PIP_CONFIG_FILE": os.devnull,  # no configured mirrors or local wheel folders
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # the discard port: nothing listens
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PIP_NO_CACHE_DIR": "1",
    }
    failed = make(root, with_closed_index, "install", timeout=300)
    assert failed.returncode != 0
    again = make(root, clean_env, "-n", "test")
    assert "pip install" in again.stdout, again.stdout
    assert not list(root.glob(".venv/*.stamp")), "no stamp after a failed install"


@pytest.mark.parametrize("combo", params([ALL_ON, alone("use_kubernetes")]))
def test_kube_manifests_renders_a_fresh_bake(bake, combo, clean_env, tmp_path):
    """It prints the dev overlay's manifests from a fresh bake with no manual step."""
    root = tmp_path / "project"
    subprocess.run(["cp", "-a", str(bake(combo)), str(root)], check=True, timeout=60)
    env = {**clean_env, "PATH": f"{VENV_BIN}{os.pathsep}{clean_env['PATH']}"}
    result = make(root, env, "kube-manifests")
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert {"Namespace", "Deployment", "Service", "Secret", "ConfigMap"} <= kinds, kinds
    if combo.selected("use_postgres"):
        assert "Job" in kinds, kinds  # the migration Job
    manifests = tmp_path / "dev.yaml"
    manifests.write_text(result.stdout)
    validated = validate([manifests], KUBERNETES_VERSIONS[-1])
    assert validated.returncode == 0, validated.stdout + validated.stderr


@pytest.mark.parametrize("combo", params([ALL_OFF]))
def test_a_venv_that_could_not_be_made_is_removed(bake, combo, clean_env, tmp_path):
    """It removes a half-made .venv when creating it fails (as without ensurepip)."""
    root = tmp_path / "project"
    subprocess.run(["cp", "-a", str(bake(combo)), str(root)], check=True, timeout=60)
    broken = tmp_path / "python-without-ensurepip"
    broken.write_text('#!/bin/sh\nmkdir -p "$3/bin" && touch "$3/bin/python"\nexit 1\n')
    broken.chmod(0o755)
    result = make(root, clean_env, "install", f"PYTHON={broken}")
    assert result.returncode != 0
    assert not (root / ".venv").exists()
