"""The generated README's "Daily work" recipe for a new endpoint works as written.

The code is taken from the README itself, so the test follows the text a user reads: a new view
appended to items/api.py, its entry added to OPERATIONS in items/operations.py, a test of it;
then the project's lint and its whole suite pass, the OpenAPI document's check of every route
included.
"""

import re
import shutil
import subprocess
import sys

import pytest
from combinations import ALL_OFF, ALL_ON, params
from project_files import package_name
from projects import run_project_tests

PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
NEW_TEST = '''

def test_the_readmes_new_endpoint_counts_the_items(client, writer):
    """It answers the number of items, as the README's example promises."""
    assert client.get("/api/items/count").json == {"count": 0}
    assert writer.post("/api/items", json={"name": "one"}).status_code == 201
    assert client.get("/api/items/count").json == {"count": 1}
'''


def python_block_after(readme: str, lead: str) -> str:
    """Return the first fenced Python block after the text ``lead`` in the README."""
    start = readme.index(lead)
    found = PYTHON_BLOCK.search(readme, start)
    assert found, f"no Python block after {lead!r}"
    return found.group(1)


@pytest.mark.parametrize("combo", params([ALL_OFF, ALL_ON]))
def test_the_add_an_endpoint_recipe_passes_lint_and_the_suite(bake, combo, clean_env, tmp_path):
    """It adds the README's endpoint as the README says; `make test lint`'s checks pass."""
    root = tmp_path / "project"
    shutil.copytree(bake(combo), root)
    readme = (root / "README.md").read_text()
    package = root / package_name(root)

    view = python_block_after(readme, "For example, appended to `items/api.py`")
    api = package / "items" / "api.py"
    api.write_text(api.read_text() + "\n\n" + view)
    entry = python_block_after(readme, "added to `OPERATIONS` in `items/operations.py`")
    operations = package / "items" / "operations.py"
    text = operations.read_text()
    assert text.count("OPERATIONS = {\n") == 1
    operations.write_text(text.replace("OPERATIONS = {\n", "OPERATIONS = {\n" + entry))
    tests = root / "tests" / "items" / "test_api.py"
    tests.write_text(tests.read_text() + NEW_TEST)

    for check in (["check", "."], ["format", "--check", "."]):
        linted = subprocess.run(
            [sys.executable, "-m", "ruff", *check],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert linted.returncode == 0, linted.stdout + linted.stderr
    run_project_tests(root, clean_env)  # the new test included: it is in tests/items/test_api.py
