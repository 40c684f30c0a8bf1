"""Tier 1: the template's README stays a few screens, and its links and those of docs/ resolve."""

from pathlib import Path

import pytest
from markdown_links import broken_links, links, pages

TEMPLATE = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200  # issue 39: the rest goes into a page of docs/
PAGES = pages(TEMPLATE)


def test_readme_fits_its_budget():
    """It keeps the template's README within 200 lines; details belong in docs/."""
    lines = len((TEMPLATE / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move a section to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(TEMPLATE).as_posix())
def test_every_relative_link_resolves(page):
    """It finds the file (and the heading, for an anchor) of every relative link."""
    assert broken_links(page, TEMPLATE) == []


def test_readme_links_every_docs_page():
    """It links each page of docs/ from the README, so none is only found by browsing."""
    linked = {target.partition("#")[0] for target in links((TEMPLATE / "README.md").read_text())}
    pages = {page.relative_to(TEMPLATE).as_posix() for page in PAGES[1:]}
    assert pages - linked == set()


MADE_UP = {
    "other.md": "# Other\n## Tier 1 without root\n## What `.ci/run` does\n## Notes\n## Notes\n",
    "sub/page.md": "# A page\n\nBack to [the list](../README.md).\n",
}


@pytest.mark.parametrize(
    ("line", "broken"),
    [
        pytest.param("[x](other.md) and [y](sub/page.md)", [], id="files"),
        pytest.param("[x](other.md#tier-1-without-root)", [], id="anchor"),
        pytest.param("[x](other.md#what-cirun-does)", [], id="heading-with-code"),
        pytest.param("[x](other.md#notes-1)", [], id="repeated-heading"),
        pytest.param("[x](#a-heading-here)", [], id="own-anchor"),
        pytest.param("[x](sub/)", [], id="folder"),
        pytest.param("[x](https://example.org/missing.md)", [], id="address"),
        pytest.param("`[x](missing.md)`\n\n```md\n[x](missing.md)\n```", [], id="code"),
        pytest.param("[x](missing.md)", ["missing.md"], id="missing-file"),
        pytest.param("[x](sub/other.md)", ["sub/other.md"], id="wrong-folder"),
        pytest.param("[x](other.md#tier-2)", ["other.md#tier-2"], id="missing-anchor"),
        pytest.param("[x](other.md#what--does)", ["other.md#what--does"], id="code-dropped"),
        pytest.param("[x](other.md#notes-2)", ["other.md#notes-2"], id="repeated-too-often"),
        pytest.param("[x](#nowhere)", ["#nowhere"], id="missing-own-anchor"),
        pytest.param("[x](sub/#a)", ["sub/#a"], id="anchor-in-a-folder"),
    ],
)
def test_broken_links_finds_what_does_not_resolve(tmp_path, line, broken):
    """It reports exactly the links of a made-up page that name no file or no heading."""
    for name, text in MADE_UP.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    page = tmp_path / "README.md"
    page.write_text(f"# Made up\n\n## A heading here\n\n{line}\n")
    assert broken_links(page, tmp_path) == broken
