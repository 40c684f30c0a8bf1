"""Tier 1: each bake's own code stays within its budget and uses only its libraries' public API."""

import pytest
from combinations import ALL_OFF, ALL_ON, ALL_ON_GRANIAN, COMBINATIONS, DEFAULTS_COMBO, params
from lean_checks import MAX_MODULE_LINES, line_count, private_uses, service_modules

# Lines of Python outside tests and migrations (the server configs and launchers included): the
# budget of each bake. A new option fits its code within them, or its change says why it cannot.
# All-off was 1400 until mypy strict (issue 40): its typing imports and aliases took 22 lines.
# All-on was 2400 until use_auth (issue 43): users, hashing and tokens (accounts.py), the `flask
# users` commands, the token endpoints and bearer check (auth_api.py), the pages' sign-in
# (sign_in.py) and the sign-in limits took about 570 lines.
BUDGETS = [(DEFAULTS_COMBO, 1600), (ALL_OFF, 1425), (ALL_ON, 2850), (ALL_ON_GRANIAN, 2850)]


def package_of(root) -> str:
    """Return the generated package's name (the folder holding settings.py)."""
    (settings,) = root.glob("*/settings.py")
    return settings.parent.name


@pytest.mark.parametrize(
    ("combo", "budget"),
    [pytest.param(c, b, id=c.id, marks=pytest.mark.xdist_group(c.id)) for c, b in BUDGETS],
)
def test_a_bake_stays_within_its_budget_of_lines(bake, combo, budget):
    """It keeps the service's own Python (not its tests or migrations) within the budget."""
    root = bake(combo)
    sizes = {str(path.relative_to(root)): line_count(path) for path in service_modules(root)}
    assert sum(sizes.values()) <= budget, sorted(sizes.items(), key=lambda item: -item[1])


@pytest.mark.parametrize("combo", params([*COMBINATIONS, ALL_ON_GRANIAN]))
def test_no_module_is_longer_than_a_screenful_or_two(bake, combo):
    """It keeps each module within MAX_MODULE_LINES."""
    root = bake(combo)
    long = {
        str(path.relative_to(root)): line_count(path)
        for path in service_modules(root)
        if line_count(path) > MAX_MODULE_LINES
    }
    assert not long, long


@pytest.mark.parametrize("combo", params([*COMBINATIONS, ALL_ON_GRANIAN]))
def test_the_service_uses_only_its_libraries_public_api(bake, combo):
    """It reaches into no library's underscored names, module attributes or internal classes."""
    root = bake(combo)
    package = package_of(root)
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
