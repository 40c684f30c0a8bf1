"""The generated README documents every setting the service reads and every variable of .env."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import params

FIELDS = """
import importlib.util
from {package}.server import ServerSettings
from {package}.settings import Settings
models = [Settings, ServerSettings]
if importlib.util.find_spec("{package}.granian_server"):
    from {package}.granian_server import GranianSettings
    models.append(GranianSettings)
if importlib.util.find_spec("{package}.gunicorn_settings"):
    from {package}.gunicorn_settings import GunicornSettings
    models.append(GunicornSettings)
for model in models:
    for name in model.model_fields:
        print(name.upper())
"""
# The variables only one app server reads (gunicorn_settings.py, granian_server.py).
SERVER_ONLY = {
    "WORKER_CLASS",
    "GUNICORN_TIMEOUT",
    "KEEPALIVE",
    "MAX_REQUESTS",
    "MAX_REQUESTS_JITTER",
    "WORKERS_MAX_RSS",
    "WORKERS_LIFETIME",
}
VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]+)`")
ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=", re.MULTILINE)


def package_name(root: Path) -> str:
    """Return the generated package's name (the folder holding settings.py)."""
    (settings,) = root.glob("*/settings.py")
    return settings.parent.name


def settings_read(root: Path, env: dict, cwd: Path) -> set[str]:
    """Return the variables the settings models read (granian's too), by importing the package."""
    result = subprocess.run(
        [sys.executable, "-c", FIELDS.format(package=package_name(root))],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def configuration_table(readme: str) -> set[str]:
    """Return the variables named in the first column of the README's Configuration table."""
    section = re.split(r"^## Configuration\n", readme, flags=re.MULTILINE)[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in VARIABLE.findall(row.split(" | ")[0])}


@pytest.mark.parametrize("combo", params())
def test_every_setting_and_env_variable_is_in_the_configuration_table(
    bake, combo, clean_env, tmp_path
):
    """It lists each variable Settings, ServerSettings and .env.example name in the README."""
    root = bake(combo)
    documented = configuration_table((root / "README.md").read_text())
    read = settings_read(root, clean_env, tmp_path)
    assert {"DATABASE_URL", "PORT"} <= read, "the settings could not be read"
    assert not read - documented, f"missing from the README: {sorted(read - documented)}"
    in_env_file = set(ENV_LINE.findall((root / ".env.example").read_text()))
    assert not in_env_file - documented, f"missing: {sorted(in_env_file - documented)}"


@pytest.mark.parametrize("combo", params())
def test_each_app_servers_own_settings_exist_only_in_its_bakes(bake, combo, clean_env, tmp_path):
    """It names gunicorn's own variables only in gunicorn bakes, and granian's only in granian's."""
    root = bake(combo)
    unread = SERVER_ONLY - settings_read(root, clean_env, tmp_path)
    assert unread, "both servers' settings are read"
    documented = configuration_table((root / "README.md").read_text())
    assert not unread & documented, f"the README documents unread {sorted(unread & documented)}"
    for path in (".env.example", "compose.yaml", "deploy/k8s/base/config.env"):
        text = (root / path).read_text() if (root / path).exists() else ""
        named = {name for name in unread if re.search(rf"\b{name}\b", text)}
        assert not named, f"{path} sets unread {sorted(named)}"


def test_the_table_reader_takes_first_columns_of_this_section_only():
    """It reads each name of a row's first column, not values, and not other sections' tables."""
    readme = (
        "# X\n\n## Configuration\n\n| `PORT` / `HOST` | 1 | x |\n| `LOG_LEVEL` | x | `DEBUG` |\n"
        "\n## Timeouts\n\n| `KEEPALIVE` | 5 | x |\n"
    )
    assert configuration_table(readme) == {"PORT", "HOST", "LOG_LEVEL"}
