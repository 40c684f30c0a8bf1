"""Lock every option's dependencies at once with uv: one universal lock, trimmed for each bake.

    python tools/lock.py            lock the union, learn its forks, check the trims, write uv-lock/
    python tools/lock.py upgrade    move every pin in pyproject.toml to its newest compatible
                                    release first (asks PyPI), then lock as above
    python tools/lock.py cache DIR  fill a uv cache DIR with the universal lock's wheels for this
                                    machine's Python and the metadata `uv lock` reads, so the
                                    tests install and resolve offline (UV_CACHE_DIR=DIR)

Every combination of cookiecutter.json's choices the pre-gen hook accepts renders a pyproject.toml.
The union of their dependencies (and of their `dev` groups) makes one project, locked once by
`uv lock` (universal: every platform and Python the project supports). The post-gen hook keeps of
it the packages the bake's own pyproject.toml reaches. uv splits a resolution by Python version
where a package needs it (a fork); the lock does not say which package did, so this learns it,
package by package, into FORKS. Then it bakes CHECKED's selections with that lock and compares each
bake's uv.lock with what `uv lock` resolves for the bake's pyproject.toml from the same cache, and
writes nothing unless they are equal, file for file.
"""

import datetime
import functools
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

TEMPLATE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TEMPLATE / "tests"))
from combinations import (  # noqa: E402
    ALL_OFF,
    ALL_ON_GRANIAN,
    CHOICES,
    COMBINATIONS,
    COOKIECUTTER_JSON,
    DEFAULTS,
    RULES,
    YES_NO,
    allowed,
    alone,
    combination,
)

PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"
PYPROJECT = PROJECT / "pyproject.toml"
LOCKS = PROJECT / "uv-lock"
UNIVERSAL = LOCKS / "universal.lock"
FORKS = LOCKS / "forks.json"
# The project's name in the universal lock; the post-gen hook renames it after the slug.
LOCKED_NAME = "my-service"
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"


def on_its_own(option: str):
    """Return the combination selecting ``option`` and only what the pre-gen hook's rules need."""
    answers = dict(alone(option).answers)
    for field, value, needs in RULES:
        if answers.get(field, DEFAULTS[field]) == value:
            answers |= needs
    return combination(answers)


# The selections whose trimmed lock must equal uv's own: every tier-1 bake, each option on its own
# (the other app server too), and all-on with granian.
CHECKED = [
    *COMBINATIONS,
    *(on_its_own(option) for option in YES_NO),
    combination({**ALL_OFF.answers, "app_server": "granian"}),
    ALL_ON_GRANIAN,
]
# A pin the Dependabot test moves (tests/test_dependabot.py): the cache holds this release's
# metadata too, so the bake relocks offline after the change.
DEPENDABOT_PROBE = "ruff==0.17.5"


def selections() -> list[dict[str, str]]:
    """Return every full set of answers the pre-gen hook accepts."""
    rows = (
        dict(zip(CHOICES, values, strict=True)) for values in itertools.product(*CHOICES.values())
    )
    return [row for row in rows if allowed(row)]


def render(answers: dict[str, str], path: Path) -> str:
    """Render one template file for ``answers`` as cookiecutter does.

    cookiecutter.json derives values (the slug, the package name) from the project's name only,
    never from a choice: the defaults' derived values serve every selection.
    """
    return compiled(path).render(cookiecutter={**defaults(), **answers})


@functools.cache
def defaults() -> dict:
    """Return cookiecutter's answers when every prompt takes its default, derived values too."""
    context = generate_context(context_file=str(COOKIECUTTER_JSON))
    return dict(prompt_for_config(context, no_input=True))


@functools.cache
def compiled(path: Path):
    """Return the template file at ``path`` compiled in cookiecutter's environment."""
    environment = StrictEnvironment(context=generate_context(str(COOKIECUTTER_JSON)))
    environment.keep_trailing_newline = True
    return environment.from_string(path.read_text())


