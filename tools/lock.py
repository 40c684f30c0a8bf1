"""Re-lock the generated project's runtime requirements with hashes, for every selection.

    python tools/lock.py            rewrite {{cookiecutter.project_slug}}/requirements.lock
    python tools/lock.py wheels DIR download every locked wheel into DIR (for the offline tests)

Every combination of cookiecutter.json's choices the pre-gen hook accepts renders its own
requirements.txt; each distinct one is baked once and locked by the bake's own `make lock` (uv,
universal: one lock for every offered Python and platform, markers where they differ). The
template's lock holds every package block once, guarded by a Jinja condition derived from the
selections whose lock holds it, so a bake renders exactly its own `make lock` output (checked
before writing).
"""

import functools
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

TEMPLATE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TEMPLATE / "tests"))
from combinations import CHOICES, COOKIECUTTER_JSON, allowed  # noqa: E402

PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"
LOCK = PROJECT / "requirements.lock"
UV = Path(sys.executable).parent / "uv"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]


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


def image_python(answers: dict[str, str]) -> str:
    """Return the exact Python version of the base image ``answers`` select (from its tag)."""
    images = json.loads(COOKIECUTTER_JSON.read_text())["_python_images"]
    return images[answers["python_version"]].split(":")[1].split("-")[0]


def lock_key(answers: dict[str, str]) -> str:
    """Return what a selection's lock depends on: its requirements.txt (the lock is universal)."""
    return render(answers, PROJECT / "requirements.txt")


def bake_and_lock(answers: dict[str, str]) -> str:
    """Bake ``answers`` and return the lock its own `make lock` writes."""
    with tempfile.TemporaryDirectory() as home:
        words = [f"{key}={value}" for key, value in answers.items()]
        subprocess.run(
            [sys.executable, "-m", "cookiecutter", "--no-input", "-o", home, str(TEMPLATE), *words],
            env={**os.environ, "HOME": home},
            check=True,
            capture_output=True,
        )
        (project,) = [p for p in Path(home).iterdir() if (p / "Makefile").is_file()]
        subprocess.run(["make", "-s", "lock", f"UV={UV}"], cwd=project, check=True)
        return (project / "requirements.lock").read_text()


def split(lock: str) -> tuple[str, list[str]]:
    """Split a lock into its header and its package blocks (a pin and its hash lines)."""
    header, blocks = [], []
    for line in lock.splitlines():
        if line.startswith("#") and not blocks:
            header.append(line)
        elif line.startswith(" "):
            blocks[-1] += "\n" + line
        elif line:
            blocks.append(line)
    return "\n".join(header), blocks


def deciding(members: list[dict], inside: set[int], options: list[str]) -> list[str]:
    """Return the fewest options (greedily) whose values alone tell members inside from out."""
    kept = list(options)
    for option in options:
        trial = [o for o in kept if o != option]
        seen: dict[tuple, bool] = {}
        if all(
            seen.setdefault(tuple(m[o] for o in trial), i in inside) == (i in inside)
            for i, m in enumerate(members)
        ):
            kept = trial
    return kept


def condition(members: list[dict], inside: set[int]) -> str:
    """Return a Jinja test true for exactly the members whose indexes are ``inside``."""
    if len(inside) == len(members):
        return ""
    options = deciding(members, inside, list(CHOICES))
    wanted = sorted({tuple(members[i][o] for o in options) for i in inside})
    values = [sorted({row[n] for row in wanted}) for n in range(len(options))]
    if len(wanted) == len(list(itertools.product(*values))):
        return " and ".join(test(o, v) for o, v in zip(options, values, strict=True))
    return " or ".join(cover(members, inside, options))


def cover(members: list[dict], inside: set[int], options: list[str]) -> list[str]:
    """Return tests whose union is the members ``inside``: single answers first, then whole rows."""
    terms, left = [], set(inside)
    for option in options:
        for value in CHOICES[option]:
            holders = {i for i, m in enumerate(members) if m[option] == value}
            if holders <= inside and holders & left:
                terms.append(test(option, [value]))
                left -= holders
    rows = sorted({tuple(members[i][o] for o in options) for i in left})
    terms += ["(" + " and ".join(map(test, options, [[v] for v in row])) + ")" for row in rows]
    return terms


def test(option: str, values: list[str]) -> str:
    """Return the Jinja test that ``option`` is one of ``values``."""
    if len(values) == 1:
        return f'cookiecutter.{option} == "{values[0]}"'
    return f"cookiecutter.{option} in {values}".replace("'", '"')


def template(members: list[dict], locks: list[str]) -> str:
    """Return the template lock: each block once, guarded by the selections that hold it."""
    headers, block_lists = zip(*map(split, locks), strict=True)
    if len(set(headers)) != 1:
        raise SystemExit(f"locks differ in their headers: {sorted(set(headers))}")
    holders: dict[str, set[int]] = {}
    for index, blocks in enumerate(block_lists):
        for block in blocks:
            holders.setdefault(block, set()).add(index)
    ordered = sorted(holders, key=lambda block: (sort_name(block), block))
    lines = [
        "{# Written by tools/lock.py (python tools/lock.py re-locks every selection). -#}",
        headers[0],
    ]
    guard = ""
    for block in ordered:
        wanted = condition(members, holders[block])
        if wanted != guard:
            lines += ["{%- endif %}"] if guard else []
            lines += [f"{{%- if {wanted} %}}"] if wanted else []
            guard = wanted
        lines.append(block)
    lines += ["{%- endif %}"] if guard else []
    return "\n".join(lines) + "\n"


def sort_name(block: str) -> str:
    """Return the normalized project name of a block, the order uv writes blocks in."""
    return re.sub(r"[-_.]+", "-", block.split("==")[0]).lower()


def relock() -> None:
    """Lock each distinct selection, write the template lock, check each bake renders its own."""
    members = selections()
    keys = [lock_key(answers) for answers in members]
    first = {key: answers for answers, key in reversed(list(zip(members, keys, strict=True)))}
    print(f"{len(members)} selections, {len(first)} distinct locks", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=6) as pool:
        by_key = dict(zip(first, pool.map(bake_and_lock, first.values()), strict=True))
    locks = [by_key[key] for key in keys]
    text = template(members, locks)
    LOCK.write_text(text)
    for answers, lock in zip(members, locks, strict=True):
        if render(answers, LOCK) != lock:
            raise SystemExit(f"the template lock does not render {answers}'s own lock")
    print(f"wrote {LOCK.relative_to(TEMPLATE)}", file=sys.stderr)


def wheels(dest: Path) -> None:
    """Download every wheel each offered Python needs from the template lock into ``dest``."""
    for version in CHOICES["python_version"]:
        blocks = {b for a in selections() if a["python_version"] == version for b in locked(a)}
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as union:
            union.write("\n".join(sorted(blocks)) + "\n")
            union.flush()
            platforms = [arg for name in PLATFORMS for arg in ("--platform", name)]
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--require-hashes", "--only-binary=:all:", "--python-version", version,
                 *platforms, "--dest", str(dest), "--requirement", union.name],
                check=True,
            )  # fmt: skip


def locked(answers: dict[str, str]) -> list[str]:
    """Return the package blocks the template lock renders for ``answers``."""
    return split(render(answers, LOCK))[1]


if __name__ == "__main__":
    if sys.argv[1:2] == ["wheels"] and len(sys.argv) == 3:
        wheels(Path(sys.argv[2]))
    elif sys.argv[1:]:
        raise SystemExit(__doc__)
    else:
        relock()
