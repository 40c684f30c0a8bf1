"""docs/configuration.md lists every setting, rendered from the settings classes' fields.

Each setting is described once, by ``Field(description=...)`` beside its field. ``make docs``
(``python -m tests.settings.test_configuration_reference``) writes the page's tables from the
classes; the tests fail while the page and the classes disagree, or a field has no description.
The renderer lives here, beside its test, not in the package: the service never renders its docs.
"""

import importlib
import inspect
import pkgutil
from pathlib import Path
from types import NoneType
from typing import Literal, get_args, get_origin

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

import {{ cookiecutter.package_name }}

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN = "<!-- make docs writes the tables below, from the settings classes' fields -->"
END = "<!-- end of what make docs writes -->"
HEADER = ["| variable | default | values | meaning |", "|---|---|---|---|"]
# How each bound of a number reads, in the order they are joined.
BOUNDS = {"gt": "over {}", "ge": "{} or more", "lt": "under {}", "le": "at most {}"}


def settings_classes() -> list[type[BaseSettings]]:
    """Return every settings class the package declares, each before the classes built on it."""
    package = {{ cookiecutter.package_name }}.__name__
    for module in pkgutil.walk_packages({{ cookiecutter.package_name }}.__path__, f"{package}."):
        importlib.import_module(module.name)

    def declared_below(cls: type[BaseSettings]) -> list[type[BaseSettings]]:
        """Return the package's subclasses of ``cls``, depth first, in the order of creation."""
        ours = [sub for sub in cls.__subclasses__() if sub.__module__.startswith(f"{package}.")]
        return [found for sub in ours for found in (sub, *declared_below(sub))]

    found = list(dict.fromkeys(declared_below(BaseSettings)))
    ordered: list[type[BaseSettings]] = []
    while found:  # a class built on several waits for the last of them; each pass takes one
        cls = next(c for c in found if not set(c.__bases__) & set(found))
        found.remove(cls)
        ordered.append(cls)
    return ordered


def own_fields(cls: type[BaseSettings]) -> dict[str, FieldInfo]:
    """Return the fields ``cls`` declares itself: inherited ones are listed under their class."""
    inherited = {name for base in cls.__bases__ for name in getattr(base, "model_fields", {})}
    return {name: f for name, f in cls.model_fields.items() if name not in inherited}


def default_text(field: FieldInfo) -> str:
    """Return a field's default as the page shows it; ``unset`` when the description says."""
    if field.default_factory is not None or field.default is None:
        return "unset"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    return f"`{field.default}`" if field.default != "" else "empty"


def values_text(field: FieldInfo) -> str:
    """Return the values a field accepts: its choices, its bounds, or its kind."""
    if get_origin(field.annotation) is Literal:
        return ", ".join(f"`{choice}`" for choice in get_args(field.annotation))
    kinds = set(get_args(field.annotation) or [field.annotation]) - {NoneType}
    if kinds == {bool}:
        return "`true`, `false`"
    bounds = {key: getattr(m, key) for m in field.metadata for key in BOUNDS if hasattr(m, key)}
    if bounds.keys() == {"ge", "le"}:
        return f"{bounds['ge']} to {bounds['le']}"
    if bounds:
        return ", ".join(BOUNDS[key].format(bounds[key]) for key in BOUNDS if key in bounds)
    names = {int: "a whole number", float: "a number", str: "text", SecretStr: "text"}
    return " or ".join(sorted(names.get(kind, "a path") for kind in kinds))


def render() -> str:
    """Return the page's tables: per class, the variable, default, values and description of
    each field it declares."""
    lines = []
    for cls in settings_classes():
        where = Path(inspect.getfile(cls)).relative_to(PAGE.parents[1]).as_posix()
        lines += [f"## `{cls.__name__}` (`{where}`)", "", inspect.getdoc(cls) or "", "", *HEADER]
        for name, field in own_fields(cls).items():
            cells = [f"`{name.upper()}`", default_text(field), values_text(field)]
            lines.append(f"| {' | '.join(cells)} | {field.description} |")
        lines.append("")
    return "\n".join(lines)


def with_tables(page: str, tables: str) -> str:
    """Return ``page`` with the part between its markers replaced by ``tables``."""
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{tables}\n{END}{tail}"


def test_the_page_lists_the_settings_as_the_classes_declare_them():
    """It finds docs/configuration.md's tables as the settings classes render now."""
    page = PAGE.read_text()
    assert BEGIN in page and END in page, f"{PAGE} lost its markers: {BEGIN} ... {END}"
    assert page == with_tables(page, render()), "docs/configuration.md is stale: run `make docs`"


def test_every_setting_is_described_and_says_what_unset_means():
    """It finds a description on every field, which says what an unset default means."""
    problems = []
    for cls in settings_classes():
        for name, field in own_fields(cls).items():
            if not field.description:
                problems.append(f"{cls.__name__}.{name} has no description")
            elif default_text(field) == "unset" and "unset" not in field.description:
                problems.append(f"{cls.__name__}.{name}'s description says not what unset means")
    assert not problems, "; ".join(problems) + " (its Field(description=...), beside it)"


def test_the_tables_replace_only_what_lies_between_the_markers():
    """It keeps the text around the markers, and rewrites the tables between them."""
    page = f"# Title\n\n{BEGIN}\n\nold tables\n{END}\n\nmore\n"
    assert with_tables(page, "new\n") == f"# Title\n\n{BEGIN}\n\nnew\n\n{END}\n\nmore\n"


if __name__ == "__main__":
    PAGE.write_text(with_tables(PAGE.read_text(), render()))
    print(f"wrote {PAGE}")
