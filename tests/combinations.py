"""The one table of option combinations that drives every generation test."""

import itertools
from dataclasses import dataclass, field

import pytest

OPTIONS = ("use_postgres", "use_redis", "use_nginx")
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
SHORT = {"use_postgres": "pg", "use_redis": "redis", "use_nginx": "nginx"}


@dataclass(frozen=True)
class Combination:
    """Answers for one bake, with a readable id."""

    id: str
    answers: dict = field(hash=False)

    def selected(self, option: str) -> bool:
        """Say whether ``option`` is on in this combination (cookiecutter defaults apply)."""
        return self.answers.get(option, DEFAULTS[option]) == "yes"


DEFAULTS = {"use_postgres": "yes", "use_redis": "yes", "use_nginx": "no", "use_kubernetes": "no"}


def _matrix() -> list[Combination]:
    """Every use_postgres x use_redis x use_nginx combination, Kubernetes on, Pythons rotated."""
    combos = []
    for index, values in enumerate(itertools.product(("yes", "no"), repeat=len(OPTIONS))):
        answers = dict(zip(OPTIONS, values, strict=True))
        answers["use_kubernetes"] = "yes"
        answers["python_version"] = PYTHON_VERSIONS[index % len(PYTHON_VERSIONS)]
        on = [SHORT[option] for option in OPTIONS if answers[option] == "yes"]
        combos.append(Combination("-".join(on) or "bare", answers))
    return combos


# The defaults (what pressing Enter gives: Kubernetes off) plus the full matrix.
COMBINATIONS = [Combination("defaults", {}), *_matrix()]
BY_ID = {combo.id: combo for combo in COMBINATIONS}


def params(combos=None) -> list:
    """Return pytest params, one per combination, grouped so one xdist worker bakes each once."""
    return [
        pytest.param(combo, id=combo.id, marks=pytest.mark.xdist_group(combo.id))
        for combo in (combos if combos is not None else COMBINATIONS)
    ]
