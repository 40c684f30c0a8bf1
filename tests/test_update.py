"""Template updates: cruft links, checks and updates generated projects; .env is never touched."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import COMBINATIONS
from developer import TEMPLATE_ONLY
from projects import run_project_tests, skips_not_for_a_server

# The tests of the updated project share it (one worker); the others bake their own projects and
# are left to fill any worker.
UPDATED = pytest.mark.xdist_group("update")

TEMPLATE_NAME = "flask-service"  # the folder name cookiecutter names its replay file after
DOCS_TEMPLATE = "https://github.com/OWNER/flask-service"  # the template's address in its docs

PROJECT = "{{cookiecutter.project_slug}}"
PACKAGE = "{{cookiecutter.package_name}}"
# What the template change in these tests adds to the generated project.
ADDED_LINE = "# Added by a template update."
NEW_MODULE = '"""Arrive in generated projects through a template update."""\n'
LOCAL_LINE = "# A local edit the update must keep."


def run(args: list, cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, and fail with its output when ``check`` is set and it fails."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def cruft(*args: str, cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run the cruft command line."""
    return run([sys.executable, "-m", "cruft", *args], cwd, env, check)


def git(*args: str, cwd: Path, env: dict) -> str:
    """Run git and return its output."""
    return run(["git", *args], cwd, env).stdout


def commit_all(repo: Path, message: str, env: dict) -> None:
    """Commit every change in ``repo`` (git-ignored files stay out)."""
    git("add", "--all", cwd=repo, env=env)
    git("commit", "--quiet", "--message", message, cwd=repo, env=env)


def tool_env(home: Path) -> dict:
    """Return an environment with its own HOME (no user config or replay) and a git identity."""
    home.mkdir(parents=True, exist_ok=True)
    identity = {
        f"GIT_{who}_{what}": value
        for who in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "Template Tests"), ("EMAIL", "tests@example.com"))
    }
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", **identity}
    return env | {name: os.environ[name] for name in ("LANG", "TMPDIR") if name in os.environ}


def template_repo(template_dir: Path, parent: Path, env: dict) -> Path:
    """Copy the template's working tree into a new git repository with one commit."""
    repo = parent / TEMPLATE_NAME
    shutil.copytree(template_dir, repo, ignore=TEMPLATE_ONLY)
    git("init", "--quiet", "--initial-branch=main", cwd=repo, env=env)
    commit_all(repo, "Template", env)
    return repo


def change_template(repo: Path, env: dict) -> None:
    """Commit a template change: a line in an existing file, a new module, a new example setting."""
    project = repo / PROJECT
    with (project / "gunicorn.conf.py").open("a") as config:
        config.write(ADDED_LINE + "\n")
    with (project / ".env.example").open("a") as example:
        example.write(ADDED_LINE + "\n")
    (project / PACKAGE / "template_update.py").write_text(NEW_MODULE)
    commit_all(repo, "Change the template", env)


