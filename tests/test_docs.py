"""Tier 1: the generated README fits a few screens, and it and docs/ hold together.

The README starts with the quick start and ends with one line per page of docs/; every relative
link of the README and of docs/ reaches a file (and heading) of that bake, and every task
`make help` lists is documented in one of them.
"""

import re

import pytest
from combinations import ALL_ON_GRANIAN, COMBINATIONS, params
from markdown_links import broken_links, links, pages, prose

BAKES = params([*COMBINATIONS, ALL_ON_GRANIAN])
MAX_README_LINES = 200
QUICK_START = "## Quick start"
QUICK_START_BY_LINE = 40
# A task as the Makefile documents it for `make help` (its help format: "name: ... ## text").
TASK = re.compile(r"^([a-z][a-z-]*):.*## ", re.MULTILINE)


def quick_start_line(readme: str) -> int | None:
    """Return the 1-based line of the quick start heading, or None."""
    lines = readme.splitlines()
    return lines.index(QUICK_START) + 1 if QUICK_START in lines else None


def undocumented_tasks(makefile: str, docs: str) -> list[str]:
    """Return the tasks `make help` lists that ``docs`` never shows as `make <task>`."""
    return [
        task
        for task in TASK.findall(makefile)
        if not re.search(rf"\bmake {re.escape(task)}(?![\w-])", docs)
    ]


@pytest.mark.parametrize("combo", BAKES)
def test_the_readme_fits_a_few_screens_and_starts_with_the_quick_start(bake, combo):
    """It keeps the README within 200 lines, the quick start heading within the first 40."""
    readme = (bake(combo) / "README.md").read_text()
    assert len(readme.splitlines()) <= MAX_README_LINES, len(readme.splitlines())
    line = quick_start_line(readme)
    assert line is not None and line <= QUICK_START_BY_LINE, line


@pytest.mark.parametrize("combo", BAKES)
def test_every_relative_link_of_the_readme_and_docs_resolves(bake, combo):
    """It finds the file, and the heading, each relative link of README.md and docs/ names."""
    root = bake(combo)
    broken = {
        str(page.relative_to(root)): found
        for page in pages(root)
        if (found := broken_links(page, root))
    }
    assert not broken, broken


@pytest.mark.parametrize("combo", BAKES)
def test_the_readme_lists_every_docs_page_on_a_line_of_its_own(bake, combo):
    """It links each page of docs/ from one line of the README, and no page twice."""
    root = bake(combo)
    readme = (root / "README.md").read_text()
    linked = [
        target
        for line in prose(readme).splitlines()
        for target in links(line)[:1]
        if target.startswith("docs/") and line.startswith("- ")
    ]
    shipped = sorted(f"docs/{path.name}" for path in (root / "docs").glob("*.md"))
    assert sorted(linked) == shipped


@pytest.mark.parametrize("combo", BAKES)
def test_every_make_task_is_documented_in_the_readme_or_docs(bake, combo):
    """It shows each task `make help` lists as `make <task>` in the README or a docs/ page."""
    root = bake(combo)
    text = "\n".join(page.read_text() for page in pages(root))
    assert TASK.findall((root / "Makefile").read_text()), "no task found"
    assert not undocumented_tasks((root / "Makefile").read_text(), text)


def test_the_link_check_finds_a_missing_file_heading_or_escape(tmp_path):
    """It reports a missing page, a missing heading and a path outside the project; no others."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ops.md").write_text("# Operations\n\n## Trusted proxies, hops\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/ops.md) [ok](docs/ops.md#trusted-proxies-hops) [web](https://x.test/a)\n"
        "[gone](docs/gone.md) [no heading](docs/ops.md#metrics) [out](../elsewhere.md)\n"
        "`[code](docs/code.md)`\n```\n[block](docs/block.md)\n```\n"
    )
    assert broken_links(readme, tmp_path) == [
        "docs/gone.md",
        "docs/ops.md#metrics",
        "../elsewhere.md",
    ]


def test_the_task_check_finds_a_task_the_docs_never_show():
    """It reports a task named only as a prefix of another, and passes those shown."""
    makefile = "help: ## List\n\nassets: ## Build\n\nassets-watch: ## Watch\n\nup: x ## Start\n"
    assert undocumented_tasks(makefile, "`make help`, make up, `make assets-watch`") == ["assets"]


def test_the_quick_start_check_reads_the_heading_line():
    """It finds the heading's line, and none when the README has no quick start."""
    assert quick_start_line("# X\n\ntext\n## Quick start\n") == 4
    assert quick_start_line("# X\n\n## Getting started\n") is None
