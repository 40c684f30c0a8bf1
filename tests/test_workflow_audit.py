"""Tier 1: each bake's GitHub workflow and Dependabot config pass zizmor, as its CI runs it.

zizmor audits GitHub Actions workflows and dependabot.yml (credentials left in checkouts,
template injection, unpinned actions, missing cooldowns and concurrency, ...). The generated CI
runs it at the pin the template's requirements-dev.txt installs here; this test runs the CI's
own command on every tier-1 bake and expects zero findings, none of them silenced.
"""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from combinations import ALL_OFF, params

TEMPLATE = Path(__file__).resolve().parent.parent
ZIZMOR = Path(sys.executable).parent / "zizmor"
STEP = re.compile(r"pipx run --spec zizmor==(\S+) zizmor (.+)")


def zizmor_step(root: Path) -> tuple[str, list[str]]:
    """Return the zizmor version and arguments of the generated CI's zizmor step."""
    jobs = yaml.safe_load((root / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    runs = [s["run"] for j in jobs.values() for s in j["steps"] if "zizmor" in s.get("run", "")]
    assert len(runs) == 1, runs
    version, arguments = STEP.fullmatch(runs[0].strip()).groups()
    return version, shlex.split(arguments)


def zizmor(root: Path, arguments: list[str]) -> subprocess.CompletedProcess:
    """Run the pinned zizmor in ``root`` with ``arguments``, no network, no colour."""
    return subprocess.run(
        [ZIZMOR, "--no-progress", "--color=never", *arguments],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("combo", params())
def test_ci_audits_the_workflows_and_finds_nothing(bake, combo):
    """It runs the CI's zizmor command (auditor persona, offline): zero findings, none ignored."""
    root = bake(combo)
    version, arguments = zizmor_step(root)
    pin = re.search(r"^zizmor==(\S+)$", (TEMPLATE / "requirements-dev.txt").read_text(), re.M)
    assert version == pin[1]
    assert {"--offline", "--persona", "auditor", ".github"} <= set(arguments)
    result = zizmor(root, arguments)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout
    github = [p for p in (root / ".github").rglob("*") if p.is_file()]
    assert not any("zizmor:" in p.read_text() for p in github)  # no finding ignored inline
    assert not list(root.rglob("zizmor.yml")) and not list(root.rglob(".zizmor.yml"))


@pytest.mark.parametrize("combo", params())
def test_ci_cancels_superseded_pull_request_runs(bake, combo):
    """It groups runs by pull request (by commit on main) and cancels the superseded one."""
    workflow = yaml.safe_load((bake(combo) / ".github" / "workflows" / "ci.yml").read_text())
    concurrency = workflow["concurrency"]
    assert "github.event.pull_request.number" in concurrency["group"]
    assert "github.sha" in concurrency["group"]  # pushes to main: one group each, none cancelled
    assert concurrency["cancel-in-progress"] is True


@pytest.mark.xdist_group(ALL_OFF.id)
def test_zizmor_reports_a_missing_concurrency_and_cooldown(bake, tmp_path):
    """It reports the all-off bake's workflow without concurrency, its Dependabot without waits."""
    root = tmp_path / "project"
    shutil.copytree(bake(ALL_OFF) / ".github", root / ".github")
    workflow = root / ".github" / "workflows" / "ci.yml"
    text, removed = re.subn(r"\nconcurrency:\n(  .*\n)+", "\n", workflow.read_text())
    assert removed == 1
    workflow.write_text(text)
    config = root / ".github" / "dependabot.yml"
    config.write_text(re.sub(r"\n    cooldown:\n      default-days: \d+", "", config.read_text()))
    result = zizmor(root, zizmor_step(bake(ALL_OFF))[1])
    assert result.returncode != 0
    assert "concurrency-limits" in result.stdout and "dependabot-cooldown" in result.stdout
