"""Tier 1: each bake's own code stays within its budget and uses only its libraries' public API."""

import pytest
from combinations import (
    ALL_OFF,
    ALL_ON,
    ALL_ON_GRANIAN,
    CHOICES,
    COMBINATIONS,
    DEFAULTS_COMBO,
    RULES,
    YES_NO,
    combination,
    params,
)
from conftest import SIZE_PROPERTY
from lean_checks import private_uses, service_lines, service_modules
from project_files import package_name

# Lines of Python outside tests and migrations (the server configs and launchers included): the
# budget of each bake, set at least 10% over what it holds, so a new option's code fits without
# squeezing the rest; a change that leaves less than that says why and raises it. The run prints
# each bake's lines and each option's (test_each_options_lines_are_reported) after its tests.
BUDGETS = [(DEFAULTS_COMBO, 2580), (ALL_OFF, 2370), (ALL_ON, 9400), (ALL_ON_GRANIAN, 9410)]


@pytest.mark.parametrize(
    ("combo", "budget"),
    [pytest.param(c, b, id=c.id, marks=pytest.mark.xdist_group(c.id)) for c, b in BUDGETS],
)
def test_a_bake_stays_within_its_budget_of_lines(bake, record_property, combo, budget):
    """It keeps the service's own Python (not its tests or migrations) within the budget."""
    lines = service_lines(bake(combo))
    spare = f"{budget / lines - 1:.0%} spare"
    record_property(SIZE_PROPERTY, f"bake {combo.id}: {lines} lines, budget {budget} ({spare})")
    assert lines <= budget, f"{combo.id}: {lines} lines; the budget is {budget}"


def option_bakes() -> dict[str, tuple]:
    """Return, per option value not in the all-off bake, the bakes without and with it.

    Both start all-off; both select what the hook's RULES say the value needs (Celery: Redis).
    """
    off = ALL_OFF.answers
    values = [(o, "yes") for o in YES_NO] + [
        (o, v) for o in CHOICES if o not in YES_NO and o != "python_version" for v in CHOICES[o][1:]
    ]
    bakes = {}
    for option, value in values:
        needs = {k: v for o, want, n in RULES if (o, want) == (option, value) for k, v in n.items()}
        key = option if value == "yes" else f"{option}={value}"
        bakes[key] = (combination({**off, **needs}), combination({**off, **needs, option: value}))
    return bakes


@pytest.mark.xdist_group("option-sizes")
def test_each_options_lines_are_reported(bake, record_property):
    """It reports the lines of Python each option adds to the all-off bake (what it needs aside)."""
    for key, (without, with_option) in option_bakes().items():
        added = service_lines(bake(with_option)) - service_lines(bake(without))
        record_property(SIZE_PROPERTY, f"option {key}: {added:+d} lines")


@pytest.mark.parametrize("combo", params([*COMBINATIONS, ALL_ON_GRANIAN]))
def test_the_service_uses_only_its_libraries_public_api(bake, combo):
    """It reaches into no library's underscored names, module attributes or internal classes."""
    root = bake(combo)
    package = package_name(root)
    found = [
        f"{path.relative_to(root)}:{use}"
        for path in service_modules(root)
        for use in private_uses(path.read_text(), package)
    ]
    assert not found, found


REACHES = {
    "a private attribute": ("client.connection._sock", "private attribute ._sock"),
    "a private module": ("from redis._parsers import Encoder", "private module or name"),
    "a private name": ("from sqlalchemy.engine import _row", "private module or name"),
    "a module attribute replaced": (
        "from prometheus_client import values\nvalues.ValueClass = None",
        "library attribute replaced: values.ValueClass",
    ),
    "an undocumented base class": (
        "from redis.connection import Connection\nclass Guarded(Connection): pass",
        "class Guarded subclasses redis.connection.Connection",
    ),
    "a library class by its module": (
        "import gunicorn.workers.gthread\nclass W(gunicorn.workers.gthread.ThreadWorker): pass",
        "class W subclasses gunicorn.workers.gthread.ThreadWorker",
    ),
}


@pytest.mark.parametrize(("source", "finding"), REACHES.values(), ids=REACHES.keys())
def test_the_public_api_check_finds_each_kind_of_reach(source, finding):
    """It reports each kind of reach into a library, at its line."""
    (found,) = private_uses(source, "my_service")
    assert finding in found


ALLOWED = {
    "its own private names": "class A:\n    def f(self):\n        return self._x",
    "werkzeug's documented proxy method": "from flask import g\ng._get_current_object()",
    "Flask's g namespace": "from flask import g\ng.request_id = 'x'",
    "its own package's names": "from my_service import _helpers\nfrom ._x import _y",
    "a documented base class": "from pydantic import BaseModel\nclass Item(BaseModel): pass",
    "its own classes": "class A: pass\nclass B(A): pass",
    "dunder names": "import json\njson.__name__",
}


@pytest.mark.parametrize("source", ALLOWED.values(), ids=ALLOWED.keys())
def test_the_public_api_check_passes_what_is_public(source):
    """It reports nothing for public names, the project's own names and documented bases."""
    assert private_uses(source, "my_service") == []


def test_the_public_api_check_reports_another_objects_private_attribute():
    """It reports ``other._y`` although ``self._x`` beside it passes."""
    source = "class A:\n    def f(self, other):\n        return self._x, other._y"
    assert private_uses(source, "my_service") == ["3: private attribute ._y"]
