"""Validate the answers before anything is written; a bad answer names the field and exits 1."""

import keyword
import re
import sys

ANSWERS = {
    "project_name": {{ cookiecutter.project_name | tojson }},
    "project_slug": {{ cookiecutter.project_slug | tojson }},
    "package_name": {{ cookiecutter.package_name | tojson }},
    "email": {{ cookiecutter.email | tojson }},
    "python_version": {{ cookiecutter.python_version | tojson }},
    "use_postgres": {{ cookiecutter.use_postgres | tojson }},
    "use_redis": {{ cookiecutter.use_redis | tojson }},
    "use_nginx": {{ cookiecutter.use_nginx | tojson }},
    "use_kubernetes": {{ cookiecutter.use_kubernetes | tojson }},
}
PYTHON_VERSIONS = {{ cookiecutter._python_images.keys() | list | tojson }}

SLUG = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
RESERVED_PACKAGES = set(sys.stdlib_module_names) | {"flask", "gunicorn", "tests", "migrations"}


def check_project_name(value: str) -> str | None:
    """Return why the project name is invalid, or None."""
    if not value.strip() or len(value) > 80 or not value.isprintable():
        return "a printable name of 1 to 80 characters"
    return None


def check_slug(value: str) -> str | None:
    """Return why the slug is invalid, or None."""
    if len(value) > 50 or not SLUG.fullmatch(value):
        return "lower-case letters, digits and single hyphens, starting with a letter (at most 50)"
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
    "use_postgres": check_yes_no,
    "use_redis": check_yes_no,
    "use_nginx": check_yes_no,
    "use_kubernetes": check_yes_no,
}


def problems(answers: dict[str, str]) -> list[str]:
    """Return one line per invalid answer: field, value and what is allowed."""
    found = []
    for field, check in CHECKS.items():
        allowed = check(answers[field])
        if allowed:
            found.append(f"ERROR: {field}={answers[field]!r} is invalid; expected {allowed}.")
    return found


def main() -> int:
    """Print every invalid answer and return 1, or return 0."""
    found = problems(ANSWERS)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
