"""The option combinations every tier runs, derived from cookiecutter.json.

Tier 1 bakes the defaults, all-on, all-off and an all-pairs cover of every option (each value of
one option meets each value of every other at least once, unless the pre-gen hook's RULES refuse
that pair), so it grows with the number of options, not with their product. Tiers 2 and 3 serve the
full cross of the runtime services that talk to each other (CROSSED) and add every other option
(PAIRED) pairwise, but for those that change no process they run (NOT_SERVED).

    python tests/combinations.py all-on     prints the all-on answers as key=value words
    python tests/combinations.py union      prints, one bake a line, the answers whose
                                            dependencies together are every option's (.ci/run)
"""

import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hook_tables import rules_table

COOKIECUTTER_JSON = Path(__file__).resolve().parent.parent / "cookiecutter.json"
# Runtime services that interact: tiers 2 and 3 serve every cross of them.
CROSSED = ("use_postgres", "use_redis", "use_nginx")
# Options tiers 2 and 3 leave at their default here: nothing tier 2 serves tells the values apart
# (no manifests applied; one Python natively). Tier 3 spreads the Python versions over its rows
# itself (tests/tier3/matrix.py).
NOT_SERVED = ("use_kubernetes", "python_version")
# Short words for ids; any other option is called by its name without "use_".
SHORT = {"use_postgres": "pg", "use_kubernetes": "k8s", "python_version": "py"}


def load_choices(path: Path = COOKIECUTTER_JSON) -> dict[str, list[str]]:
    """Return each prompted option that offers a list of choices (the first is the default)."""
    context = json.loads(path.read_text())
    return {
        key: value
        for key, value in context.items()
        if isinstance(value, list) and not key.startswith("_")
    }


CHOICES = load_choices()
DEFAULTS = {option: values[0] for option, values in CHOICES.items()}
YES_NO = [option for option, values in CHOICES.items() if sorted(values) == ["no", "yes"]]
PYTHON_VERSIONS = tuple(CHOICES["python_version"])


def paired_options(choices: dict[str, list[str]]) -> tuple[str, ...]:
    """Return the options tiers 2 and 3 add pairwise: all but the crossed and the not served."""
    return tuple(option for option in choices if option not in (*CROSSED, *NOT_SERVED))


PAIRED = paired_options(CHOICES)


def combination_id(answers: dict) -> str:
    """Name the selected yes/no options (or "bare"), then each other choice not at its default."""
    full = {**DEFAULTS, **answers}
    words = [SHORT.get(o, o.removeprefix("use_")) for o in YES_NO if full[o] == "yes"] or ["bare"]
    others = [o for o in CHOICES if o not in YES_NO and full[o] != DEFAULTS[o]]
    return "-".join(words + [SHORT.get(o, "") + full[o] for o in others])


@dataclass(frozen=True)
class Combination:
    """Answers for one bake, with a readable id."""

    id: str
    answers: dict = field(hash=False)

    def value(self, option: str) -> str:
        """Return this combination's answer to ``option`` (cookiecutter's default if not given)."""
        return self.answers.get(option, DEFAULTS[option])

    def selected(self, option: str) -> bool:
        """Say whether ``option`` ("use_x", or "option=value" of a choice) holds here.

        cookiecutter's defaults apply to options not given.
        """
        name, _, value = option.partition("=")
        return self.value(name) == (value or "yes")


def combination(answers: dict) -> Combination:
    """Return the combination of ``answers``, named by combination_id."""
    return Combination(combination_id(answers), answers)


def alone(option: str) -> Combination:
    """Return the combination that selects ``option`` and no other yes/no option."""
    return combination({other: "yes" if other == option else "no" for other in YES_NO})


RULES = rules_table()


def allowed(row: dict, rules=RULES) -> bool:
    """Say whether the pre-gen hook accepts ``row`` (options it does not name at their defaults)."""
    full = {**DEFAULTS, **row}
    return not any(
        full[option] == value and any(full[name] != want for name, want in needs.items())
        for option, value, needs in rules
    )


def pairs(row: dict) -> set:
    """Return the pairs of (option, value) that one row of answers holds, in any key order."""
    return set(itertools.combinations(sorted(row.items()), 2))


def all_pairs(choices: dict[str, list[str]], seeds: list[dict]) -> list[dict]:
    """Return rows after ``seeds`` that, with them, hold every pair of values of two options.

    Only rows the hook accepts count, so a pair its rules refuse is never asked for. Greedy: each
    step adds the accepted row holding most pairs not yet held (the first such row, so the result
    is the same on every run).
    """
    rows = (
        dict(zip(choices, values, strict=True)) for values in itertools.product(*choices.values())
    )
    product = [row for row in rows if allowed(row)]
    missing = set().union(*map(pairs, product)) - set().union(set(), *map(pairs, seeds))
    rows = []
    while missing:  # each step holds at least one missing pair: at most len(missing) steps
        best = max(product, key=lambda row: len(pairs(row) & missing))
        rows.append(best)
        missing -= pairs(best)
    return rows


