"""The generated Makefile: well-formed in every combination, and a failed install is retried."""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from combinations import ALL_OFF, ALL_ON, PYTHON_VERSIONS, alone, combination, params
from developer import make, offline_uv
from test_kubernetes import KUBERNETES_VERSIONS, validate

RULE = re.compile(r"^([A-Za-z][\w-]*)\s*:(?!=)")
PHONY = re.compile(r"^\.PHONY:\s*(.+)$")
VENV_BIN = Path(sys.executable).parent
APP_ENV_SET = re.compile(r"\bAPP_ENV\s*[:?]?=\s*(\w*)")
RUNNING_PYTHON = "{}.{}".format(*sys.version_info[:2])
# A bake whose image Python is not the one running these tests.
OTHER_IMAGE_PYTHON = combination(
    {**ALL_OFF.answers, "python_version": next(v for v in PYTHON_VERSIONS if v != RUNNING_PYTHON)}
)
PROD_SECRET = "deploy/k8s/overlays/prod/secret.env"


def copy_of(project: Path, parent: Path) -> Path:
    """Copy a baked project under ``parent`` (for tests that change files); return the copy."""
    root = parent / "project"
    subprocess.run(["cp", "-a", str(project), str(root)], check=True, timeout=60)
    return root


def closed_index(env: dict, tmp_path: Path) -> dict:
    """Return ``env`` with uv offline and an empty cache, so an install fails fast."""
    (tmp_path / "empty-cache").mkdir(exist_ok=True)
    return offline_uv(env, tmp_path / "empty-cache")


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
def test_a_failed_install_is_finished_by_the_next_task(bake, combo, clean_env, tmp_path):
    """It syncs again on the next task after uv failed, and installs offline from a cache."""
    root = copy_of(bake(combo), tmp_path)
    failed = make(root, closed_index(clean_env, tmp_path), "install", timeout=300)
    assert failed.returncode != 0
    assert "network" in failed.stderr.lower(), failed.stderr
    installed = make(root, offline_uv(clean_env), "install", timeout=300)
    assert installed.returncode == 0, installed.stderr
    assert (root / ".venv" / "bin" / "pytest").is_file()  # the dev group, too


@pytest.mark.parametrize("combo", params([ALL_ON, alone("use_kubernetes")]))
def test_kube_manifests_renders_a_fresh_bake(bake, combo, clean_env, tmp_path):
    """It prints the dev overlay's manifests from a fresh bake with no manual step."""
    root = copy_of(bake(combo), tmp_path)
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
def test_a_uv_venv_that_could_not_be_made_is_removed(bake, combo, clean_env, tmp_path):
    """It removes a half-made .uv when creating it fails (as without ensurepip), for a retry."""
    root = copy_of(bake(combo), tmp_path)
    broken = tmp_path / "python-without-ensurepip"
    broken.write_text('#!/bin/sh\nmkdir -p "$3/bin" && touch "$3/bin/python"\nexit 1\n')
    broken.chmod(0o755)
    result = make(root, clean_env, "install", f"PYTHON={broken}", "UV=.uv/bin/uv")
    assert result.returncode != 0
    assert not (root / ".uv").exists()


@pytest.mark.parametrize("combo", params([ALL_ON, alone("use_kubernetes")]))
def test_kube_manifests_of_prod_names_the_secret_to_create(bake, combo, clean_env, tmp_path):
    """It fails on a fresh bake with one line naming prod's secret.env; made, prod prints."""
    root = copy_of(bake(combo), tmp_path)
    env = {**clean_env, "PATH": f"{VENV_BIN}{os.pathsep}{clean_env['PATH']}"}
    missing = make(root, env, "kube-manifests", "OVERLAY=prod")
    assert missing.returncode != 0
    assert missing.stderr.splitlines()[0] == (
        f"missing {PROD_SECRET}: copy deploy/k8s/secret.env.example there and fill it in"
    )
    shutil.copy(root / "deploy/k8s/secret.env.example", root / PROD_SECRET)
    result = make(root, env, "kube-manifests", "OVERLAY=prod")
    assert result.returncode == 0, result.stderr
    assert "Deployment" in {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}


