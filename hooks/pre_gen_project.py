"""Validate the answers before anything is written; a bad answer names the field and exits 1.

cookiecutter.json refuses most bad answers as soon as they are given (its private "__..._is_valid"
variables); this hook checks every answer again, as the last word, and refuses what only Python
knows (a keyword, a standard library module) and the answers that need others (RULES).
"""

import json
import keyword
import os
import re
import shlex
import sys
from pathlib import Path
from typing import NamedTuple

# Every answer, as one object (keys starting with "_" are cookiecutter's or the template's own).
CONTEXT = json.loads({{ cookiecutter | tojson | tojson }})
ANSWERS = {key: value for key, value in CONTEXT.items() if not key.startswith("_")}
PYTHON_VERSIONS = list(CONTEXT["_python_images"])

SLUG = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
RESERVED_PACKAGES = set(sys.stdlib_module_names) | {"flask", "gunicorn", "tests", "migrations"}
YES_NO_PREFIX = "use_"  # every option named use_<thing> is answered yes or no
# Where cookiecutter saves the answers before this hook runs (its default replay_dir), in a file
# named after the template's folder; `cookiecutter --replay TEMPLATE` generates from them.
REPLAY_DIR = Path("~/.cookiecutter_replay")


class Rule(NamedTuple):
    """An answer that needs other answers beside it, and why."""

    field: str
    value: str
    needs: dict[str, str]
    why: str


# Rules that involve several options, one row each.
RULES: list[Rule] = [
    Rule("use_celery", "yes", {"use_redis": "yes"}, "Celery's broker is Redis"),
    Rule("use_https", "yes", {"use_nginx": "yes"}, "Caddy hands every request to nginx"),
]


def check_project_name(value: str) -> str | None:
    """Return why the project name is invalid, or None."""
    if not any(char.isalnum() for char in value) or len(value) > 80 or not value.isprintable():
        return (
            "1 to 80 printable characters, a letter or digit among them"
            " (the slug and package name are made of them)"
        )
    return None


def check_slug(value: str) -> str | None:
    """Return why the slug is invalid, or None."""
    if len(value) > 50 or not SLUG.fullmatch(value):
        return (
            "lower-case letters, digits and single hyphens, starting with a letter (at most 50;"
            " it names the folder, the image and the Kubernetes objects)"
        )
    return None


def check_package(value: str) -> str | None:
    """Return why the package name is invalid, or None."""
    if not value.isidentifier() or not value.isascii() or value != value.lower():
        return "a lower-case Python identifier such as my_service"
    if keyword.iskeyword(value) or value in RESERVED_PACKAGES:
        return "a name that does not shadow a keyword, the standard library or a dependency"
    return None


def check_email(value: str) -> str | None:
    """Return why the email is invalid, or None."""
    return None if EMAIL.fullmatch(value) else "an address like you@example.com"


def check_python(value: str) -> str | None:
    """Return why the Python version is not offered, or None."""
    return None if value in PYTHON_VERSIONS else "one of " + ", ".join(PYTHON_VERSIONS)


def check_yes_no(value: str) -> str | None:
    """Return why a yes/no answer is invalid, or None."""
    return None if value in ("yes", "no") else "yes or no"


CHECKS = {
    "project_name": check_project_name,
    "project_slug": check_slug,
    "package_name": check_package,
    "email": check_email,
    "python_version": check_python,
}


def check_of(field: str):
    """Return the check of one answer: its own, yes/no for a use_ option, or None."""
    if field.startswith(YES_NO_PREFIX):
        return check_yes_no
    return CHECKS.get(field)


def field_problems(answers: dict[str, str]) -> dict[str, str]:
    """Return what each invalid answer should have been, by field."""
    found = {}
    for field, value in answers.items():
        check = check_of(field)
        allowed = check(value) if check else None
        if allowed:
            found[field] = allowed
    return found


def broken_rules(answers: dict[str, str], rules: list[Rule]) -> dict[str, str]:
    """Return what each answer refused by a rule should have beside it, by field."""
    found = {}
    for rule in rules:
        missing = {name: want for name, want in rule.needs.items() if answers[name] != want}
        if answers[rule.field] == rule.value and missing:
            wanted = " and ".join(f"{name}={want!r}" for name, want in missing.items())
            found[rule.field] = f"{wanted} with it ({rule.why})"
    return found


def refusals(answers: dict[str, str], rules: list[Rule] = RULES) -> dict[str, str]:
    """Return what each refused answer should have been, by field."""
    # a rule reads answers that are each valid on their own
    return field_problems(answers) or broken_rules(answers, rules)


def problems(answers: dict[str, str], rules: list[Rule] = RULES) -> list[str]:
    """Return one line per invalid answer: field, value and what is allowed."""
    return [
        f"ERROR: {field}={answers[field]!r} is invalid; expected {allowed}."
        for field, allowed in refusals(answers, rules).items()
    ]


def replay_hint(context: dict, fields: list[str]) -> str | None:
    """Return how to generate again from the saved answers, or None if cookiecutter saved others.

    cookiecutter writes its replay file before this hook runs (cruft writes none).
    """
    if "_repo_dir" not in context:
        return None
    path = REPLAY_DIR / (os.path.basename(os.path.abspath(context["_repo_dir"])) + ".json")
    try:
        saved = json.loads(path.expanduser().read_text(encoding="utf-8"))["cookiecutter"]
    except (OSError, ValueError, KeyError):
        return None
    if {key: value for key, value in saved.items() if not key.startswith("_")} != ANSWERS:
        return None
    command = ["cookiecutter", "--replay", context["_template"]]
    if os.path.abspath(os.environ.get("PWD", "")) != context["_output_dir"]:
        command[2:2] = ["-o", context["_output_dir"]]
    return (
        f"The answers are saved in {path}: correct {' and '.join(fields)} there,"
        f" then generate without the prompts: {shlex.join(command)}"
    )


def main() -> int:
    """Print every invalid answer, and how to answer again, and return 1; or return 0."""
    found = problems(ANSWERS)
    if not found:
        return 0
    for line in found:
        print(line, file=sys.stderr)
    hint = replay_hint(CONTEXT, list(refusals(ANSWERS)))
    if hint:
        print(hint, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
