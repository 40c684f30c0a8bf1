"""The test matrix: derived from cookiecutter.json, all pairs in tier 1, the service cross after."""

import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import (
    ALL_OFF,
    ALL_ON,
    BY_ID,
    COMBINATIONS,
    DEFAULTS,
    PAIRED,
    SERVED,
    _cover,
    _greedy,
    all_pairs,
    allowed,
    load_choices,
    paired_options,
    pairs,
    served,
)
from hook_tables import rules_table

READABLE_ID = re.compile(r"[a-z0-9][a-z0-9.]*(-[a-z0-9.]+)*")


@pytest.fixture
def offered(template_dir) -> dict[str, list[str]]:
    """Return the options cookiecutter.json offers as choices, read here without the module."""
    context = json.loads((template_dir / "cookiecutter.json").read_text())
    return {k: v for k, v in context.items() if isinstance(v, list) and not k.startswith("_")}


def missing_pairs(rows: list[dict], choices: dict[str, list[str]]) -> list[tuple]:
    """Return each pair of values of two options that no row holds."""
    return [
        ((a, x), (b, y))
        for a, b in itertools.combinations(choices, 2)
        for x in choices[a]
        for y in choices[b]
        if not any(row[a] == x and row[b] == y for row in rows)
    ]


def refused_pairs(offered: dict[str, list[str]]) -> list[tuple]:
    """Return each pair of values the pre-gen hook's RULES refuse, read here from the hook."""
    return sorted(
        tuple(sorted([(option, value), (name, other)]))
        for option, value, needs in rules_table()
        for name, want in needs.items()
        for other in offered[name]
        if other != want
    )


def test_tier1_holds_every_pair_of_option_values_the_hook_accepts(offered):
    """It pairs each value of every option with each value of every other, but refused pairs."""
    defaults = {option: values[0] for option, values in offered.items()}
    rows = [{**defaults, **combo.answers} for combo in COMBINATIONS]
    refused = refused_pairs(offered)
    assert sorted(tuple(sorted(pair)) for pair in missing_pairs(rows, offered)) == refused
    assert (("use_celery", "yes"), ("use_redis", "no")) in refused


def test_every_combination_is_one_the_hook_accepts():
    """It bakes and serves no combination the pre-gen hook would refuse."""
    for combo in COMBINATIONS + SERVED:
        assert allowed({**DEFAULTS, **combo.answers}), combo.id
    assert not allowed({**DEFAULTS, "use_celery": "yes", "use_redis": "no"})


def test_tier1_bakes_the_three_fixed_combinations_and_fewer_than_the_product(offered):
    """It bakes the defaults, all-on and all-off, and far fewer than every combination."""
    ids = [combo.id for combo in COMBINATIONS]
    assert ids[:3] == ["defaults", ALL_ON.id, ALL_OFF.id]
    assert COMBINATIONS[0].answers == {}
    yes_no = [option for option, values in offered.items() if sorted(values) == ["no", "yes"]]
    assert ALL_ON.answers == dict.fromkeys(yes_no, "yes")
    assert ALL_OFF.answers == dict.fromkeys(yes_no, "no")
    assert len(COMBINATIONS) < math.prod(len(values) for values in offered.values()) / 4


def test_options_are_read_from_cookiecutter_json(template_dir, tmp_path):
    """It takes a new option from cookiecutter.json alone, and leaves out private keys."""
    context = json.loads((template_dir / "cookiecutter.json").read_text())
    context["use_worker"] = ["no", "yes"]
    path = tmp_path / "cookiecutter.json"
    path.write_text(json.dumps(context))
    choices = load_choices(path)
    assert choices["use_worker"] == ["no", "yes"]
    assert not [key for key in choices if key.startswith("_")]
    assert "project_name" not in choices  # free text, not a choice
    assert paired_options(choices) == (*PAIRED, "use_worker")  # tiers 2 and 3 serve it pairwise


def test_all_pairs_grows_slowly_with_the_number_of_options():
    """It covers every pair of ten yes/no options and a three-way choice in a dozen rows or so."""
    choices = {"python": ["a", "b", "c"]} | {f"use_{n}": ["yes", "no"] for n in range(10)}
    seeds = [dict.fromkeys(choices, "yes") | {"python": "a"}]
    rows = all_pairs(choices, seeds)
    assert missing_pairs(seeds + rows, choices) == []
    assert len(seeds + rows) <= 12  # the product is 3072
    assert all_pairs(choices, seeds) == rows  # the same rows on every run


def test_ids_are_readable_unique_and_name_the_same_answers_in_every_tier():
    """It names each combination once, in lower-case words, and one id means one set of answers."""
    for combos in (COMBINATIONS, SERVED):
        ids = [combo.id for combo in combos]
        assert len(set(ids)) == len(ids), ids
        assert all(READABLE_ID.fullmatch(combo_id) for combo_id in ids), ids
    for combo in COMBINATIONS + SERVED:
        other = BY_ID[combo.id]
        options = set(combo.answers) | set(other.answers)
        assert {o: combo.value(o) for o in options} == {o: other.value(o) for o in options}


