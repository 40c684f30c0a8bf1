"""Tier 1: every combination bakes completely, prunes cleanly, lints and passes its own tests."""

import re
import subprocess
import sys

import pytest
from combinations import ALL_OFF, ALL_ON, COMBINATIONS, DEFAULTS_COMBO, YES_NO, params
from hook_tables import post_gen_value, prune_table
from project_files import package_name
from projects import run_project_tests, skips_not_for_a_server

# A Jinja tag left in a file or folder name; and one left in a file's text.
UNRENDERED_NAME = re.compile(r"\{\{|\{%")
UNRENDERED = re.compile(r"\{\{-?\s*cookiecutter\.|\{%-?\s*(if|elif|for|endif)\b")
SKIP_DIRS = {".git", "__pycache__", ".ruff_cache", ".pytest_cache"}
# The post-gen hook writes fresh random secrets into these files (token_urlsafe and token_hex, 48
# characters or more); a secret may spell any short word by chance ("...k8s..."), so the
# leftover-word check reads them with each such token masked.
SECRET_FILES = {".env", "secret.env"}
RANDOM_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,}")
# Names that hold an option's word without being about the option, masked by that check: the
# Linux setting that hands a closing socket's queued connections on (docs/granian.md).
UNRELATED_NAMES = ("net.ipv4.tcp_migrate_req",)

# The answers the project was made with: it names every option, the unselected ones included.
ANSWERS_FILE = post_gen_value("ANSWERS_FILE")

# Words that must not appear anywhere in a project generated without the option, besides the
# option's own name without "use_" (which is all an option not listed here is checked for).
LEFTOVER_WORDS = {
    "use_postgres": [
        *["psycopg", "alembic", "migrat"],
        *["backups", "make backup", "backup.sh", "pg_dump"],  # backups come with PostgreSQL
    ],
    "use_nginx": ["proxyfix", "proxy_fix"],
    "use_kubernetes": ["kustomiz", "k8s", "kubectl"],
    "use_celery": ["scheduler"],
    "use_frontend": [
        "htmx",
        "alpine",
        "csrf",
        "static_url_for",
        "flask_debugtoolbar",
        "esbuild",
        "passkey",  # passkeys need the pages (and users)
        "webauthn",
        *["authlib", "oidc", "sso_pages"],  # single sign-on is a flow of the pages (and users)
    ],
    # A choice's value: words of its own files and requirements (the docs name both servers).
    "app_server=gunicorn": [
        "gunicorn.conf",
        "from gunicorn",
        "gunicorn==",
        "settings/gunicorn",
        "settings.gunicorn",
    ],
    "app_server=granian": ["granian_", "granian=="],
    "use_https": ["acme", "strict-transport-security"],
    "use_opentelemetry": ["sentry", "otel", "traceparent", "jaeger"],
    "use_auth": [
        *["accounts", "bearer", "password_hash", "users_cli", "flask_login", "sign_in"],
        *["smtp", "mail_url", "password_reset", "mailpit"],  # mail comes with users
        *["passkey", "webauthn"],
        *["sign_up", "email_verified"],
        *["second_factor", "pyotp", "segno", "secret_key_fallbacks"],
        *["authlib", "oidc", "identities"],
        *["audit_events", "audit_retention", "flask audit"],
    ],
}
# The word that stands for an option whose own name is common in every bake ("https" is in the
# docs' links): a bake without it must not contain this word instead.
OWN_WORD = {"use_https": "caddy", "use_auth": "argon2"}


def leftover_words(option: str) -> list[str]:
    """Return the words a bake without ``option`` must not contain: its name, then any listed.

    A choice's value ("app_server=granian") is checked for its listed words only.
    """
    own = [] if "=" in option else [OWN_WORD.get(option, option.removeprefix("use_"))]
    return [*own, *LEFTOVER_WORDS.get(option, [])]


def project_files(root):
    """Yield every file of a generated project, skipping caches."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(root).parts):
            yield path


def checked_text(path) -> str:
    """Return a file's text, lowercased, as the leftover-word check reads it (secrets masked)."""
    text = path.read_text(errors="replace")
    if path.name in SECRET_FILES:
        text = RANDOM_TOKEN.sub("<random secret>", text)
    text = text.lower()
    for name in UNRELATED_NAMES:
        text = text.replace(name, "<unrelated name>")
    return text


@pytest.mark.parametrize("combo", params())
def test_every_tag_is_rendered(bake, combo):
    """It leaves no unrendered cookiecutter tag in any file name or content.

    The app's Jinja templates (the pages', the mail's: copied unrendered) keep their own tags,
    and name no cookiecutter.
    """
    root = bake(combo)
    package = root / package_name(root)
    flask_templates = {package / folder / "templates" for folder in ("web", "items", "auth")}
    for path in project_files(root):
        assert not UNRENDERED_NAME.search(str(path.relative_to(root))), path
        text = path.read_text(errors="replace")
        if flask_templates.intersection(path.parents):
            assert "cookiecutter" not in text, path
        else:
            assert not UNRENDERED.search(text), path


# What the template's own benchmark and test machines would leave in a generated file: their
# tools' folders, the machine's load and kernel release, the template's runs named as evidence.
LAB_NOTES = re.compile(
    r"\bbench/|load average|\bLinux \d+\.\d+\.\d+|the template's (benchmark|tier|test)",
    re.IGNORECASE,
)


