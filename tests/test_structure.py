"""Tier 1: the generated package is layered: no import cycle, a short top level, auth in one folder."""

import pytest
from combinations import ALL_ON, ALL_ON_GRANIAN, COMBINATIONS, params
from import_graph import cycles, import_graph
from project_files import package_name

# The all-on package's top level: the factory, the extension objects, the layers and features,
# and the Celery worker's entry point.
MAX_TOP_LEVEL = 8


def structure_params() -> list:
    """Return every tier-1 combination, and all-on with granian when tier 1 has no such row."""
    extra = [] if ALL_ON_GRANIAN in COMBINATIONS else [ALL_ON_GRANIAN]
    return params([*COMBINATIONS, *extra])


@pytest.mark.parametrize("combo", structure_params())
def test_the_package_has_no_import_cycle(bake, combo):
    """No modules of the package import each other, directly or around a circle."""
    project = bake(combo)
    graph = import_graph(project / package_name(project))
    assert len(graph) > 10, "the graph lost the package's modules"
    assert cycles(graph) == []


def test_a_cycle_under_type_checking_is_found(tmp_path):
    """A cycle closed by an import under TYPE_CHECKING counts: the check is shown failing."""
    package = tmp_path / "pkg"
    (package / "settings").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "settings" / "__init__.py").write_text("from ..platform import database\n")
    (package / "platform").mkdir()
    (package / "platform" / "__init__.py").write_text("")
    (package / "platform" / "database.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from ..settings import Settings\n"
    )
    (package / "platform" / "health.py").write_text("from . import database\n")
    assert cycles(import_graph(package)) == [["pkg.platform.database", "pkg.settings"]]


def test_all_on_has_a_short_top_level(bake):
    """The all-on package's top level holds at most MAX_TOP_LEVEL entries; auth is one folder."""
    project = bake(ALL_ON)
    package = project / package_name(project)
    entries = sorted(p.name for p in package.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_TOP_LEVEL, entries
    outside = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "auth" in path.stem and path.parent.name != "auth"
    ]
    assert (package / "auth").is_dir() and outside == ["settings/auth.py"]
