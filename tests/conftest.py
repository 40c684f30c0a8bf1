"""Shared fixtures: bake each combination once per test run (per xdist worker group)."""

import os
import resource
import sys
from collections import defaultdict
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TEMPLATE / "tests"))

from combinations import Combination  # noqa: E402


def pytest_addoption(parser) -> None:
    """Add --row: run one combination's tests (docs/testing.md), named as in combinations.py."""
    parser.addoption(
        "--row",
        action="append",
        default=[],
        metavar="ID",
        help="run only the tests of this combination (repeatable) and those of none, e.g. pg-redis",
    )


def pytest_configure(config) -> None:
    """Keep the order longest_first gives the groups: xdist would reorder them by their number
    of tests (its --no-loadscope-reorder, set here so that a run without xdist still parses)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items: list[pytest.Item]) -> None:
    """Deselect the tests of the combinations --row did not name; put the longest work first."""
    select_rows(config, items)
    longest_first(items)


def group_of(item: pytest.Item) -> str:
    """Return the item's xdist group: what one worker runs together (a test of none is alone)."""
    marker = item.get_closest_marker("xdist_group")
    return str(marker.args[0]) if marker is not None and marker.args else item.nodeid


def longest_first(items: list[pytest.Item]) -> None:
    """Order the groups so that the longest start first and the short ones fill the end.

    xdist hands each worker the next group in collection order (pytest_configure turns off its
    own reordering by count). Tier 3's one group (a Docker engine, every image and
    stack) is the longest by far, then tier 2's served combinations, then tier 1's bakes: a
    long group started last would leave the other workers idle while it runs. Within a tier,
    groups with more tests first, but tier 2's combinations end in the order of their ids:
    tests/tier2/conftest.py sorts them after this, in the places this gave them (an order by size
    tried instead, with tier 1's bakes among them, took no less: docs/testing.md). The items of a
    group keep their order.
    """
    rank = {"tier 3": 0, "tier 2": 1, "tier 1": 2}
    size: defaultdict[str, int] = defaultdict(int)
    heaviest: dict[str, int] = {}
    for item in items:
        group = group_of(item)
        size[group] += 1
        heaviest[group] = min(heaviest.get(group, 2), rank[tier(item.nodeid)])
    items.sort(key=lambda item: (heaviest[group_of(item)], -size[group_of(item)]))


def select_rows(config, items: list[pytest.Item]) -> None:
    """Deselect the tests of the combinations --row did not name; refuse an id no test has."""
    rows = set(config.getoption("row"))
    if not rows:
        return
    combos = {
        item: item.callspec.params.get("combo") for item in items if hasattr(item, "callspec")
    }
    known = {combo.id for combo in combos.values() if isinstance(combo, Combination)}
    if rows - known:
        raise pytest.UsageError(f"--row: no collected test has {sorted(rows - known)}")
    dropped = [
        item
        for item, combo in combos.items()
        if isinstance(combo, Combination) and combo.id not in rows
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]


@pytest.fixture(scope="session")
def template_dir() -> Path:
    """Return the template's root folder."""
    return TEMPLATE


@pytest.fixture(scope="session")
def bake(cookies_session):
    """Return a function that bakes a combination once and returns the project folder."""
    baked: dict[str, Path] = {}

    def _bake(combo: Combination) -> Path:
        if combo.id not in baked:
            result = cookies_session.bake(extra_context=combo.answers, template=str(TEMPLATE))
            assert result.exit_code == 0, result.exception
            assert result.exception is None
            baked[combo.id] = result.project_path
        return baked[combo.id]

    return _bake


@pytest.fixture(scope="session")
def mypy_caches(tmp_path_factory) -> Path:
    """Return the folder of the mypy caches the bakes of this xdist worker share
    (projects.mypy_cache)."""
    return tmp_path_factory.mktemp("mypy-caches")


