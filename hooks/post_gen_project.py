"""Prune what was not selected, then write a git-ignored .env with fresh secrets."""

import secrets
import shutil
import sys
from pathlib import Path

SELECTED = {
    "use_postgres": "{{ cookiecutter.use_postgres }}" == "yes",
    "use_redis": "{{ cookiecutter.use_redis }}" == "yes",
    "use_nginx": "{{ cookiecutter.use_nginx }}" == "yes",
    "use_kubernetes": "{{ cookiecutter.use_kubernetes }}" == "yes",
}
PACKAGE = "{{ cookiecutter.package_name }}"

# option -> paths that exist only when the option is selected
PRUNE = {
    "use_postgres": [
        "migrations",
        "{package}/schema_migrations.py",
        "tests/test_schema_migrations.py",
    ],
    "use_redis": ["{package}/redis_store.py", "tests/test_redis_store.py"],
    "use_nginx": ["nginx", "{package}/proxy.py", "tests/test_proxy.py"],
    "use_kubernetes": ["deploy/k8s"],
}


def paths_to_prune(selected: dict[str, bool], package: str) -> list[str]:
    """Return the paths belonging to options that were not selected."""
    return [
        path.format(package=package)
        for option, paths in PRUNE.items()
        if not selected[option]
        for path in paths
    ]


def prune(root: Path, paths: list[str]) -> None:
    """Delete each path (file or folder) and any folder left empty by it."""
    for relative in paths:
        target = root / relative
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        parent = target.parent
        while parent != root and parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def write_env(root: Path, selected: dict[str, bool]) -> None:
    """Copy .env.example to .env with fresh random secrets; never overwrite an existing .env."""
    if (root / ".env").exists():
        return
    text = (root / ".env.example").read_text()
    text = text.replace("SECRET_KEY=change-me", f"SECRET_KEY={secrets.token_urlsafe(48)}")
    if selected["use_postgres"]:
        text = text.replace("POSTGRES_PASSWORD=change-me", f"POSTGRES_PASSWORD={secrets.token_hex(24)}")
    (root / ".env").write_text(text)
    (root / ".env").chmod(0o600)


def main() -> int:
    """Prune, then write .env."""
    root = Path.cwd()
    prune(root, paths_to_prune(SELECTED, PACKAGE))
    write_env(root, SELECTED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
