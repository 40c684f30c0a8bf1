"""Run a generated project's own test suite, the same way wherever the template's tests need it."""

import subprocess
import sys
from pathlib import Path


def run_project_tests(root: Path, env: dict) -> subprocess.CompletedProcess:
    """Run ``pytest`` in a generated project; assert it passed; return the finished process."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    failed = [line for line in result.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    assert result.returncode == 0, "\n".join(
        [*failed, result.stdout[-4000:], result.stderr[-2000:]]
    )
    assert " passed" in result.stdout.strip().splitlines()[-1]
    return result


def skipped_lines(result: subprocess.CompletedProcess) -> list[str]:
    """Return the SKIPPED lines of a run's short summary."""
    return [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
