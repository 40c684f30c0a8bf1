"""The generated docs document every setting the service reads and every variable of .env.

Settings live in the tables headed `variable` of the README and the pages of docs/
(docs/configuration.md as generated).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import params
from markdown_links import pages
from project_files import package_name

FIELDS = """
import importlib.util
from {package}.settings import Settings
from {package}.settings.server import ServerSettings
models = [Settings, ServerSettings]
if importlib.util.find_spec("{package}.granian_server"):
    from {package}.granian_server import GranianSettings
    models.append(GranianSettings)
if importlib.util.find_spec("{package}.settings.gunicorn"):
    from {package}.settings.gunicorn import GunicornSettings
    models.append(GunicornSettings)
for model in models:
    for name in model.model_fields:
        print(name.upper())
"""
# The variables only one app server reads (settings/gunicorn.py, granian_server.py).
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


# What settings_read found, by bake: both tests of a bake run on one worker and ask once.
_settings_read: dict[Path, frozenset[str]] = {}


def settings_read(root: Path, env: dict, cwd: Path) -> frozenset[str]:
    """Return the variables the settings models read (granian's too), by importing the package
    (a process importing it: once per bake)."""
    if root not in _settings_read:
        _settings_read[root] = _read_settings(root, env, cwd)
    return _settings_read[root]


def _read_settings(root: Path, env: dict, cwd: Path) -> frozenset[str]:
    """Return the variables the settings models read, from a new process importing them."""
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
    return frozenset(result.stdout.split())


def settings_tables(markdown: str) -> set[str]:
    """Return the variables named in the first column of each table headed `| variable |`."""
    names: set[str] = set()
    in_table = False
    for line in markdown.splitlines():
        if line.startswith("| variable |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and line.startswith("| `"):
            names |= set(VARIABLE.findall(line.split(" | ")[0]))
    return names


def documented(root: Path) -> set[str]:
    """Return the variables the settings tables of the README and of docs/ name."""
    return set().union(*(settings_tables(page.read_text()) for page in pages(root)))


@pytest.mark.parametrize("combo", params())
def test_every_setting_and_env_variable_is_in_the_configuration_table(
    bake, combo, clean_env, tmp_path
):
    """It lists each variable Settings, ServerSettings and .env.example name in a settings table."""
    root = bake(combo)
    listed = documented(root)
    read = settings_read(root, clean_env, tmp_path)
    assert {"DATABASE_URL", "PORT"} <= read, "the settings could not be read"
    assert not read - listed, f"missing from the docs: {sorted(read - listed)}"
    in_env_file = set(ENV_LINE.findall((root / ".env.example").read_text()))
    assert not in_env_file - listed, f"missing: {sorted(in_env_file - listed)}"


@pytest.mark.parametrize("combo", params())
def test_each_app_servers_own_settings_exist_only_in_its_bakes(bake, combo, clean_env, tmp_path):
    """It names gunicorn's own variables only in gunicorn bakes, and granian's only in granian's."""
    root = bake(combo)
    unread = SERVER_ONLY - settings_read(root, clean_env, tmp_path)
    assert unread, "both servers' settings are read"
    listed = documented(root)
    assert not unread & listed, f"the docs document unread {sorted(unread & listed)}"
    for path in (".env.example", "compose.yaml", "deploy/k8s/base/config.env"):
        text = (root / path).read_text() if (root / path).exists() else ""
        named = {name for name in unread if re.search(rf"\b{name}\b", text)}
        assert not named, f"{path} sets unread {sorted(named)}"


def test_the_table_reader_takes_first_columns_of_settings_tables_only():
    """It reads each name of a row's first column, not values, and not other tables or prose."""
    page = (
        "# X\n\n## Configuration\n\n| variable | default | meaning |\n|---|---|---|\n"
        "| `PORT` / `HOST` | 1 | x |\n| `LOG_LEVEL` | x | `DEBUG` |\n"
        "\n`SECRET_KEY` in prose\n\n| bound | default |\n|---|---|\n| `KEEPALIVE` | 5 |\n"
    )
    assert settings_tables(page) == {"PORT", "HOST", "LOG_LEVEL"}


def test_documented_reads_the_readme_and_every_docs_page(tmp_path):
    """It gathers the settings tables of the README and of each docs/ page."""
    table = "| variable | default | meaning |\n|---|---|---|\n| `{}` | 1 | x |\n"
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(table.format("PORT"))
    (tmp_path / "docs" / "configuration.md").write_text("# C\n\n" + table.format("HOST"))
    assert documented(tmp_path) == {"PORT", "HOST"}