@pytest.mark.parametrize("combo", params())
def test_no_generated_file_carries_the_templates_lab_notes(bake, combo):
    """It gives the owner guidance, not the template's benchmark host, figures or test runs."""
    root = bake(combo)
    found = [
        f"{path.relative_to(root)}: {match.group(0)!r}"
        for path in project_files(root)
        for match in LAB_NOTES.finditer(path.read_text(errors="replace"))
    ]
    assert not found, found


def test_the_lab_notes_check_finds_a_benchmark_host_line():
    """It finds the line the benchmark wrote into the README, and passes a kernel feature's."""
    host = "Measured by `bench/run.py`: Linux 6.18.44-fc-v669, load average 5.5 at the start"
    assert {m.group(0) for m in LAB_NOTES.finditer(host)} == {
        "bench/",
        "Linux 6.18.44",
        "load average",
    }
    assert not LAB_NOTES.search("Linux 5.14 or newer can hand a closing socket's connections")


@pytest.mark.parametrize("combo", params())
def test_pruned_paths_follow_the_hook_table(bake, combo):
    """It keeps the paths of selected options and removes those of unselected ones."""
    root = bake(combo)
    package = package_name(root)
    for options, paths in prune_table().items():
        for path in paths:
            target = root / path.format(package=package)
            selected = all(combo.selected(option) for option in options)
            assert target.exists() == selected, (options, target)


@pytest.mark.parametrize("combo", params())
def test_no_dangling_references_to_unselected_options(bake, combo):
    """It leaves no word of an unselected option in any file (imports, env, docs, compose)."""
    root = bake(combo)
    for option in YES_NO + [key for key in LEFTOVER_WORDS if "=" in key]:
        if combo.selected(option):
            continue
        words = leftover_words(option)
        for path in project_files(root):
            if path.relative_to(root).as_posix() == ANSWERS_FILE:
                continue
            text = checked_text(path)
            found = [word for word in words if word in text or word in path.name.lower()]
            assert not found, f"{path.relative_to(root)} mentions {found} with {option}=no"


def test_leftover_check_masks_random_secrets_only(tmp_path):
    """A fresh secret that spells an option's word by chance is not a leftover; prose still is."""
    env = tmp_path / ".env"
    env.write_text("# Kubernetes: see k8s/\nSECRET_KEY=Zq3-k8s_" + "x" * 56 + "\n")
    text = checked_text(env)
    assert "k8s_" not in text
    assert "<random secret>" in text
    assert "see k8s/" in text


def test_leftover_check_masks_only_the_unrelated_names(tmp_path):
    """A sysctl that holds "migrat" is not about migrations; a migration still is a leftover."""
    readme = tmp_path / "README.md"
    readme.write_text("Set `net.ipv4.tcp_migrate_req`.\nRun the migrations.\n")
    text = checked_text(readme)
    assert "tcp_migrate_req" not in text
    assert "run the migrations" in text


@pytest.mark.parametrize("combo", params())
def test_no_empty_folders(bake, combo):
    """It leaves no empty folder behind after pruning."""
    root = bake(combo)
    empty = [p for p in root.rglob("*") if p.is_dir() and not any(p.iterdir())]
    assert not empty


@pytest.mark.parametrize("combo", params())
def test_env_has_fresh_secrets_and_example_keeps_placeholders(bake, combo):
    """It writes random secrets into .env and keeps placeholders in .env.example."""
    root = bake(combo)
    env = dict(
        line.split("=", 1)
        for line in (root / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    example = (root / ".env.example").read_text()
    assert "SECRET_KEY=change-me" in example
    assert len(env["SECRET_KEY"]) >= 40 and env["SECRET_KEY"] != "change-me"
    if combo.selected("use_postgres"):
        assert "POSTGRES_PASSWORD=change-me" in example
        assert len(env["POSTGRES_PASSWORD"]) >= 32
    assert (root / ".env").stat().st_mode & 0o077 == 0
    assert ".env" in (root / ".gitignore").read_text().splitlines()


def test_secrets_differ_between_bakes(bake):
    """It draws a new SECRET_KEY for every generated project."""
    keys = {
        line
        for combo in COMBINATIONS[:2]
        for line in (bake(combo) / ".env").read_text().splitlines()
        if line.startswith("SECRET_KEY=")
    }
    assert len(keys) == 2


@pytest.mark.parametrize("combo", params())
def test_ruff_is_clean(bake, combo):
    """It generates code that passes ruff check and ruff format --check."""
    root = bake(combo)
    for args in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=root, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


# Three bakes' suites run where a test changes the bake a little and runs the suite anyway, with
# the same assertions: all-on's and all-off's with the README's examples applied (every test of
# the bake kept; test_readme_recipes.py), the defaults' after a template update (test_update.py).
SUITE_RUN_ELSEWHERE = {ALL_ON, ALL_OFF, DEFAULTS_COMBO}


@pytest.mark.parametrize("combo", params([c for c in COMBINATIONS if c not in SUITE_RUN_ELSEWHERE]))
def test_generated_tests_pass(bake, combo, clean_env):
    """It generates a project whose own test suite passes (embedded SQLite and memory storage),
    skipping only tests that need a real Redis or PostgreSQL server (tier 2 runs those)."""
    result = run_project_tests(bake(combo), clean_env)
    assert not skips_not_for_a_server(result), result.stdout[-3000:]