def replace_last_line(path: Path, line: str) -> None:
    """Replace the last line of a file."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:-1], line]) + "\n")


def cruft_create(template: Path, output: Path, env: dict) -> Path:
    """Generate a project with the default answers through cruft, then commit it in a new repo."""
    output.mkdir()
    cruft("create", "--no-input", "--output-dir", str(output), str(template), cwd=output, env=env)
    (project,) = output.iterdir()
    git("init", "--quiet", "--initial-branch=main", cwd=project, env=env)
    commit_all(project, "Generate from the template", env)
    return project


def bake(template: Path, output: Path, answers: dict, env: dict) -> Path:
    """Generate a project with plain cookiecutter and return its folder."""
    pairs = [f"{key}={value}" for key, value in answers.items()]
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(output)]
    run([*command, str(template), *pairs], template.parent, env)
    (project,) = output.iterdir()
    return project


def status(project: Path, env: dict) -> dict[str, str]:
    """Return git's short status as path -> two-letter code, untracked files included."""
    out = git("status", "--porcelain", "--untracked-files=all", cwd=project, env=env)
    return {line[3:]: line[:2] for line in out.splitlines()}


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Return every file below ``root`` as relative path -> (mode, content)."""
    return {
        path.relative_to(root).as_posix(): (path.stat().st_mode, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def updated(template_dir, tmp_path_factory):
    """Create a project, change the template, run cruft check and update; record what happened."""
    root = tmp_path_factory.mktemp("update")
    env = tool_env(root / "home")
    template = template_repo(template_dir, root, env)
    project = cruft_create(template, root / "projects", env)
    record = {"project": project, "template": template, "env": env}
    record["check_fresh"] = cruft("check", cwd=project, env=env, check=False)
    record["dotenv"] = ((project / ".env").read_bytes(), (project / ".env").stat().st_mode)

    config = project / "gunicorn.conf.py"
    config.write_text(LOCAL_LINE + "\n" + config.read_text())
    commit_all(project, "A local change", env)
    change_template(template, env)

    record["check_stale"] = cruft("check", cwd=project, env=env, check=False)
    record["update"] = cruft("update", "-y", cwd=project, env=env, check=False)
    return record


@UPDATED
def test_check_says_a_fresh_project_is_up_to_date(updated):
    """It records the template and commit in .cruft.json, so cruft check passes right away."""
    assert updated["check_fresh"].returncode == 0, updated["check_fresh"].stdout
    state = json.loads((updated["project"] / ".cruft.json").read_text())
    assert state["template"] == str(updated["template"])


@UPDATED
def test_check_says_the_project_is_outdated_after_a_template_change(updated):
    """It makes cruft check exit non-zero once the template has a new commit."""
    check = updated["check_stale"]
    assert check.returncode != 0
    assert "out of date" in check.stdout


@UPDATED
def test_update_applies_the_template_change_and_keeps_local_edits(updated):
    """It brings changed lines and new files into the project, next to the user's own edits."""
    assert updated["update"].returncode == 0, updated["update"].stdout + updated["update"].stderr
    project = updated["project"]
    config = (project / "gunicorn.conf.py").read_text().splitlines()
    assert config[0] == LOCAL_LINE
    assert config[-1] == ADDED_LINE
    assert (project / ".env.example").read_text().splitlines()[-1] == ADDED_LINE
    (module,) = project.glob("*/template_update.py")
    assert module.read_text() == NEW_MODULE


@UPDATED
def test_update_changes_only_what_the_template_changed(updated):
    """It leaves no rejected hunks and no change beyond the template's and .cruft.json."""
    project = updated["project"]
    assert not list(project.rglob("*.rej"))
    changes = status(project, updated["env"])
    assert set(changes) == {
        ".cruft.json",
        ".env.example",
        "gunicorn.conf.py",
        "my_service/template_update.py",
    }
    assert not any("U" in code for code in changes.values()), changes


@UPDATED
def test_update_never_touches_the_env_file(updated):
    """It keeps .env (secrets, mode 0600) byte for byte, though every generation draws new ones."""
    # Without [tool.cruft] skip = [".env"], cruft would patch .env with the secrets of its own
    # two throw-away generations and leave .env.rej behind on every update.
    dotenv = updated["project"] / ".env"
    assert (dotenv.read_bytes(), dotenv.stat().st_mode) == updated["dotenv"]
    assert ADDED_LINE not in dotenv.read_text()


@UPDATED
def test_check_is_satisfied_after_the_update(updated):
    """It records the template's new commit, so cruft check passes again."""
    project, env = updated["project"], updated["env"]
    head = git("rev-parse", "HEAD", cwd=updated["template"], env=env).strip()
    assert json.loads((project / ".cruft.json").read_text())["commit"] == head
    cruft("check", cwd=project, env=env)


@UPDATED
def test_updated_project_passes_its_tests(updated, clean_env):
    """It leaves a project whose own test suite still passes, skipping only the tests that need a
    server. The project is the defaults bake with the changes that
    test_update_changes_only_what_the_template_changed lists (none in its tests), so this is also
    the defaults bake's suite run of tests/test_generation.py."""
    result = run_project_tests(updated["project"], clean_env)
    assert not skips_not_for_a_server(result), result.stdout[-3000:]


