"""Prune what was not selected, record the answers, write the git-ignored secrets afresh."""

import json
import re
import secrets
import shutil
import sys
from pathlib import Path

# Every answer, as one object (keys starting with "_" are cookiecutter's or the template's own).
CONTEXT = json.loads({{ cookiecutter | tojson | tojson }})
SELECTED = {key: value == "yes" for key, value in CONTEXT.items() if key.startswith("use_")}
PACKAGE = CONTEXT["package_name"]
SECRET_EXAMPLE = "deploy/k8s/secret.env.example"
DEV_SECRET = "deploy/k8s/overlays/dev/secret.env"
KUSTOMIZATION = "deploy/k8s/base/kustomization.yaml"
RESOURCES_TO_LIST = "resources: []  # the manifests this folder keeps, listed at generation\n"
# The answers this project was made with (for `cruft link`; committed with the project).
ANSWERS_FILE = ".cookiecutter.json"
# The template ships one uv.lock per set of dependencies (tools/lock.py writes them): the options
# that change pyproject.toml's dependencies name it. Each was locked for the default project name.
LOCKS = "uv-locks"
LOCKED_NAME = "my-service"
DEV_SECRET_NOTE = (
    "# The dev overlay's Secret, written at generation with fresh random values (git-ignored).\n"
    "# Point the URLs at the servers your development cluster reaches.\n"
)

# option (a use_ option answered yes, or "option=value" for another choice), or a tuple of them
# that must all be selected -> paths that exist only then
PRUNE = {
    "use_postgres": [
        "migrations",
        "{package}/platform/schema_migrations.py",
        "tests/platform/test_schema_migrations.py",
    ],
    "use_redis": [
        "{package}/settings/redis.py",
        "{package}/platform/redis_client.py",
        "tests/platform/test_redis_client.py",
    ],
    "use_nginx": ["nginx", "{package}/platform/proxy.py", "tests/platform/test_proxy.py"],
    "use_kubernetes": ["deploy/k8s", "docs/kubernetes.md"],
    "use_celery": [
        "{package}/platform/celery_app.py",
        "{package}/items/tasks.py",
        "{package}/worker.py",
        "tests/items/test_tasks.py",
        "docs/background-tasks.md",
    ],
    "use_frontend": [
        "assets",
        "{package}/web",
        "{package}/items/pages.py",
        "{package}/items/seed.py",
        "tests/web",
        "tests/items/test_pages.py",
        "tests/items/test_seed.py",
        "docs/frontend.md",
    ],
    "use_https": ["Caddyfile", "docs/https.md"],
    "use_opentelemetry": [
        "{package}/platform/telemetry.py",
        "tests/platform/test_telemetry.py",
        "docs/tracing.md",
    ],
    "use_auth": ["{package}/auth", "{package}/settings/auth.py", "tests/auth", "docs/auth.md"],
    "app_server=gunicorn": [
        "gunicorn.conf.py",
        "{package}/settings/gunicorn.py",
        "tests/settings/test_gunicorn.py",
        "docs/gunicorn.md",
    ],
    "app_server=granian": [
        "{package}/granian_server.py",
        "tests/test_granian_server.py",
        "docs/granian.md",
    ],
    ("use_kubernetes", "use_postgres"): ["deploy/k8s/base/migrate-job.yaml"],
    ("use_kubernetes", "use_https"): ["deploy/k8s/ingress.example.yaml"],
    ("use_celery", "use_opentelemetry"): [
        "{package}/platform/task_tracing.py",
        "tests/platform/test_task_tracing.py",
    ],
    ("use_auth", "use_postgres"): ["migrations/versions/20260301_0003_users.py"],
    ("use_auth", "use_frontend"): [
        "{package}/auth/pages.py",
        "{package}/web/templates/pages/_signed_in.html",
        "{package}/web/templates/pages/sign_in.html",
        "tests/auth/test_pages.py",
    ],
    # A worker pod shares the database with the web pods only on a server (not a pod's SQLite).
    ("use_kubernetes", "use_celery", "use_postgres"): [
        "deploy/k8s/base/worker-deployment.yaml",
        "deploy/k8s/base/scheduler-deployment.yaml",
    ],
}


