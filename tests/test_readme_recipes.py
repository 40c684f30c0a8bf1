"""Tier 1: every code example of a bake's README.md and docs/*.md passes every check, as written.

The rule that tells code to apply from the rest: a fenced block whose language is `python` is code
to apply, and its first line, a comment, says where it goes, in one of two forms:

    # <path from the project's root>, at the end
    # <path from the project's root>, after "<the start of a line of that file>"

(the second inserts the block after the one line of the file that starts so, leading spaces
aside). Every other block (bash, sh, json, text, or no language) holds commands or their output:
they are not applied here. Each bake gets every example at once (they are independent), and, where
it has migrations, the migration the "Add a model" recipe makes (the real `make migration`); then
the real `make lint typecheck test` passes: ruff check, ruff format --check, lint-imports, mypy
and the bake's own tests, the examples' tests included.
"""

import re
import shutil
import sys
from pathlib import Path

import pytest
from combinations import ALL_OFF, ALL_ON, params
from developer import make, offline_uv
from markdown_links import pages
from project_files import package_name

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


def make_ok(root: Path, env: dict, *tasks: str) -> str:
    """Run the real `make` with ``tasks`` in the bake (offline, this Python); assert it passed."""
    done = make(root, offline_uv(env), *tasks, f"PYTHON={sys.executable}", timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return done.stdout


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
    if (root / "migrations").is_dir():  # against a scratch SQLite database, not the bake's own
        scratch = {**clean_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'migration.db'}"}
        make_ok(root, scratch, "migration", f"m={MIGRATION_MESSAGE}")
        made = list((root / "migrations" / "versions").glob("*add_a_color_to_items.py"))
        assert len(made) == 1 and "add_column" in made[0].read_text(), made
    tested = make_ok(root, clean_env, "lint", "typecheck", "test")
    assert " passed" in tested.strip().splitlines()[-1], tested[-2000:]


def test_an_example_that_does_not_say_where_it_goes_is_refused(tmp_path):
    """It refuses a Python example without its first-line location, or with a line not found."""
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(AssertionError, match="say where it goes"):
        apply(tmp_path, "def f() -> None:\n    pass\n")
    with pytest.raises(AssertionError, match="starts 0 lines"):
        apply(tmp_path, '# a.py, after "y ="\nz = 2\n')
    assert apply(tmp_path, '# a.py, after "x ="\nz = 2\n').read_text().endswith("z = 2\n")