def requirement_name(requirement: str) -> str:
    """Return a requirement's project name, normalized as uv writes it."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement)[0]).lower()


@functools.cache
def universal_pyproject() -> str:
    """Return a pyproject.toml whose dependencies and dev group are every selection's, united.

    A package required in two ways (two pins, or extras) stops the run: one resolution holds one.
    """
    requires_python, wanted = set(), {"dependencies": {}, "dev": {}}
    seen: dict[str, str] = {}
    for answers in selections():
        project = tomllib.loads(render(answers, PYPROJECT))
        requires_python.add(project["project"]["requires-python"])
        lists = {"dependencies": project["project"]["dependencies"]}
        lists["dev"] = project["dependency-groups"]["dev"]
        for kind, requirements in lists.items():
            for requirement in requirements:
                name = requirement_name(requirement)
                if seen.setdefault(name, requirement) != requirement:
                    raise SystemExit(f"{name} is required as {seen[name]!r} and {requirement!r}")
                wanted[kind][name] = requirement
    (floor,) = requires_python
    return project_toml(
        LOCKED_NAME, floor, *(sorted(wanted[k].values()) for k in ("dependencies", "dev"))
    )


def project_toml(name: str, requires_python: str, dependencies: list[str], dev: list[str]) -> str:
    """Return a pyproject.toml of a project with these dependencies and `dev` group."""
    runtime, tools = ("".join(f"    {json.dumps(r)},\n" for r in rs) for rs in (dependencies, dev))
    return (
        f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = "{requires_python}"\n'
        f"dependencies = [\n{runtime}]\n\n[dependency-groups]\ndev = [\n{tools}]\n"
    )


def run_uv(*args: str, cwd: Path, offline: bool = False, cache: Path | None = None) -> str:
    """Run uv in ``cwd`` (offline: from the cache alone); return its output, stop on failure."""
    env = {k: v for k, v in os.environ.items() if k != "UV_OFFLINE"}
    env |= {"UV_OFFLINE": "1"} if offline else {}
    env |= {"UV_CACHE_DIR": str(cache)} if cache else {}
    result = subprocess.run([UV, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"uv {' '.join(args)} failed in {cwd}:\n{result.stderr}")
    return result.stdout


def exclude_newer(lock_text: str) -> str:
    """Return the second after the newest upload of any file in a lock: when it was resolved, or
    as good (uv picked nothing newer).

    Resolving again with `--exclude-newer` at that moment sees what that resolution saw, even
    from a cache filled later (a release since then would otherwise move a transitive pin).
    """
    times = re.findall(r'upload-time = "([^"]+)"', lock_text)
    newest = max(datetime.datetime.fromisoformat(t) for t in times)
    return (newest + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve(pyproject: str, moment: str, cache: Path | None = None) -> str:
    """Return the uv.lock that `uv lock` writes for ``pyproject`` offline, as of ``moment``.

    `--exclude-newer` adds an `[options]` table naming the moment; it is dropped here, the rest of
    the file being what plain `uv lock` wrote at that moment.
    """
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "pyproject.toml").write_text(pyproject)
        run_uv(
            "lock",
            "--quiet",
            "--exclude-newer",
            moment,
            cwd=Path(folder),
            offline=True,
            cache=cache,
        )
        text = Path(folder, "uv.lock").read_text()
    return re.sub(r'\n\[options\]\nexclude-newer = "[^"]*"\n', "", text)


def python_boundaries(markers: list[str]) -> set[str]:
    """Return the Python versions at which ``markers`` (uv's fork markers) split the range."""
    found = set()
    for _, version, star in re.findall(
        r"python_full_version (>=|<|==) '([\d.]+)(\.\*)?'", " ".join(markers)
    ):
        found.add(version)
        if star:
            major, minor = version.split(".")
            found.add(f"{major}.{int(minor) + 1}")
    return found


def learn_forks(lock_text: str, moment: str, cache: Path | None = None) -> dict[str, list[str]]:
    """Return, for each package whose lock alone splits by Python, the versions it splits at.

    A package's lock alone holds its dependencies too, so the splits they bring count for it: the
    hook keeps a split whenever one package it keeps names it.
    """
    locked = tomllib.loads(lock_text)
    floor = locked["requires-python"]
    pins = sorted(
        {(p["name"], p["version"]) for p in locked["package"] if p["name"] != LOCKED_NAME}
    )

    def splits(pin: tuple[str, str]) -> tuple[str, list[str]]:
        pyproject = project_toml("fork-probe", floor, [f"{pin[0]}=={pin[1]}"], [])
        try:
            alone = tomllib.loads(resolve(pyproject, moment, cache))
        except RuntimeError:  # a release for part of the range only: its dependents split for it
            return pin[0], []
        return pin[0], sorted(python_boundaries(alone.get("resolution-markers", [])))

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(splits, pins))
    forks: dict[str, list[str]] = {}
    for name, versions in found:
        if versions:
            forks[name] = sorted(set(forks.get(name, [])) | set(versions))
    return forks