def as_tuple(options: str | tuple[str, ...]) -> tuple[str, ...]:
    """Return a PRUNE key as the tuple of options it needs."""
    return (options,) if isinstance(options, str) else options


def chosen(answers: dict[str, str], key: str) -> bool:
    """Say whether ``key`` ("use_x" answered yes, or "option=value") holds in ``answers``."""
    option, _, value = key.partition("=")
    return answers[option] == (value or "yes")


def paths_to_prune(answers: dict[str, str], package: str) -> list[str]:
    """Return the paths belonging to options that were not selected."""
    return [
        path.format(package=package)
        for options, paths in PRUNE.items()
        if not all(chosen(answers, option) for option in as_tuple(options))
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


def list_kustomize_resources(root: Path) -> None:
    """List, as the base kustomization's resources, every manifest its folder kept."""
    path = root / KUSTOMIZATION
    text = path.read_text()
    if RESOURCES_TO_LIST not in text:
        raise SystemExit(f"ERROR: {KUSTOMIZATION} has no line {RESOURCES_TO_LIST.strip()!r}")
    manifests = sorted(p.name for p in path.parent.glob("*.yaml") if p.name != path.name)
    listed = "resources:\n" + "".join(f"  - {name}\n" for name in manifests)
    path.write_text(text.replace(RESOURCES_TO_LIST, listed))


def lock_name(answers: dict[str, str]) -> str:
    """Return the file name, in LOCKS, of the lock of the dependencies ``answers`` select."""
    parts = [
        option.removeprefix("use_") if answers[option] == "yes" else answers[option]
        for option in answers["_lock_options"]
        if answers[option] != "no"
    ]
    return "-".join(parts) + ".lock"


def choose_lock(root: Path, answers: dict[str, str]) -> None:
    """Keep the selection's lock as uv.lock, its project named as pyproject.toml names it.

    uv lists the packages of a lock by name, so the project's own entry moves to its place.
    """
    name = re.sub(r"[-_.]+", "-", answers["project_slug"]).lower()
    head, *blocks = (root / LOCKS / lock_name(answers)).read_text().split("\n[[package]]\n")
    shutil.rmtree(root / LOCKS)
    names = [block.split('"', 2)[1] for block in blocks]
    if name in names and name != LOCKED_NAME:
        raise SystemExit(f"ERROR: project_slug={name!r} is a dependency's name; choose another")
    project = blocks.pop(names.index(LOCKED_NAME))
    names.remove(LOCKED_NAME)
    project = project.replace(f'name = "{LOCKED_NAME}"', f'name = "{name}"', 1)
    blocks.insert(sum(other < name for other in names), project)
    (root / "uv.lock").write_text("\n[[package]]\n".join([head, *blocks]))


def write_answers(root: Path, context: dict) -> None:
    """Write the answers (not cookiecutter's or the template's own "_" keys) as JSON.

    They are this project's own: cookiecutter's replay file holds the last generation from the
    template, whichever project that was. The same answers give the same bytes.
    """
    answers = {key: value for key, value in context.items() if not key.startswith("_")}
    text = json.dumps(answers, indent=2, ensure_ascii=False) + "\n"
    (root / ANSWERS_FILE).write_text(text, encoding="utf-8")


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


def write_dev_secret(root: Path) -> None:
    """Write the dev overlay's secret.env from the example, each placeholder a fresh secret.

    An existing file is kept: it may hold the developer's own values.
    """
    target = root / DEV_SECRET
    if target.exists():
        return
    example = (root / SECRET_EXAMPLE).read_text()
    body = "".join(line for line in example.splitlines(keepends=True) if not line.startswith("#"))
    body = re.sub("change-me", lambda _: secrets.token_hex(32), body)
    target.write_text(DEV_SECRET_NOTE + body)
    target.chmod(0o600)


def main() -> int:
    """Prune, record the answers, write .env and, with Kubernetes, resources and secret.env."""
    root = Path.cwd()
    prune(root, paths_to_prune(CONTEXT, PACKAGE))
    choose_lock(root, CONTEXT)
    write_answers(root, CONTEXT)
    write_env(root, SELECTED)
    if SELECTED["use_kubernetes"]:
        list_kustomize_resources(root)
        write_dev_secret(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