def test_tiers_2_and_3_serve_the_cross_of_the_interacting_services(offered):
    """It serves every cross of PostgreSQL, Redis and nginx, and the other options ride on it.

    Every pair of values the hook accepts is held by the cross alone (no row is added after it);
    the defaults bake and the bake of no service are served as they are.
    """
    services = ("use_postgres", "use_redis", "use_nginx")
    crossed = {tuple(combo.value(option) for option in services) for combo in SERVED}
    assert crossed == set(itertools.product(("yes", "no"), repeat=3))
    assert len(SERVED) == 8
    assert SERVED[0].value("use_postgres") == SERVED[0].value("use_nginx") == "yes"
    assert "pg-redis" in BY_ID and SERVED[1] == BY_ID["pg-redis"] and SERVED[-1].id == "bare"
    assert all(SERVED[1].value(option) == DEFAULTS[option] for option in offered)
    runtime = {option: offered[option] for option in (*services, *PAIRED)}
    rows = [{option: combo.value(option) for option in runtime} for combo in SERVED]
    held = missing_pairs(rows, runtime)
    assert sorted(tuple(sorted(pair)) for pair in held) == [
        pair for pair in refused_pairs(offered) if all(o in runtime for o, _ in pair)
    ]


def test_a_paired_service_option_is_added_pairwise_to_the_cross():
    """It keeps the whole cross and adds rows until a paired option meets each crossed value."""
    crossed = ("use_postgres", "use_redis", "use_nginx")
    combos = served(crossed, ("use_kubernetes",))
    choices = {option: ["yes", "no"] for option in (*crossed, "use_kubernetes")}
    rows = [{option: combo.value(option) for option in choices} for combo in combos]
    assert missing_pairs(rows, choices) == []
    assert {tuple(row[o] for o in crossed) for row in rows} == set(
        itertools.product(("yes", "no"), repeat=3)
    )
    assert len(combos) < 16


def test_the_served_search_backtracks_where_greedy_choices_leave_a_pair():
    """It gives another row to a slot whose greedy row leaves a pair no later slot can hold, keeps
    the greedy rows when they hold every pair, and gives up past its budget (served() then adds
    rows after the cross, as before)."""
    zeros, ones = dict.fromkeys("abc", "0"), dict.fromkeys("abc", "1")
    mixed = {"a": "0", "b": "1", "c": "0"}
    missing = pairs(zeros) | pairs(ones)
    slots = [[ones, zeros], [ones, mixed]]
    assert missing - set().union(*map(pairs, _greedy(slots, missing)))  # greedy leaves pairs
    assert _cover(slots, missing, budget=[100]) == [zeros, ones]
    assert _cover(slots, missing, budget=[1]) is None
    easy = [[ones, zeros], [zeros, mixed]]
    assert _cover(easy, missing, budget=[100]) == _greedy(easy, missing) == [ones, zeros]


def combinations_script(template_dir, command: str) -> str:
    """Return what ``python tests/combinations.py <command>`` prints."""
    script = str(template_dir / "tests" / "combinations.py")
    run = subprocess.run(
        [sys.executable, script, command], capture_output=True, text=True, check=True, timeout=60
    )
    return run.stdout


def test_the_union_bakes_select_every_value_of_every_option_but_the_image_python(template_dir):
    """It prints all-on, then all-on with each other choice, one bake a line, for .ci/run."""
    output = combinations_script(template_dir, "union")
    rows = [dict(word.split("=") for word in line.split()) for line in output.splitlines()]
    assert rows[0] == ALL_ON.answers
    chosen = {(option, row.get(option, DEFAULTS[option])) for row in rows for option in DEFAULTS}
    offered = load_choices()
    expected = {
        (option, value)
        for option, values in offered.items()
        if option != "python_version"
        for value in (["yes"] if sorted(values) == ["no", "yes"] else values)
    }
    assert expected <= chosen
    assert ("app_server", "granian") in chosen


def test_the_all_on_answers_are_printed_for_the_ci_script(template_dir, offered):
    """It prints every yes/no option of cookiecutter.json as option=yes, for .ci/run's bake."""
    yes_no = [option for option, values in offered.items() if sorted(values) == ["no", "yes"]]
    printed = combinations_script(template_dir, "all-on").split()
    assert printed == [f"{option}=yes" for option in yes_no]


def test_the_testing_page_states_the_rule_with_todays_counts(template_dir, offered):
    """It finds in docs/testing.md the numbers of possible, tier-1 and served combinations."""
    page = (template_dir / "docs" / "testing.md").read_text()
    product = math.prod(len(values) for values in offered.values())
    tier1 = re.search(r"options \((\d+) possible combinations\) that is (\d+) bakes", page)
    assert tier1 and tier1.groups() == (str(product), str(len(COMBINATIONS))), tier1
    served_count = re.search(r"PostgreSQL x Redis x nginx \((\d+) combinations", page)
    assert served_count and served_count.group(1) == str(len(SERVED)), served_count


def collected(*args: str) -> tuple[int, list[str]]:
    """Collect test_generation.py's tests with ``args``; return pytest's status and the ids."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, [line for line in result.stdout.splitlines() if "::" in line]


def test_row_runs_one_combinations_tests_and_those_of_none():
    """--row keeps the named combinations' tests and the unparametrized ones; drops the others."""
    _, every = collected("tests/test_generation.py")
    status, kept = collected("tests/test_generation.py", "--row", "bare", "--row", "defaults")
    assert status == 0
    rows = {re.search(r"\[([^\]]+)\]", test).group(1) for test in kept if "[" in test}
    assert rows == {"bare", "defaults"}
    assert [test for test in every if "[" not in test] == [t for t in kept if "[" not in t]
    assert len(every) > len(kept) > 2


def test_row_refuses_an_id_no_test_has():
    """A misspelt row stops the run before any test, naming it, instead of running nothing."""
    status, _ = collected("tests/test_generation.py", "--row", "pg-redsi")
    assert status == pytest.ExitCode.USAGE_ERROR
