"""Prune what was not selected, record the answers, write the git-ignored secrets afresh."""

import itertools
import json
import os
import re
import secrets
import shlex
import shutil
import sys
import tomllib
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
# The template ships one uv.lock for the union of every option's dependencies, locked for the
# default project name, and the Python versions at which each package makes uv split its
# resolution (tools/lock.py writes both); the bake keeps what its own pyproject.toml reaches.
UNIVERSAL = Path("uv-lock/universal.lock")
FORKS = Path("uv-lock/forks.json")
LOCKED_NAME = "my-service"
MARKERS = re.compile(r"resolution-markers = \[\n.*?\n\]\n?", re.S)
DEV_SECRET_NOTE = (
    "# The dev overlay's Secret, written at generation with fresh random values (git-ignored).\n"
    "# Point the URLs at the servers your development cluster reaches.\n"
)

# option (a use_ option answered yes, or "option=value" for another choice), or a tuple of them
# that must all be selected -> paths that exist only then
PRUNE = {
    "use_postgres": [
        "migrations",
        "postgres",
        "{package}/platform/connection_checks.py",
        "{package}/platform/schema_migrations.py",
        "tests/platform/test_connection_checks.py",
        "tests/platform/test_schema_migrations.py",
        "tests/test_backup_script.py",
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
        "{package}/items/templates",
        "{package}/items/seed.py",
        "tests/web",
        "tests/items/test_pages.py",
        "tests/items/test_seed.py",
        "docs/frontend.md",
    ],
    "use_https": ["Caddyfile", "docs/https.md"],
    "use_opentelemetry": [
        "{package}/settings/sentry.py",
        "{package}/platform/telemetry.py",
        "tests/platform/test_telemetry.py",
        "docs/tracing.md",
    ],
    "use_auth": [
        "{package}/auth",
        "{package}/settings/auth.py",
        "{package}/settings/mail.py",
        "{package}/platform/mail.py",
        "tests/auth",
        "tests/mail_sink.py",
        "tests/contract.py",
        "tests/platform/test_mail.py",
        "docs/auth.md",
    ],
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
    ("use_kubernetes", "use_postgres"): [
        "deploy/k8s/base/migrate-job.yaml",
        "deploy/k8s/backup-cronjob.example.yaml",
    ],
    ("use_kubernetes", "use_https"): ["deploy/k8s/ingress.example.yaml"],
    ("use_celery", "use_opentelemetry"): [
        "{package}/platform/task_tracing.py",
        "tests/platform/test_task_tracing.py",
    ],
    ("use_auth", "use_postgres"): [
        "migrations/versions/20260301_0003_users.py",
        "migrations/versions/20261127_0005_email_verified.py",
        "migrations/versions/20261128_0006_user_roles.py",
        "migrations/versions/20261129_0008_second_factors.py",
        "migrations/versions/20261130_0009_password_optional.py",
        "migrations/versions/20261201_0011_audit_events.py",
        "migrations/versions/20261202_0012_audit_events_plain_ids.py",
    ],
    ("use_auth", "use_frontend", "use_postgres"): [
        "migrations/versions/20261126_0004_passkeys.py",
        "migrations/versions/20261129_0007_passkey_names_unique.py",
        "migrations/versions/20261130_0010_identities.py",
    ],
    ("use_auth", "use_celery"): [
        "{package}/platform/mail_tasks.py",
        "tests/platform/test_mail_tasks.py",
        "{package}/auth/audit_tasks.py",
        "tests/auth/test_audit_tasks.py",
    ],
    ("use_auth", "use_frontend"): [
        "{package}/auth/pages.py",
        "{package}/auth/passkeys.py",
        "{package}/auth/passkey_pages.py",
        "{package}/auth/passkey_ceremonies.py",
        "{package}/settings/passkeys.py",
        "{package}/auth/templates/auth",  # the pages' templates
        "assets/src/passkeys.js",
        "tests/auth/test_passkeys.py",
        "tests/auth/webauthn_responses.json",
        "tests/settings/test_passkeys.py",
        "{package}/auth/recovery_pages.py",
        "tests/auth/test_recovery_pages.py",
        "{package}/auth/sign_up_pages.py",
        "tests/auth/test_sign_up_pages.py",
        "tests/auth/test_pages.py",
        "tests/auth/test_second_step_pages.py",
        "{package}/auth/security_pages.py",
        "tests/auth/test_security_pages.py",
        "{package}/settings/sso.py",
        "{package}/auth/sso.py",
        "{package}/auth/sso_pages.py",
        "{package}/auth/sso_provider.py",
        "{package}/auth/admin_pages.py",
        "tests/auth/test_admin_pages.py",
        "{package}/auth/admin_passkeys.py",
        "tests/auth/test_admin_passkeys.py",
        "tests/auth/test_sso.py",
        "tests/settings/test_sso.py",
    ],
    # A worker pod shares the database with the web pods only on a server (not a pod's SQLite).
    ("use_kubernetes", "use_celery", "use_postgres"): [
        "deploy/k8s/base/worker-deployment.yaml",
        "deploy/k8s/base/scheduler-deployment.yaml",
    ],
    # A job pod reaches the audit trail only on a server (not the web pods' SQLite).
    ("use_kubernetes", "use_auth", "use_postgres"): ["deploy/k8s/base/audit-prune-cronjob.yaml"],
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


def requirement_names(requirements: list[str]) -> set[str]:
    """Return the project names of ``requirements``, normalized as uv writes them."""
    return {normalized(re.match(r"[A-Za-z0-9._-]+", r)[0]) for r in requirements}


def normalized(name: str) -> str:
    """Return a project name as uv writes it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def own_entry(block: str, wanted: dict[str, set[str]], name: str) -> str:
    """Return the project's entry keeping the requirements the bake's pyproject.toml names.

    The universal entry lists every option's; each line names one, under `dependencies` or
    `requires-dist` (the project's dependencies) or `dev` (its dev group).
    """
    lines, kind = [], "dependencies"
    for line in block.split("\n"):
        if line.endswith("= ["):
            kind = "dev" if line.startswith("dev ") else "dependencies"
        match = re.match(r'    \{ name = "([^"]+)"', line)
        if not match or match[1] in wanted[kind]:
            lines.append(line)
    return "\n".join(lines).replace(f'name = "{LOCKED_NAME}"', f'name = "{name}"', 1)


def reachable(packages: dict[tuple[str, str], dict], start: list[dict]) -> set[tuple[str, str]]:
    """Return the (name, version) of every package the dependencies ``start`` reach, extras too."""
    versions: dict[str, list[str]] = {}
    for package_name, version in packages:
        versions.setdefault(package_name, []).append(version)
    found: set[tuple[str, str]] = set()
    todo = list(start)
    while todo:
        dependency = todo.pop()
        key = (dependency["name"], dependency.get("version") or versions[dependency["name"]][0])
        package = packages[key]
        extras = package.get("optional-dependencies", {})
        todo += [d for extra in dependency.get("extra", []) for d in extras[extra]]
        if key not in found:
            found.add(key)
            todo += package.get("dependencies", [])
    return found


def version_key(version: str) -> tuple[int, ...]:
    """Return a version such as "3.14" as numbers, to sort and compare."""
    return tuple(map(int, version.split(".")))


def python_cells(floor: str, boundaries: set[str]) -> list[tuple[str, str]]:
    """Return uv's fork markers splitting Python at ``boundaries``, newest first, with their floor.

    uv writes a one-minor range as `== '3.14.*'`, and leaves out the bound requires-python sets.
    """
    if not boundaries:
        return []
    edges = [floor, *sorted(boundaries, key=version_key), None]
    cells = []
    for low, high in itertools.pairwise(edges):
        if low == floor:
            marker = f"python_full_version < '{high}'"
        elif high is None:
            marker = f"python_full_version >= '{low}'"
        elif version_key(high) == (*version_key(low)[:-1], version_key(low)[-1] + 1):
            marker = f"python_full_version == '{low}.*'"
        else:
            marker = f"python_full_version >= '{low}' and python_full_version < '{high}'"
        cells.append((marker, low))
    return cells[::-1]


def lowest(marker: str, floor: str) -> str:
    """Return the lowest Python version of one of uv's fork markers (``floor`` if it names none)."""
    match = re.match(r"python_full_version (?:>=|==) '([\d.]+?)(?:\.\*)?'", marker)
    return match[1] if match else floor


def marker_array(key: str, markers: list[str]) -> str:
    """Return a TOML array of marker strings as uv writes it (none: no array, no line)."""
    lines = "".join(f'    "{marker}",\n' for marker in markers)
    return f"{key} = [\n{lines}]\n" if markers else ""


def parse_entry(block: str) -> dict:
    """Return one `[[package]]` entry of a uv.lock, its tables included, from its text."""
    return tomllib.loads("[[package]]\n" + block)["package"][0]


def trim_lock(root: Path, answers: dict[str, str]) -> None:
    """Write uv.lock: of the universal lock, what `uv lock` writes for this pyproject.toml.

    It keeps the packages the project's dependencies and dev group reach, names the project after
    the slug where uv sorts it, and splits Python only where a kept package needs it (FORKS).
    """
    name = normalized(answers["project_slug"])
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    wanted = {
        "dependencies": requirement_names(pyproject["project"]["dependencies"]),
        "dev": requirement_names(pyproject["dependency-groups"]["dev"]),
    }
    head, *blocks = (root / UNIVERSAL).read_text().split("\n[[package]]\n")
    forks = json.loads((root / FORKS).read_text())
    shutil.rmtree(root / UNIVERSAL.parent)
    entries = {}
    for block in blocks:
        package = parse_entry(block)
        entries[package["name"], package["version"]] = block, package
    own = own_entry(entries.pop((LOCKED_NAME, "0.1.0"))[0], wanted, name)
    locked = parse_entry(own)
    start = locked["dependencies"] + locked["dev-dependencies"]["dev"]
    kept = reachable({key: package for key, (_, package) in entries.items()}, start)
    if name in {key[0] for key in kept}:
        raise SystemExit(f"ERROR: project_slug={name!r} is a dependency's name; choose another")
    floor = tomllib.loads(head)["requires-python"].removeprefix(">=")
    cells = python_cells(floor, {v for key in kept for v in forks.get(key[0], [])})
    head = MARKERS.sub(marker_array("resolution-markers", [m for m, _ in cells]), head)
    out = []
    for key, (block, package) in entries.items():  # in the universal lock's order: uv's
        if key not in kept:
            continue
        if "resolution-markers" in package:
            floors = {lowest(marker, floor) for marker in package["resolution-markers"]}
            markers = [marker for marker, low in cells if low in floors]
            block = MARKERS.sub(marker_array("resolution-markers", markers), block)
        out.append(block)
    out.insert(sum(key[0] < name for key in kept), own)
    (root / "uv.lock").write_text("\n[[package]]\n".join([head, *out]))


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


def next_step(project: Path, context: dict) -> str | None:
    """Return the commands that serve the new project, as its README's quick start does.

    The folder is named as the shell that ran cookiecutter reaches it (PWD); none for a bake the
    user did not ask to see (cruft writes its updates in temporary folders, without _output_dir).
    """
    if (Path(os.environ.get("PWD", "")) / project.name).resolve() == project.resolve():
        where = project.name
    elif "_output_dir" in context:
        where = str(project)
    else:
        return None
    return f"Next, to serve it on http://127.0.0.1:8000:\n  cd {shlex.quote(where)} && make demo"


def main() -> int:
    """Prune, record the answers, write .env and, with Kubernetes, resources and secret.env."""
    root = Path.cwd()
    prune(root, paths_to_prune(CONTEXT, PACKAGE))
    trim_lock(root, CONTEXT)
    write_answers(root, CONTEXT)
    write_env(root, SELECTED)
    if SELECTED["use_kubernetes"]:
        list_kustomize_resources(root)
        write_dev_secret(root)
    step = next_step(root, CONTEXT)
    if step:
        print(step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
