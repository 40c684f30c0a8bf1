"""Tier 1: the generated package is layered: no import cycle, dependencies pointing down, a short
top level, each blueprint changed by its own module only, Jinja that only selects."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import ALL_OFF, ALL_ON, ALL_ON_GRANIAN, COMBINATIONS, params
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
        "from typing import TYPE_CHECKING\n\n"
        "if TYPE_CHECKING:\n    from ..settings import Settings\n"
    )
    (package / "platform" / "health.py").write_text("from . import database\n")
    assert cycles(import_graph(package)) == [["pkg.platform.database", "pkg.settings"]]


def test_all_on_has_a_short_top_level(cookies, template_dir):
    """The all-on package's top level holds at most MAX_TOP_LEVEL entries; auth is one folder.

    A bake of its own: other tests build assets and caches into the shared one.
    """
    result = cookies.bake(extra_context=ALL_ON.answers, template=str(template_dir))
    assert result.exit_code == 0, result.exception
    project = result.project_path
    package = project / package_name(project)
    entries = sorted(p.name for p in package.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_TOP_LEVEL, entries
    outside = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "auth" in path.stem and path.parent.name != "auth"
    ]
    assert (package / "auth").is_dir() and outside == ["settings/auth.py"]


# Each layer of the package and the layers below it that it may import; features may not import
# each other. The root package (create_app) and its entry points sit above them all.
LAYERS = {
    "items": {"web", "platform", "settings", "extensions"},
    "auth": {"web", "platform", "settings", "extensions"},
    "web": {"platform", "settings", "extensions"},
    "platform": {"settings", "extensions"},
    "settings": set(),
    "extensions": set(),
}


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Return each import (module, imported) from a layer of LAYERS into one it may not import."""
    found = []
    for module, targets in graph.items():
        layer = module.split(".")[1] if "." in module else ""
        for target in targets:
            target_layer = target.split(".")[1] if "." in target else ""
            if layer in LAYERS and target_layer != layer and target_layer not in LAYERS[layer]:
                found.append((module, target))
    return sorted(found)


@pytest.mark.parametrize("combo", structure_params())
def test_dependencies_point_down(bake, combo):
    """Features import the web, platform and settings layers only, never each other; the
    platform imports settings and extensions; settings import libraries only."""
    project = bake(combo)
    assert upward_imports(import_graph(project / package_name(project))) == []


def test_an_upward_import_is_found():
    """The layer check names a platform module importing a feature, and features importing each
    other: shown failing."""
    graph = {
        "pkg.platform.database": {"pkg.items.models", "pkg.settings"},
        "pkg.auth.pages": {"pkg.items.pages", "pkg.web.htmx"},
        "pkg.settings": {"pkg.settings.limits"},
        "pkg": {"pkg.items.api"},
    }
    assert upward_imports(graph) == [
        ("pkg.auth.pages", "pkg.items.pages"),
        ("pkg.platform.database", "pkg.items.models"),
    ]


# A module using another module's blueprint: ``pages.bp.after_request(...)``, ``@api.bp.get(...)``.
FOREIGN_BLUEPRINT = re.compile(r"\b\w+\.bp\.\w+")


def foreign_blueprint_uses(text: str) -> list[str]:
    """Return the lines of ``text`` that call a method of another module's blueprint."""
    return [line.strip() for line in text.splitlines() if FOREIGN_BLUEPRINT.search(line)]


@pytest.mark.parametrize("combo", params([ALL_ON, ALL_ON_GRANIAN]))
def test_no_module_changes_another_modules_blueprint(bake, combo):
    """Each blueprint is decorated by its own module only; its init_app registers it."""
    project = bake(combo)
    package = project / package_name(project)
    found = {
        str(path.relative_to(package)): foreign_blueprint_uses(path.read_text())
        for path in package.rglob("*.py")
    }
    assert {path: lines for path, lines in found.items() if lines} == {}


def test_a_foreign_blueprint_use_is_found():
    """The blueprint check finds a decorator and a call on another module's blueprint."""
    text = "@api.bp.before_request\ndef f(): ...\npages.bp.after_request(send)\nbp.get('/')\n"
    assert foreign_blueprint_uses(text) == [
        "@api.bp.before_request",
        "pages.bp.after_request(send)",
    ]


# Jinja's else, and a Jinja tag inside a triple-quoted string (a docstring), in a template file.
JINJA_ELSE = re.compile(r"\{%-?\s*else\s*-?%\}")
TRIPLE_QUOTED = re.compile(r'"""(.*?)"""', re.DOTALL)


def jinja_shaped_like_code(text: str) -> list[str]:
    """Return what in a template's Python text is more than a selection: each ``else`` and
    each triple-quoted string holding a Jinja tag."""
    found = [match.group(0) for match in JINJA_ELSE.finditer(text)]
    found += [
        m.group(0).splitlines()[0] for m in TRIPLE_QUOTED.finditer(text) if "{%" in m.group(1)
    ]
    return found


def test_generated_python_uses_jinja_to_select_only(template_dir):
    """No generated Python file holds an ``{% else %}`` (a second body) or Jinja in a docstring."""
    project = template_dir / "{{cookiecutter.project_slug}}"
    found = {
        str(path.relative_to(project)): jinja_shaped_like_code(path.read_text())
        for path in sorted(project.rglob("*.py"))
    }
    assert {path: shapes for path, shapes in found.items() if shapes} == {}


def test_jinja_shaped_like_code_is_found():
    """The check names an else block and a docstring with a tag: shown failing."""
    text = (
        '"""Cache{% if cookiecutter.use_redis == "yes" %} in Redis{% endif %}."""\n'
        '{%- if cookiecutter.use_auth == "yes" %}\nx = 1\n{%- else %}\nx = 2\n{%- endif %}\n'
    )
    assert jinja_shaped_like_code(text) == [
        "{%- else %}",
        '"""Cache{% if cookiecutter.use_redis == "yes" %} in Redis{% endif %}."""',
    ]


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """Run the bake's import contract (pyproject.toml) with import-linter, as `make lint` does."""
    command = Path(sys.executable).parent / "lint-imports"
    assert command.is_file(), f"{command} is missing: .ci/run installs the bakes' dev tools"
    environment = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [str(command), "--no-cache"], cwd=project, env=environment, capture_output=True, text=True
    )


@pytest.mark.parametrize("combo", structure_params())
def test_the_bakes_import_contract_is_kept(bake, combo):
    """The generated import-linter contract holds: `make lint` passes it."""
    result = lint_imports(bake(combo))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_bakes_import_contract_refuses_an_upward_import(bake, tmp_path):
    """A platform module importing the example feature breaks the contract: shown failing."""
    project = tmp_path / "project"
    shutil.copytree(bake(ALL_OFF), project)
    database = project / package_name(project) / "platform" / "database.py"
    database.write_text(database.read_text() + "\nfrom ..items import models  # noqa: E402\n")
    result = lint_imports(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 kept, 1 broken" in result.stdout
    assert "platform.database -> " in result.stdout