DEFAULTS_COMBO = Combination("defaults", {})  # what pressing Enter gives
ALL_ON = combination({option: "yes" for option in YES_NO})
ALL_OFF = combination({option: "no" for option in YES_NO})
# All-on with the other app server: the bakes held to budgets and docs checks besides tier 1's.
ALL_ON_GRANIAN = combination({**ALL_ON.answers, "app_server": "granian"})
# With ALL_ON, every other value of each option that is neither yes/no nor the image's Python:
# together their dependencies are every option's (an app server's replaces the other's).
UNION = [ALL_ON] + [
    combination({**ALL_ON.answers, option: value})
    for option, values in CHOICES.items()
    if option not in YES_NO and option != "python_version"
    for value in values[1:]
]


def tier1() -> list[Combination]:
    """Return the defaults, all-on, all-off, then the rows that complete an all-pairs cover."""
    fixed = [DEFAULTS_COMBO, ALL_ON, ALL_OFF]
    seeds = [{**DEFAULTS, **combo.answers} for combo in fixed]
    return fixed + [combination(row) for row in all_pairs(CHOICES, seeds)]


def served(crossed=CROSSED, paired=PAIRED, choices=CHOICES) -> list[Combination]:
    """Return every cross of ``crossed`` (yes first), with ``paired`` options added pairwise.

    The paired options ride on the cross. Two rows keep them at their defaults: the defaults bake,
    and the row selecting no crossed service. Each other row takes the accepted values that hold
    most pairs not yet held (the first such, so every run agrees); when those choices would leave
    a pair for a row of its own, a bounded search backtracks over the cross's rows, in the same
    order, for choices that hold every pair. Rows are added after the cross only for pairs it
    cannot hold (or that the search did not find within its bound).
    """
    runtime = {option: choices[option] for option in (*crossed, *paired)}
    rows = (
        dict(zip(runtime, values, strict=True)) for values in itertools.product(*runtime.values())
    )
    product = [row for row in rows if allowed(row)]
    defaults = {option: DEFAULTS[option] for option in runtime}
    none = {**defaults, **dict.fromkeys(crossed, "no")}
    missing = set().union(*map(pairs, product)) - pairs(defaults) - pairs(none)
    slots = []  # for each cross of ``crossed``, the rows it may take
    for values in itertools.product(*(sorted(choices[option], reverse=True) for option in crossed)):
        fixed = dict(zip(crossed, values, strict=True))
        kept = [row for row in (defaults, none) if fixed.items() <= row.items()]
        slots.append(kept or [row for row in product if fixed.items() <= row.items()])
    cross = _cover(slots, missing, budget=[SEARCH_STEPS]) or _greedy(slots, missing)
    return [combination(row) for row in [*cross, *all_pairs(runtime, cross)]]


SEARCH_STEPS = 20_000  # rows tried at most by served()'s search before it settles for greedy


def _greedy(slots: list[list[dict]], missing: set) -> list[dict]:
    """Return, slot by slot, the row holding most pairs of ``missing`` not yet held (the first)."""
    chosen = []
    for rows in slots:
        chosen.append(max(rows, key=lambda row: len(pairs(row) & missing)))
        missing = missing - pairs(chosen[-1])
    return chosen


def _cover(slots: list[list[dict]], missing: set, budget: list[int]) -> list[dict] | None:
    """Return one row per slot holding every pair of ``missing``, or None (none, or out of budget).

    Depth first, each slot's rows tried by most pairs held, ties in product order: its first
    answer is the greedy one whenever that holds every pair. ``budget`` counts the rows tried.
    """
    if not slots:
        return [] if not missing else None
    if not missing <= set().union(*(pairs(row) for rows in slots for row in rows)):
        return None  # a pair no remaining slot can hold
    for row in sorted(slots[0], key=lambda row: -len(pairs(row) & missing)):
        budget[0] -= 1
        if budget[0] < 0:
            return None
        rest = _cover(slots[1:], missing - pairs(row), budget)
        if rest is not None:
            return [row, *rest]
    return None


# Tier 1's combinations, and the ones tiers 2 and 3 serve; ids name the same answers in both.
COMBINATIONS = tier1()
SERVED = served()
BY_ID = {combo.id: combo for combo in [*COMBINATIONS, *SERVED]}


def params(combos=None) -> list:
    """Return pytest params, one per combination, grouped so one xdist worker bakes each once."""
    return [
        pytest.param(combo, id=combo.id, marks=pytest.mark.xdist_group(combo.id))
        for combo in (combos if combos is not None else COMBINATIONS)
    ]


def answer_words(combo: Combination) -> str:
    """Return a combination's answers as key=value words, for cookiecutter's command line."""
    return " ".join(f"{option}={value}" for option, value in combo.answers.items())


if __name__ == "__main__":
    if sys.argv[1:] == ["all-on"]:
        print(answer_words(ALL_ON))
    elif sys.argv[1:] == ["union"]:
        print("\n".join(answer_words(combo) for combo in UNION))
    else:
        sys.exit("usage: python tests/combinations.py all-on|union")