@pytest.fixture(scope="session")
def clean_env() -> dict:
    """Return an environment for running generated projects: no settings inherited."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {name: os.environ[name] for name in keep if name in os.environ}


# Lines tests record with record_property(REPORT_PROPERTY, line) are printed after the run (the
# tier-3 build times and image sizes). These hooks live here, not in tests/tier3/conftest.py,
# because the xdist controller loads only this conftest.
REPORT_PROPERTY = "tier3_report"
_report_lines: list[str] = []
# Lines tests record with record_property(SIZE_PROPERTY, line): each bake's and each option's
# lines of Python (tests/test_lean.py), printed after the run, sorted.
SIZE_PROPERTY = "size_report"
_size_lines: list[str] = []
# Files a test keeps for people to look at (the browser's screenshots), listed after the run.
ARTEFACT_PROPERTY = "artefact"
_artefacts: list[str] = []
# Where the run's time goes: seconds of setup, call and teardown, per test file and per xdist
# worker (a session fixture's setup counts in the file of the first test that asked for it).
_seconds_per_file: defaultdict[str, float] = defaultdict(float)
_seconds_per_worker: defaultdict[str, float] = defaultdict(float)
_seconds_per_test: defaultdict[str, float] = defaultdict(float)  # all its parameters together
# And the CPU it costs: seconds of the worker's process and of the children it waited for (the
# servers, bakes' suites, builds; not the containers the Docker engine runs), per file and test.
CPU_PROPERTY = "cpu_seconds"
_cpu_per_file: defaultdict[str, float] = defaultdict(float)
_cpu_per_test: defaultdict[str, float] = defaultdict(float)
_cpu_at_start: dict[str, float] = {}
SLOWEST_FILES = 30
# How the workers ran the groups (xdist_group; a test of none counts in its file's line): per
# group and worker, the first start and last stop (epoch seconds), seconds and CPU summed.
_groups: dict[tuple[str, str], dict] = {}
LONG_GROUP = 60.0  # seconds: a group listed on its own in the timeline; shorter ones summed


def cpu_seconds() -> float:
    """Return the CPU seconds this process and its waited-for children have used so far."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Note the CPU used before the test's setup (each phase's is reported by makereport)."""
    _cpu_at_start[item.nodeid] = cpu_seconds()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item) -> None:
    """Note the CPU used before the test's call."""
    _cpu_at_start[item.nodeid] = cpu_seconds()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item) -> None:
    """Note the CPU used before the test's teardown."""
    _cpu_at_start[item.nodeid] = cpu_seconds()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Record the CPU the phase used in its report (reports travel from xdist's workers)."""
    report = yield
    start = _cpu_at_start.pop(item.nodeid, None)
    if start is not None:
        report.user_properties.append((CPU_PROPERTY, cpu_seconds() - start))
    return report


def tier(path: str) -> str:
    """Return the tier a test file belongs to: tests/tier2/ and tests/tier3/ hold theirs."""
    folder = path.split("/")[1] if path.count("/") > 1 else ""
    return {"tier2": "tier 2", "tier3": "tier 3"}.get(folder, "tier 1")


def pytest_runtest_logreport(report) -> None:
    """Collect the report lines the tests recorded, and the time each phase took."""
    _seconds_per_file[report.nodeid.split("::", 1)[0]] += report.duration
    _seconds_per_test[report.nodeid.split("[", 1)[0].split("@", 1)[0]] += report.duration
    node = getattr(report, "node", None)  # the xdist worker that ran it, on the controller
    _seconds_per_worker[node.gateway.id if node is not None else "main"] += report.duration
    cpu = sum(value for name, value in report.user_properties if name == CPU_PROPERTY)
    _cpu_per_file[report.nodeid.split("::", 1)[0]] += cpu
    _cpu_per_test[report.nodeid.split("[", 1)[0].split("@", 1)[0]] += cpu
    name = report.nodeid.split("@", 1)[1] if "@" in report.nodeid else report.nodeid.split("::")[0]
    worker = node.gateway.id if node is not None else "main"
    span = _groups.setdefault(
        (name, worker), {"start": report.start, "stop": report.stop, "seconds": 0.0, "cpu": 0.0}
    )
    span["start"], span["stop"] = min(span["start"], report.start), max(span["stop"], report.stop)
    span["seconds"] += report.duration
    span["cpu"] += cpu
    if report.when == "call":
        _report_lines.extend(
            value for name, value in report.user_properties if name == REPORT_PROPERTY
        )
        _size_lines.extend(value for name, value in report.user_properties if name == SIZE_PROPERTY)
        _artefacts.extend(
            f"{report.nodeid}: {value}"
            for name, value in report.user_properties
            if name == ARTEFACT_PROPERTY
        )


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the sizes of the bakes, the tier-3 report (build times, image sizes) after the run."""
    if _size_lines:
        terminalreporter.section("tier 1: lines of the service's own Python, per bake and option")
        for line in sorted(_size_lines):
            terminalreporter.write_line(line)
    if _report_lines:
        terminalreporter.section("tier 3: Docker builds and image sizes (stand-in base images)")
        for line in sorted(_report_lines):
            terminalreporter.write_line(line)
    if _artefacts:
        terminalreporter.section("test artefacts (screenshots of the browser tests)")
        for line in sorted(_artefacts):
            terminalreporter.write_line(line)
    if _seconds_per_file:
        summarise_time(terminalreporter)


def summarise_time(terminalreporter) -> None:
    """Print where the time went: per tier, per worker, the slowest test files and tests."""
    terminalreporter.section("where the time goes (setup, call and teardown, summed)")
    per_tier: defaultdict[str, float] = defaultdict(float)
    for path, seconds in _seconds_per_file.items():
        per_tier[tier(path)] += seconds
    cpu_per_tier: defaultdict[str, float] = defaultdict(float)
    for path, seconds in _cpu_per_file.items():
        cpu_per_tier[tier(path)] += seconds
    for name, seconds in sorted(per_tier.items()):
        cpu = cpu_per_tier[name] / 60
        terminalreporter.write_line(f"{name}: {seconds / 60:.1f} min, {cpu:.1f} CPU-minutes")
    for worker, seconds in sorted(_seconds_per_worker.items()):
        terminalreporter.write_line(f"worker {worker}: busy {seconds / 60:.1f} min")
    slowest = sorted(_seconds_per_file.items(), key=lambda item: -item[1])[:SLOWEST_FILES]
    for path, seconds in slowest:
        cpu = _cpu_per_file[path]
        terminalreporter.write_line(f"{seconds:8.1f} s  {cpu:8.1f} CPU-s  {path}")
    terminalreporter.write_line("the slowest tests, each with all its combinations:")
    slowest = sorted(_seconds_per_test.items(), key=lambda item: -item[1])[:SLOWEST_FILES]
    for test, seconds in slowest:
        terminalreporter.write_line(f"{seconds:8.1f} s  {_cpu_per_test[test]:8.1f} CPU-s  {test}")
    terminalreporter.write_line("the costliest tests in CPU, each with all its combinations:")
    costliest = sorted(_cpu_per_test.items(), key=lambda item: -item[1])[:SLOWEST_FILES]
    for test, cpu in costliest:
        terminalreporter.write_line(f"{_seconds_per_test[test]:8.1f} s  {cpu:8.1f} CPU-s  {test}")
    summarise_groups(terminalreporter)


def summarise_groups(terminalreporter) -> None:
    """Print how each worker ran its groups, in order: when each long one started and ended
    (minutes from the run's first test), its seconds and CPU; the short ones summed between."""
    if not _groups:
        return
    began = min(span["start"] for span in _groups.values())
    ended = max(span["stop"] for span in _groups.values())
    terminalreporter.write_line(
        "the groups as each worker ran them (minutes from the first test: start-end, then the"
        " group's seconds and CPU-seconds; shorter groups summed between):"
    )
    for worker in sorted({worker for _, worker in _groups}):
        terminalreporter.write_line(f"worker {worker}:")
        for line in worker_timeline(worker, began):
            terminalreporter.write_line(f"  {line}")
        last = max(span["stop"] for (_, ran), span in _groups.items() if ran == worker)
        terminalreporter.write_line(f"  done {(ended - last) / 60:.1f} min before the run's end")


def worker_timeline(worker: str, began: float) -> list[str]:
    """Return the lines of one worker's groups, in the order it ran them."""
    spans = sorted(
        ((name, span) for (name, ran), span in _groups.items() if ran == worker),
        key=lambda item: item[1]["start"],
    )
    lines, short = [], [0, 0.0, 0.0]  # groups, seconds, CPU-seconds since the last long group
    for name, span in [*spans, ("", None)]:
        if span is not None and span["seconds"] < LONG_GROUP:
            short = [short[0] + 1, short[1] + span["seconds"], short[2] + span["cpu"]]
            continue
        if short[0]:
            figures = f"{short[1]:6.0f} s {short[2]:6.0f} CPU-s"
            groups = "a short group" if short[0] == 1 else f"{short[0]} short groups"
            lines.append(f"{'':11}  {figures}  {groups}")
            short = [0, 0.0, 0.0]
        if span is not None:
            start, stop = (span["start"] - began) / 60, (span["stop"] - began) / 60
            figures = f"{span['seconds']:6.0f} s {span['cpu']:6.0f} CPU-s"
            lines.append(f"{start:5.1f}-{stop:5.1f}  {figures}  {name}")
    return lines