def packages_of(lock_text: str) -> dict[str, str]:
    """Return each package entry of a lock as text, keyed by name and version, and its header."""
    head, *blocks = lock_text.split("\n[[package]]\n")
    entries = {"(header)": head}
    for block in blocks:
        package = tomllib.loads(block)
        entries[f"{package['name']} {package.get('version', '')}".strip()] = block
    return entries


def differences(trimmed: str, resolved: str) -> list[str]:
    """Return what tells a trimmed lock from uv's own, package by package (empty: the same)."""
    ours, theirs = packages_of(trimmed), packages_of(resolved)
    found = [f"{key}: only in uv's" for key in theirs.keys() - ours.keys()]
    found += [f"{key}: only in the trimmed lock" for key in ours.keys() - theirs.keys()]
    found += [f"{key}: differs" for key in ours.keys() & theirs.keys() if ours[key] != theirs[key]]
    if not found and trimmed != resolved:
        found.append("the files differ outside their package entries")
    return sorted(found)


def bake(answers: dict[str, str], home: str, template: Path = TEMPLATE) -> Path:
    """Bake ``answers`` (default project name) from ``template`` into ``home``: the project."""
    words = [f"{key}={value}" for key, value in answers.items()]
    subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", home, str(template), *words],
        env={**os.environ, "HOME": home},
        check=True,
        capture_output=True,
    )
    (project,) = [p for p in Path(home).iterdir() if (p / "Makefile").is_file()]
    return project


def check_trims(template: Path, cache: Path | None = None, checked=CHECKED) -> dict[str, list[str]]:
    """Bake CHECKED's selections from ``template``: by id, how each lock differs from uv's."""
    moment = exclude_newer((template / UNIVERSAL.relative_to(TEMPLATE)).read_text())

    def check(combo) -> tuple[str, list[str]]:
        with tempfile.TemporaryDirectory() as home:
            project = bake(combo.answers, home, template)
            resolved = resolve((project / "pyproject.toml").read_text(), moment, cache)
            return combo.id, differences((project / "uv.lock").read_text(), resolved)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return {name: found for name, found in pool.map(check, checked) if found}


def upgrade_pins() -> None:
    """Set every `==` pin in the template's pyproject.toml to what uv resolves unpinned today."""
    loose = re.sub(r'"([A-Za-z0-9._-]+(?:\[[^\]]*\])?)==[^";]+', r'"\1', universal_pyproject())
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "pyproject.toml").write_text(loose)
        run_uv("lock", "--quiet", cwd=Path(folder))
        locked = tomllib.loads(Path(folder, "uv.lock").read_text())
    newest = {p["name"]: p["version"] for p in locked["package"]}
    text = PYPROJECT.read_text()
    pin = re.compile(r'"([A-Za-z0-9._-]+)((?:\[[^\]]*\])?)==([^";]+)')
    text = pin.sub(lambda m: f'"{m[1]}{m[2]}=={newest.get(requirement_name(m[1]), m[3])}', text)
    PYPROJECT.write_text(text)


