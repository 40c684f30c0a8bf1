"""Read Markdown pages as GitHub renders them: their prose, their headings' anchors, their links.

Shared by the checks of the template's own README and docs/ (tests/test_template_docs.py) and of
each bake's (tests/test_docs.py).
"""

import re
from pathlib import Path

FENCED = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
ADDRESS = re.compile(r"[a-z][a-z0-9+.-]*:")  # https:, mailto: ...: not ours to check


def pages(root: Path) -> list[Path]:
    """Return a project's README and every page of its docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """Return Markdown without code blocks and code spans, where a link is only text."""
    return CODE_SPAN.sub("", FENCED.sub("", text))


def links(text: str) -> list[str]:
    """Return the targets of the links in a page's prose."""
    return LINK.findall(prose(text))


def anchors(text: str) -> set[str]:
    """Return the anchors GitHub gives a page's headings (a repeated one gets -1, -2, ...)."""
    found: set[str] = set()
    for heading in HEADING.findall(FENCED.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, repeats = slug, 0
        while anchor in found:
            repeats += 1
            anchor = f"{slug}-{repeats}"
        found.add(anchor)
    return found


def broken_links(page: Path, root: Path) -> list[str]:
    """Return the relative links of ``page`` that name no path under ``root``, or no heading."""
    broken = []
    for target in links(page.read_text()):
        if ADDRESS.match(target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page.resolve()
        inside = linked == root.resolve() or root.resolve() in linked.parents
        if not inside or not linked.exists():
            broken.append(target)
        elif anchor and (linked.is_dir() or anchor not in anchors(linked.read_text())):
            broken.append(target)
    return broken