@pytest.mark.parametrize("combo", params())
def test_no_task_replaces_the_callers_app_env_or_answers_for_them(bake, combo, clean_env):
    """It sets APP_ENV to production only, `make dev` refuses it, `make reset` asks unless YES=1.

    Every task runs with the caller's APP_ENV, else .env's: a task may make it stricter only.
    """
    root = bake(combo)
    code = [
        line
        for line in (root / "Makefile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    assert {value for line in code for value in APP_ENV_SET.findall(line)} <= {"production"}
    production = {**clean_env, "APP_ENV": "production"}
    refused = make(root, production, "-n", "dev")
    assert refused.returncode != 0 and "refused with APP_ENV=production" in refused.stderr
    assert refused.stdout == "", "make dev does nothing first (no install, no migration)"
    assert make(root, production, "-n", "test").returncode == 0, "only dev refuses it"
    if combo.selected("use_frontend"):
        asks = make(root, clean_env, "-n", "reset").stdout.splitlines()[-1]
        assert asks.endswith(" reset"), asks
        told = make(root, clean_env, "-n", "reset", "YES=1").stdout.splitlines()[-1]
        assert told.endswith(" reset --yes"), told


@pytest.mark.parametrize("combo", params([OTHER_IMAGE_PYTHON]))
def test_install_uses_the_image_python_when_it_runs_here(bake, combo, clean_env, tmp_path):
    """It has uv make .venv with python3.X, the image's, when that runs, else with python3.

    A pyenv shim of a Python that is not installed is on PATH but exits 127: it counts as absent.
    """
    root = bake(combo)
    version = combo.value("python_version")
    folder = tmp_path / "bin"
    folder.mkdir()
    chosen = folder / f"python{version}"
    env = {**clean_env, "PATH": f"{folder}{os.pathsep}{clean_env['PATH']}"}
    venv_lines = {}
    for state, script in (("runs", f'exec "{sys.executable}" "$@"'), ("absent", "exit 127")):
        chosen.write_text(f"#!/bin/sh\n{script}\n")
        chosen.chmod(0o755)
        dry = make(root, env, "-n", "-B", "install")
        assert dry.returncode == 0, dry.stderr
        (venv_lines[state],) = [line for line in dry.stdout.splitlines() if " sync " in line]
    assert venv_lines["runs"].endswith(f" --python python{version}"), venv_lines
    assert venv_lines["absent"].endswith(" --python python3"), venv_lines


@pytest.mark.parametrize("combo", params([OTHER_IMAGE_PYTHON]))
def test_install_says_once_when_the_venv_has_another_python(bake, combo, clean_env, tmp_path):
    """It names .venv's Python and the image's when they differ: at the task that makes .venv
    and at `make install`, not at every task that installs quietly first."""
    root = copy_of(bake(combo), tmp_path)
    env, python = offline_uv(clean_env), f"PYTHON={sys.executable}"
    note = f"note: .venv has Python {RUNNING_PYTHON}, the image {combo.value('python_version')}"
    for task, said in (("lint", 1), ("lint", 0), ("install", 1)):
        result = make(root, env, task, python, timeout=300)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("note:") == said, (task, result.stderr)
        assert result.stderr.count(note) == said, (task, result.stderr)


@pytest.mark.parametrize("combo", params([ALL_OFF]))
def test_demo_and_dev_on_a_taken_port_say_so_in_one_line(bake, combo, clean_env, tmp_path):
    """It refuses `make demo` and `make dev` on a port another server holds, in one line that
    names another PORT, before it installs or migrates anything."""
    root = copy_of(bake(combo), tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        for task in ("demo", "dev"):
            result = make(root, offline_uv(clean_env), task, f"PORT={port}", timeout=300)
            assert result.returncode != 0
            assert result.stdout == "", (task, result.stdout)
            (line,) = result.stderr.splitlines()
            assert f"port {port} of 127.0.0.1 is taken" in line, line
            assert f"PORT=8001 make {task} serves on port 8001" in line, line
    assert not (root / ".venv").exists()


@pytest.mark.parametrize("combo", params([ALL_OFF]))
def test_compose_tasks_without_the_compose_plugin_say_so_in_one_line(
    bake, combo, clean_env, tmp_path
):
    """It stops `make up`, `up-dev`, `down` and `logs` before compose when Docker has no Compose
    plugin, with one line naming the task, the plugin and where to get it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"  # a docker CLI without the plugin, as Debian's docker.io alone
    docker.write_text('#!/bin/sh\necho "docker: unknown command: docker $1" >&2\nexit 1\n')
    docker.chmod(0o755)
    env = {**clean_env, "PATH": f"{bin_dir}:{clean_env['PATH']}"}
    for task in ("up", "up-dev", "down", "logs"):
        result = make(bake(combo), env, task, timeout=60)
        assert result.returncode != 0 and result.stdout == "", (task, result.stdout)
        assert result.stderr.splitlines()[0] == (
            f"make {task} needs Docker's Compose plugin, which `docker compose version` did not "
            "find: https://docs.docker.com/compose/install/"
        ), result.stderr


@pytest.mark.parametrize("combo", params([ALL_OFF]))
def test_updating_installs_cruft_with_either_uv_the_makefile_uses(bake, combo):
    """It shows docs/updating.md's cruft install with uv on PATH and with the Makefile's own uv."""
    root = bake(combo)
    makefile = (root / "Makefile").read_text()
    own = re.search(r"^UV \?= \$\(or \$\(shell command -v uv\),(\S+)\)$", makefile, re.M)
    assert own, "the Makefile names no uv of its own"
    page = (root / "docs" / "updating.md").read_text()
    assert set(re.findall(r"([\w./]+) tool install cruft==", page)) == {"uv", own.group(1)}


# Stands in for the servers `make dev` and `make demo` start: says what TRUSTED_PROXIES they got.
SAY_TRUSTED_PROXIES = '#!/bin/sh\necho "TRUSTED_PROXIES=${TRUSTED_PROXIES-unset}"\n'


@pytest.mark.parametrize("combo", params([alone("use_nginx")]))
def test_dev_and_demo_believe_no_forwarded_headers(bake, combo, clean_env, tmp_path):
    """It starts `make dev`'s and `make demo`'s servers with TRUSTED_PROXIES=0 in an nginx bake:
    no nginx is in front of them, so a client's X-Forwarded-For is not its address."""
    root = copy_of(bake(combo), tmp_path)
    (root / ".env").unlink(missing_ok=True)  # no `dotenv run` in front of the server
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("flask", "gunicorn", "python"):
        (fake / name).write_text(SAY_TRUSTED_PROXIES)
        (fake / name).chmod(0o755)
    for task in ("dev", "demo"):
        result = make(root, clean_env, "-o", "install", task, f"BIN={fake}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "TRUSTED_PROXIES=0", (task, result.stdout)
