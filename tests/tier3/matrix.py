"""The combinations tier 3 runs, all in one xdist group so they share one Docker engine."""

from __future__ import annotations

import pytest
from combinations import COMBINATIONS, Combination

DOCKER = pytest.mark.xdist_group("docker")
OPTIONS = ("use_postgres", "use_redis", "use_nginx")


def option_key(combo: Combination) -> tuple[bool, ...]:
    """Return which of postgres, redis and nginx a combination selects."""
    return tuple(combo.selected(option) for option in OPTIONS)


def distinct_combinations() -> list[Combination]:
    """Return the combinations, without "defaults" when another one selects the same options."""
    others = {option_key(c) for c in COMBINATIONS if c.id != "defaults"}
    return [c for c in COMBINATIONS if c.id != "defaults" or option_key(c) not in others]


def docker_params(combos: list[Combination] | None = None) -> list:
    """Return pytest params, one per combination, all in the one "docker" xdist group."""
    combos = COMBINATIONS if combos is None else combos
    return [pytest.param(combo, id=combo.id, marks=DOCKER) for combo in combos]
