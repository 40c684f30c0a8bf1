"""Run a generated project's own test suite, the same way wherever the template's tests need it."""

import subprocess
import sys
import tomllib
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


def skipped_lines(result: subprocess.CompletedProcess | str) -> list[str]:
    """Return the SKIPPED lines of a run's short summary (of its output, or of the text given)."""
    output = result if isinstance(result, str) else result.stdout
    return [line for line in output.splitlines() if line.startswith("SKIPPED")]


# The only tests of a generated suite allowed to skip without servers: they need a real Redis
# or PostgreSQL server. Tier 2 runs them against real ones, with no skips.
SERVER_SKIPS = ("needs a Redis server", "needs a PostgreSQL server")


def skips_not_for_a_server(result: subprocess.CompletedProcess | str) -> list[str]:
    """Return the SKIPPED lines of a run that name no server the test needs (there must be none)."""
    return [line for line in skipped_lines(result) if not any(s in line for s in SERVER_SKIPS)]


def mypy_cache(caches: Path, root: Path) -> Path:
    """Return the mypy cache a bake shares with the others of its worker checked by the tools'
    mypy for the same Python version (another interpreter or version invalidates every entry).

    The libraries the bakes import are analysed once per worker, not once per bake. mypy checks
    each cached module against its source (size, then hash) and re-checks what changed and what
    depends on it, its errors included, as after a branch switch. One cache per xdist worker: two
    mypy processes writing one cache at once can crash the reader.
    """
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mypy"]
    return caches / f"mypy-cache-{config['python_version']}"
