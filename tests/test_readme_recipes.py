"""Tier 1: every code example of a bake's README.md and docs/*.md passes every check, as written.

The rule that tells code to apply from the rest: a fenced block whose language is `python` is code
to apply, and its first line, a comment, says where it goes, in one of two forms:

    # <path from the project's root>, at the end
    # <path from the project's root>, after "<the start of a line of that file>"

(the second inserts the block after the one line of the file that starts so, leading spaces
aside). Every other block (bash, sh, json, text, or no language) holds commands or their output:
they are not applied here. Each bake gets every example at once (they are independent), and, where
it has migrations, the migration the "Add a model" recipe makes (`make migration`'s command); then
the checks `make lint typecheck test` runs pass: ruff check, ruff format --check, lint-imports,
mypy and the bake's own tests, the examples' tests included.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import ALL_OFF, ALL_ON, params
from markdown_links import pages
from project_files import package_name
from projects import run_project_tests
from test_structure import lint_imports
from test_typecheck import mypy

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
WHERE = re.compile(r'# (?P<path>[\w./-]+\.py), (?:at the end|after "(?P<after>[^"]+)")')
# The longest slug the pre-gen hook accepts (the package name derives from it), and ruff's line
# length in the bakes: a first line with that name must still fit.
LONGEST_PACKAGE, LINE_LENGTH = 50, 100
# The migration the README's "Add a model" recipe makes (`make migration m="..."`).
MIGRATION_MESSAGE = "add a color to items"


def examples(root: Path) -> list[tuple[str, str]]:
    """Return each Python example of the README and docs/ as (the page, the block)."""
    return [
        (page.name, found.group(1))
        for page in pages(root)
        for found in PYTHON_BLOCK.finditer(page.read_text())
    ]


def apply(root: Path, block: str) -> Path:
    """Write ``block`` where its first line says; return the file it changed."""
    where = WHERE.fullmatch(block.splitlines()[0].strip())
    assert where, f"a Python example must say where it goes in its first line:\n{block}"
    target = root / where["path"]
    text = target.read_text()
    if where["after"] is None:
        target.write_text(text.rstrip("\n") + "\n\n\n" + block)
        return target
    lines = text.splitlines(keepends=True)
    starts = [n for n, line in enumerate(lines) if line.lstrip().startswith(where["after"])]
    assert len(starts) == 1, f"{where['after']!r} starts {len(starts)} lines of {target}"
    lines.insert(starts[0] + 1, block)
    target.write_text("".join(lines))
    return target


def make_migration(root: Path, env: dict, tmp_path: Path) -> None:
    """Make the migration of the model examples as `make migration` does, on a scratch SQLite."""
    app = f"{package_name(root)}:create_app()"
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'migration.db'}"}
    for command in (["upgrade"], ["migrate", "-m", MIGRATION_MESSAGE]):
        made = subprocess.run(
            [sys.executable, "-m", "flask", "--app", app, "db", *command],
            cwd=root,
            env={**env, **database, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert made.returncode == 0, made.stdout + made.stderr


def check(root: Path, env: dict) -> None:
    """Assert that the bake passes `make lint typecheck test`'s checks."""
    for args in (["check", "."], ["format", "--check", "."]):
        linted = subprocess.run(
            [sys.executable, "-m", "ruff", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert linted.returncode == 0, linted.stdout + linted.stderr
    contract = lint_imports(root)
    assert contract.returncode == 0, contract.stdout + contract.stderr
    typed = mypy(root, env)
    assert typed.returncode == 0, typed.stdout[-6000:] + typed.stderr[-2000:]
    run_project_tests(root, env)


@pytest.mark.parametrize("combo", params([ALL_OFF, ALL_ON]))
def test_every_code_example_passes_every_check(bake, combo, clean_env, tmp_path):
    """It applies each Python example of the README and docs/ where its first line says, makes
    the migration where the bake has migrations, and `make lint typecheck test` passes."""
    root = tmp_path / "project"
    shutil.copytree(bake(combo), root)
    found = examples(root)
    longest = len(package_name(root)) - LONGEST_PACKAGE
    assert not [b for _, b in found if len(b.splitlines()[0]) - longest > LINE_LENGTH], found
    assert {page for page, _ in found} >= {"README.md", "api.md"}, found
    changed = {apply(root, block) for _, block in found}
    assert root / "tests" / "items" / "test_api.py" in changed
    if (root / "migrations").is_dir():
        make_migration(root, clean_env, tmp_path)
        made = list((root / "migrations" / "versions").glob("*add_a_color_to_items.py"))
        assert len(made) == 1 and "add_column" in made[0].read_text(), made
    check(root, clean_env)


def test_an_example_that_does_not_say_where_it_goes_is_refused(tmp_path):
    """It refuses a Python example without its first-line location, or with a line not found."""
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(AssertionError, match="say where it goes"):
        apply(tmp_path, "def f() -> None:\n    pass\n")
    with pytest.raises(AssertionError, match="starts 0 lines"):
        apply(tmp_path, '# a.py, after "y ="\nz = 2\n')
    assert apply(tmp_path, '# a.py, after "x ="\nz = 2\n').read_text().endswith("z = 2\n")
