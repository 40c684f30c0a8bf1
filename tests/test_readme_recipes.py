"""Tier 1: every code example of a bake's README.md and docs/*.md passes every check, as written.

The rule that tells code to apply from the rest: a fenced block whose language is `python` or
`toml` is code to apply, and its first line, a comment, says where it goes, in one of four forms:

    # <path from the project's root>, a new file
    # <path from the project's root>, at the end
    # <path from the project's root>, after "<the start of a line of that file>"
    # <path from the project's root>, in place of "<the start of a line of that file>"

(the last two insert the block after, or in place of, the one line of the file that starts so,
leading spaces aside; the start may be quoted with ' instead). Every other block (bash, sh, json,
text, or no language) holds commands or their output: they are not applied here. Each bake gets
every example at once (they are independent), and, where it has migrations, the migration the
"Add a model" recipe makes (the real `make migration`); then the real `make lint typecheck test`
passes: ruff check, ruff format --check, lint-imports, mypy and the bake's own tests, the
examples' tests included. The examples keep every test of the bake, so this run is also the
all-on and all-off bakes' type check and suite run of tests/test_generation.py and
tests/test_typecheck.py (with the same assertions: no type error, only server tests skipped).
docs/api.md's "Add a resource" (orders) changes nothing outside its folders but the lines that
list it, and its tests run there: the writes' 401 without a token in auth bakes, its own errors
in /openapi.json, its own rate limit.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import ALL_OFF, ALL_ON, params
from developer import make, offline_uv
from markdown_links import pages
from project_files import package_name
from projects import skips_not_for_a_server

CODE_BLOCK = re.compile(
    r"^```(?P<language>python|toml)\n(?P<code>.*?)^```$", re.DOTALL | re.MULTILINE
)
WHERE = re.compile(
    r"# (?P<path>[\w./-]+\.(?:py|toml)), (?:a new file|at the end|"
    r"(?P<how>after|in place of) (?P<quote>[\"'])(?P<start>.+)(?P=quote))"
)
RESOURCE = "## Add a resource"  # docs/api.md's recipe for a new feature, orders
RESOURCE_FOLDERS = ("orders", "tests/orders")  # its own folders (the first in the package)
# The longest slug the pre-gen hook accepts (the package name derives from it), and ruff's line
# length in the bakes: a first line with that name must still fit.
LONGEST_PACKAGE, LINE_LENGTH = 50, 100
# The migration the README's "Add a model" recipe makes (`make migration m="..."`).
MIGRATION_MESSAGE = "add a color to items"


def examples(root: Path) -> list[tuple[str, str, str]]:
    """Return each example to apply of the README and docs/ as (the page, its language, the
    block)."""
    return [
        (page.name, found["language"], found["code"])
        for page in pages(root)
        for found in CODE_BLOCK.finditer(page.read_text())
    ]


def section_examples(page: Path, heading: str) -> list[str]:
    """Return the blocks to apply of one section of ``page``, from ``heading`` to the next."""
    text = page.read_text()
    section = text[text.index(heading) :].split("\n## ")[0]
    return [found["code"] for found in CODE_BLOCK.finditer(section)]


def apply(root: Path, block: str) -> Path:
    """Write ``block`` where its first line says; return the file it changed."""
    where = WHERE.fullmatch(block.splitlines()[0].strip())
    assert where, f"an example must say where it goes in its first line:\n{block}"
    target = root / where["path"]
    if block.splitlines()[0].endswith(", a new file"):
        assert not target.exists(), f"{target} exists: the example says it is a new file"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block)
        return target
    text = target.read_text()
    if where["how"] is None:
        target.write_text(text.rstrip("\n") + "\n\n\n" + block)
        return target
    lines = text.splitlines(keepends=True)
    starts = [n for n, line in enumerate(lines) if line.lstrip().startswith(where["start"])]
    assert len(starts) == 1, f"{where['start']!r} starts {len(starts)} lines of {target}"
    at = starts[0]
    lines[at : at + 1] = [lines[at], block] if where["how"] == "after" else [block]
    target.write_text("".join(lines))
    return target


def apply_target(root: Path, block: str) -> Path:
    """Return the file an example changes (its first line's path)."""
    where = WHERE.fullmatch(block.splitlines()[0].strip())
    assert where, block
    return root / where["path"]


def defined_tests(root: Path) -> set[tuple[str, str]]:
    """Return each test function of a bake's suite as (its file, its def line)."""
    return {
        (str(path.relative_to(root)), line.strip())
        for path in (root / "tests").rglob("test_*.py")
        for line in path.read_text().splitlines()
        if line.lstrip().startswith(("def test_", "async def test_"))
    }


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
    tests_before = defined_tests(root)
    found = examples(root)
    longest = len(package_name(root)) - LONGEST_PACKAGE
    python = [b for _, language, b in found if language == "python"]
    assert not [b for b in python if len(b.splitlines()[0]) - longest > LINE_LENGTH], found
    assert {page for page, _, _ in found} >= {"README.md", "api.md"}, found
    changed = {apply(root, block) for _, _, block in found}
    assert root / "tests" / "items" / "test_api.py" in changed
    package = package_name(root)
    recipe = {apply_target(root, b) for b in section_examples(root / "docs/api.md", RESOURCE)}
    own = [root / package / RESOURCE_FOLDERS[0], root / RESOURCE_FOLDERS[1]]
    outside = {path for path in recipe if not any(path.is_relative_to(f) for f in own)}
    assert outside == {root / package / "__init__.py", root / "pyproject.toml"}, outside
    if (root / "migrations").is_dir():  # against a scratch SQLite database, not the bake's own
        scratch = {**clean_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'migration.db'}"}
        make_ok(root, scratch, "migration", f"m={MIGRATION_MESSAGE}")
        made = list((root / "migrations" / "versions").glob("*add_a_color_to_items.py"))
        assert len(made) == 1 and "add_column" in made[0].read_text(), made
        assert "create_table('orders'" in made[0].read_text(), made  # the new resource
    assert defined_tests(root) >= tests_before  # no test of the bake removed or renamed
    tested = make_ok(root, clean_env, "lint", "typecheck", "test")
    assert " passed" in tested.strip().splitlines()[-1], tested[-2000:]
    assert not skips_not_for_a_server(tested), tested[-3000:]
    argv = [str(root / ".venv" / "bin" / "python"), "-m", "pytest", "-v", "tests/orders"]
    orders = subprocess.run(
        argv, cwd=root, env=clean_env, capture_output=True, text=True, timeout=300
    ).stdout
    ran = {"placed_then_read", "5_orders_a_minute", "what_orders_answer", "needs_a_token"}
    expected = ran if (root / package / "auth").is_dir() else ran - {"needs_a_token"}
    assert {name for name in ran if f"{name} PASSED" in orders} == expected, orders[-3000:]


def test_an_example_that_does_not_say_where_it_goes_is_refused(tmp_path):
    """It refuses a Python example without its first-line location, or with a line not found."""
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(AssertionError, match="say where it goes"):
        apply(tmp_path, "def f() -> None:\n    pass\n")
    with pytest.raises(AssertionError, match="starts 0 lines"):
        apply(tmp_path, '# a.py, after "y ="\nz = 2\n')
    assert apply(tmp_path, '# a.py, after "x ="\nz = 2\n').read_text().endswith("z = 2\n")


def test_an_example_makes_a_new_file_or_replaces_a_line(tmp_path):
    """It writes a new file (refusing one that exists), and replaces the one line starting so."""
    made = apply(tmp_path, "# b/c.py, a new file\nx = 1\n")
    assert made == tmp_path / "b" / "c.py" and made.read_text().endswith("x = 1\n")
    with pytest.raises(AssertionError, match="exists"):
        apply(tmp_path, "# b/c.py, a new file\ny = 2\n")
    replaced = apply(tmp_path, "# b/c.py, in place of 'x ='\nx = 3\n").read_text()
    assert replaced.endswith("x = 3\n") and "x = 1" not in replaced