def relock() -> None:
    """Lock the union, learn its forks, and write them if every checked trim is uv's own."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "pyproject.toml").write_text(universal_pyproject())
        run_uv("lock", "--quiet", cwd=Path(folder))
        lock_text = Path(folder, "uv.lock").read_text()
    checked_write(lock_text, learn_forks(lock_text, exclude_newer(lock_text)))
    size = UNIVERSAL.stat().st_size
    print(
        f"wrote {UNIVERSAL.relative_to(TEMPLATE)} ({size} bytes); {len(CHECKED)} trims equal uv's",
        file=sys.stderr,
    )


def checked_write(lock_text: str, forks: dict, cache: Path | None = None, checked=CHECKED) -> None:
    """Write the universal lock and its forks into the template, or refuse: nothing written.

    A copy of the template holding them bakes CHECKED's selections first; one trimmed lock that
    differs from what `uv lock` resolves from ``cache`` refuses them all.
    """
    with tempfile.TemporaryDirectory() as copy:
        candidate = Path(copy, "template")
        ignore = shutil.ignore_patterns(".git", ".venv", ".uvcache", ".npmcache", "node_modules")
        shutil.copytree(TEMPLATE, candidate, ignore=ignore)
        write(candidate / LOCKS.relative_to(TEMPLATE), lock_text, forks)
        wrong = check_trims(candidate, cache, checked)
    if wrong:
        raise SystemExit(f"refused: a trimmed lock is not uv's own, nothing written: {wrong}")
    write(LOCKS, lock_text, forks)


def write(folder: Path, lock_text: str, forks: dict[str, list[str]]) -> None:
    """Write the universal lock and its forks into ``folder`` (the template's uv-lock/)."""
    folder.mkdir(exist_ok=True)
    (folder / UNIVERSAL.name).write_text(lock_text)
    (folder / FORKS.name).write_text(json.dumps(forks, indent=2, sort_keys=True) + "\n")


def cache(dest: Path) -> None:
    """Fill the uv cache ``dest`` for offline tests: every wheel the universal lock names for this
    Python (`uv sync`), and the index pages and metadata `uv lock` reads (the universal project
    and DEPENDABOT_PROBE resolved as of the lock's moment)."""
    dest.mkdir(parents=True, exist_ok=True)
    lock_text = UNIVERSAL.read_text()
    moment = exclude_newer(lock_text)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "pyproject.toml").write_text(universal_pyproject())
        Path(folder, "uv.lock").write_text(lock_text)
        run_uv(
            "sync", "--locked", "--quiet", "--python", sys.executable, cwd=Path(folder), cache=dest
        )
    for pyproject in (universal_pyproject(), probe_pyproject()):
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "pyproject.toml").write_text(pyproject)
            run_uv("lock", "--quiet", "--exclude-newer", moment, cwd=Path(folder), cache=dest)


def probe_pyproject() -> str:
    """Return the universal pyproject.toml with DEPENDABOT_PROBE's pin in place of its own."""
    name = requirement_name(DEPENDABOT_PROBE)
    return re.sub(rf'"{name}==[^"]+"', f'"{DEPENDABOT_PROBE}"', universal_pyproject())


if __name__ == "__main__":
    if sys.argv[1:2] == ["cache"] and len(sys.argv) == 3:
        cache(Path(sys.argv[2]).resolve())
    elif sys.argv[1:] == ["upgrade"]:
        upgrade_pins()
        relock()
    elif sys.argv[1:]:
        raise SystemExit(__doc__)
    else:
        relock()
