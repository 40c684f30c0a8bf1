"""The combinations tier 3 runs, all in one xdist group so they share one Docker engine."""

from __future__ import annotations

import pytest
from combinations import SERVED, Combination

DOCKER = pytest.mark.xdist_group("docker")


def distinct_combinations() -> list[Combination]:
    """Return the combinations tier 3 serves: the cross of the runtime services."""
    return list(SERVED)


def docker_params(combos: list[Combination] | None = None) -> list:
    """Return pytest params, one per combination, all in the one "docker" xdist group."""
    combos = SERVED if combos is None else combos
    return [pytest.param(combo, id=combo.id, marks=DOCKER) for combo in combos]
