"""The combinations tier 3 runs, all in one xdist group so they share one Docker engine.

Tier 3 serves the combinations tiers 2 and 3 share (SERVED), each on one of the offered Pythons:
its images are built FROM Python stand-ins that run the version their tag names, so the versions
differ in what tier 3 tests. They are spread pairwise over the rows (each version meets each value
of the other options where the rows allow), not crossed, so the number of image builds stays that
of SERVED; a version no row takes gets a row of its own.
"""

from __future__ import annotations

import collections

import pytest
from combinations import DEFAULTS, PYTHON_VERSIONS, SERVED, Combination, allowed, combination

DOCKER = pytest.mark.xdist_group("docker")
PYTHON = "python_version"


def with_pythons(combos: list[Combination], versions=PYTHON_VERSIONS) -> list[Combination]:
    """Give each combination a Python version, pairwise with its other answers.

    The row at every default keeps the default Python (what pressing Enter builds). Each other row
    takes the version that holds most (version, answer) pairs not yet held, the least used one on
    a tie, then the first offered (so every run agrees).
    """
    missing = {
        (version, item) for version in versions for c in combos for item in c.answers.items()
    }
    used: collections.Counter[str] = collections.Counter()
    rows = []
    for combo in combos:
        if all(value == DEFAULTS[option] for option, value in combo.answers.items()):
            version = DEFAULTS[PYTHON]
        else:
            held = {
                version: {(version, item) for item in combo.answers.items()} for version in versions
            }
            version = max(versions, key=lambda v: (len(held[v] & missing), -used[v]))
        missing -= {(version, item) for item in combo.answers.items()}
        used[version] += 1
        rows.append({**combo.answers, PYTHON: version})
    rows += [{**combos[0].answers, PYTHON: version} for version in versions if not used[version]]
    assert all(map(allowed, rows)), "the pre-gen hook refuses a Python version of a served row"
    return [combination(row) for row in rows]


# Every combination tier 3 builds an image of, each once.
TIER3 = with_pythons(SERVED)


def distinct_combinations() -> list[Combination]:
    """Return the combinations tier 3 serves: the cross of the runtime services, on each Python."""
    return list(TIER3)


def docker_params(combos: list[Combination] | None = None) -> list:
    """Return pytest params, one per combination, all in the one "docker" xdist group."""
    combos = TIER3 if combos is None else combos
    return [pytest.param(combo, id=combo.id, marks=DOCKER) for combo in combos]