def test_conflicting_edit_gets_conflict_markers_not_rejects(template_dir, tmp_path):
    """It marks a line changed both locally and in the template as a git conflict, no *.rej."""
    env = tool_env(tmp_path / "home")
    template = template_repo(template_dir, tmp_path, env)
    project = cruft_create(template, tmp_path / "projects", env)
    dotenv = (project / ".env").read_bytes()
    replace_last_line(project / "gunicorn.conf.py", "# local version of the last line")
    commit_all(project, "A local change", env)
    replace_last_line(
        template / PROJECT / "gunicorn.conf.py", "# template version of the last line"
    )
    commit_all(template, "Change the template", env)

    cruft("update", "-y", cwd=project, env=env)

    text = (project / "gunicorn.conf.py").read_text()
    assert "<<<<<<< ours\n# local version" in text
    assert "=======\n# template version" in text
    assert status(project, env)["gunicorn.conf.py"] == "UU"
    assert not list(project.rglob("*.rej"))
    assert (project / ".env").read_bytes() == dotenv


def documented_link_commands(template_dir: Path, template: Path) -> str:
    """Return docs/updating.md's commands that link a plain cookiecutter bake, for ``template``.

    The page's template address is replaced by ``template``.
    """
    page = (template_dir / "docs" / "updating.md").read_text()
    start = page.index("Generated with plain `cookiecutter`?")
    block = re.search(r"```bash\n(.*?)```", page[start:], re.DOTALL).group(1)
    assert DOCS_TEMPLATE in block
    return block.replace(DOCS_TEMPLATE, str(template))


def test_plain_cookiecutter_bakes_are_linked_with_their_own_answers(template_dir, tmp_path):
    """It links each of two bakes in a row (one HOME) with its own answers, by the documented steps.

    cookiecutter's replay file then holds only the second bake's answers.
    """
    env = tool_env(tmp_path / "home")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # cruft, as the README installs it
    template = template_repo(template_dir, tmp_path, env)
    bakes = {
        "linked-later": {
            "project_name": "Linked Later",
            "use_redis": "no",
            "use_kubernetes": "yes",
        },
        "baked-next": {"project_name": "Baked Next", "use_postgres": "no", "app_server": "granian"},
    }
    projects = {
        slug: bake(template, tmp_path / slug, answers, env) for slug, answers in bakes.items()
    }
    replay = tmp_path / "home" / ".cookiecutter_replay" / f"{TEMPLATE_NAME}.json"
    assert json.loads(replay.read_text())["cookiecutter"]["project_name"] == "Baked Next"

    commands = documented_link_commands(template_dir, template)
    for slug, project in projects.items():
        run(["bash", "-euo", "pipefail", "-c", commands], project, env)
        linked = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
        assert bakes[slug].items() <= linked.items(), slug
        assert status(project, env) == {}, slug  # the last documented step committed the link

    project = projects["linked-later"]
    change_template(template, env)
    assert cruft("check", cwd=project, env=env, check=False).returncode != 0
    cruft("update", "-y", cwd=project, env=env)
    assert (project / "linked_later" / "template_update.py").read_text() == NEW_MODULE
    assert not list(project.rglob("*.rej"))


@pytest.mark.parametrize("combo", [pytest.param(c, id=c.id) for c in COMBINATIONS])
def test_same_answers_give_byte_identical_projects(template_dir, tmp_path, combo):
    """It generates the same files, bytes and modes from the same answers; only .env differs."""
    env = tool_env(tmp_path / "home")
    trees = []
    for name in ("first", "second"):
        project = bake(template_dir, tmp_path / name, combo.answers, env)
        trees.append(snapshot(project))
    first, second = trees
    assert first.pop(".env")[1] != second.pop(".env")[1]  # fresh secrets, and only there
    if combo.selected("use_kubernetes"):
        dev_secret = "deploy/k8s/overlays/dev/secret.env"
        assert first.pop(dev_secret)[1] != second.pop(dev_secret)[1]
    assert first.keys() == second.keys()
    differing = [path for path in first if first[path] != second[path]]
    assert not differing
