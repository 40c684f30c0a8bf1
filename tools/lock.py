"""Lock the generated project's dependencies with uv, once for each set of dependencies.

    python tools/lock.py            rewrite {{cookiecutter.project_slug}}/uv-locks/*.lock
    python tools/lock.py cache DIR  fill a uv cache DIR with every lock's wheels for this machine's
                                    Python, so the tests install bakes offline (UV_CACHE_DIR=DIR)

Every combination of cookiecutter.json's choices the pre-gen hook accepts renders a pyproject.toml;
the options in cookiecutter.json's `_lock_options` decide its dependencies, and so the name of its
lock (hooks/post_gen_project.py keeps that one as the bake's uv.lock). Each distinct set is baked
once and locked by `uv lock` (universal: every platform and Python the project
supports, markers where they differ). A selection whose dependencies differ from another's of the
same lock name stops the run: an option that changes dependencies belongs in `_lock_options`.
"""

import functools
import itertools
import json
import os
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
from combinations import CHOICES, COOKIECUTTER_JSON, allowed  # noqa: E402

PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"
LOCKS = PROJECT / "uv-locks"
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"


def selections() -> list[dict[str, str]]:
    """Return every full set of answers the pre-gen hook accepts."""
    rows = (
        dict(zip(CHOICES, values, strict=True)) for values in itertools.product(*CHOICES.values())
    )
    return [row for row in rows if allowed(row)]


def render(answers: dict[str, str], path: Path) -> str:
    """Render one template file for ``answers`` as cookiecutter does."""
    return compiled(path).render(cookiecutter=dict(config(tuple(sorted(answers.items())))))


@functools.cache
def config(answers: tuple[tuple[str, str], ...]) -> tuple:
    """Return cookiecutter's answers (derived values included) for the given ones."""
    context = generate_context(context_file=str(COOKIECUTTER_JSON), extra_context=dict(answers))
    return tuple(prompt_for_config(context, no_input=True).items())


@functools.cache
def compiled(path: Path):
    """Return the template file at ``path`` compiled in cookiecutter's environment."""
    environment = StrictEnvironment(context=generate_context(str(COOKIECUTTER_JSON)))
    environment.keep_trailing_newline = True
    return environment.from_string(path.read_text())


def dependencies(answers: dict[str, str]) -> str:
    """Return what a selection's lock depends on: its pyproject.toml's dependencies and groups."""
    project = tomllib.loads(render(answers, PROJECT / "pyproject.toml"))
    wanted = project["project"]["dependencies"], project["dependency-groups"]
    return json.dumps([project["project"]["requires-python"], *wanted])


def lock_name(answers: dict[str, str]) -> str:
    """Return the lock's file name for ``answers``, as the post-gen hook chooses it."""
    options = json.loads(COOKIECUTTER_JSON.read_text())["_lock_options"]
    parts = [o.removeprefix("use_") if answers[o] == "yes" else answers[o] for o in options]
    return "-".join(part for part in parts if part != "no") + ".lock"


def bake(answers: dict[str, str], home: str) -> Path:
    """Bake ``answers`` (default project name) into ``home`` and return the project folder."""
    words = [f"{key}={value}" for key, value in answers.items()]
    subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", home, str(TEMPLATE), *words],
        env={**os.environ, "HOME": home},
        check=True,
        capture_output=True,
    )
    (project,) = [p for p in Path(home).iterdir() if (p / "Makefile").is_file()]
    return project


def distinct() -> dict[str, dict[str, str]]:
    """Return one selection for each lock name, checking that its selections share dependencies."""
    seen: dict[str, tuple[str, dict[str, str]]] = {}
    for answers in selections():
        name, wanted = lock_name(answers), dependencies(answers)
        first = seen.setdefault(name, (wanted, answers))
        if first[0] != wanted:
            raise SystemExit(
                f"{first[1]} and {answers} share {name} but not their dependencies: add the option"
                " that tells them apart to _lock_options in cookiecutter.json"
            )
    return {name: answers for name, (_, answers) in seen.items()}


def relock_one(item: tuple[str, dict[str, str]]) -> None:
    """Lock one selection's pyproject.toml with uv; keep the lock as the template's ``name``."""
    name, answers = item
    with tempfile.TemporaryDirectory() as project:
        Path(project, "pyproject.toml").write_text(render(answers, PROJECT / "pyproject.toml"))
        subprocess.run([UV, "lock", "--quiet"], cwd=project, check=True)
        shutil.copyfile(Path(project, "uv.lock"), LOCKS / name)


def relock() -> None:
    """Lock each distinct set of dependencies; drop the locks no selection names any more."""
    wanted = distinct()
    print(f"{len(selections())} selections, {len(wanted)} distinct locks", file=sys.stderr)
    LOCKS.mkdir(exist_ok=True)
    for stale in set(p.name for p in LOCKS.iterdir()) - set(wanted):
        (LOCKS / stale).unlink()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(relock_one, sorted(wanted.items())))
    print(f"wrote {len(wanted)} locks in {LOCKS.relative_to(TEMPLATE)}", file=sys.stderr)


def cache_one(cache: Path, answers: dict[str, str]) -> None:
    """Install one selection's lock (development group included) once, filling ``cache``."""
    with tempfile.TemporaryDirectory() as home:
        project = bake(answers, home)
        subprocess.run(
            [UV, "sync", "--locked", "--quiet", "--python", sys.executable],
            cwd=project,
            env={**os.environ, "UV_CACHE_DIR": str(cache)},
            check=True,
        )


def packages(name: str) -> set[tuple[str, str]]:
    """Return the (name, version) of every package the lock ``name`` holds."""
    lock = tomllib.loads((LOCKS / name).read_text())
    return {(package["name"], package.get("version", "")) for package in lock["package"]}


def cache(dest: Path) -> None:
    """Fill the uv cache ``dest`` with every lock's wheels for the Python running this.

    The largest locks go first; a lock whose every package an installed one held is skipped.
    """
    dest.mkdir(parents=True, exist_ok=True)
    held: set[tuple[str, str]] = set()
    for name, answers in sorted(distinct().items(), key=lambda item: -len(packages(item[0]))):
        if not packages(name) <= held:
            cache_one(dest, answers)
            held |= packages(name)


if __name__ == "__main__":
    if sys.argv[1:2] == ["cache"] and len(sys.argv) == 3:
        cache(Path(sys.argv[2]).resolve())
    elif sys.argv[1:]:
        raise SystemExit(__doc__)
    else:
        relock()
