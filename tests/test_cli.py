"""The cookiecutter CLI, with --no-input or typed answers, gives a service that gunicorn serves."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from developer import request
from loopback import free_port

README = Path(__file__).resolve().parents[1] / "README.md"

# What the user types; Enter takes the default of every other prompt.
TYPED = {
    "project_name": "Orders API",
    "description": "Ships orders",
    "author_name": "Ada",
    "email": "ada@example.org",
    "python_version": "3.13",
    "use_postgres": "no",
}


def keystrokes(template_dir: Path, answers: dict[str, str]) -> str:
    """Return the lines typed at cookiecutter.json's prompts, in order: a choice by its number."""
    context = json.loads((template_dir / "cookiecutter.json").read_text())
    lines = []
    for key in (key for key in context if not key.startswith("_")):
        choices = context[key] if isinstance(context[key], list) else None
        if key not in answers:
            lines.append("")
        elif choices:
            lines.append(str(choices.index(answers[key]) + 1))
        else:
            lines.append(answers[key])
    return "".join(line + "\n" for line in lines)


def cookiecutter(
    template_dir,
    output: Path,
    args: list[str],
    stdin: str | None = None,
    check: bool = True,
    merged: bool = False,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run the cookiecutter CLI with a private HOME (no replay or config leaks).

    ``args`` are options, then ``key=value`` answers, which the CLI takes after the template.
    ``merged`` puts stderr into stdout, in the order a terminal shows them. ``cwd`` runs it there,
    as a shell in that folder does (its PWD too).
    """
    options = [arg for arg in args if "=" not in arg]
    answers = [arg for arg in args if "=" in arg]
    env = {**os.environ, "HOME": str(output / "home")}
    if cwd:
        env["PWD"] = str(cwd)
    cli = Path(sys.executable).with_name("cookiecutter")
    return subprocess.run(
        [str(cli), "-o", str(output), *options, str(template_dir), *answers],
        input=stdin,
        env=env,
        cwd=cwd,
        check=check,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        text=True,
        timeout=120,
    )


def serve_and_probe(project: Path, package: str, clean_env: dict, tmp_path: Path) -> None:
    """Migrate (with migrations), start gunicorn with the project's config; probe the API."""
    port = free_port()
    env = {
        **clean_env,
        "APP_ENV": "development",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }
    if (project / "migrations").is_dir():  # the schema comes from the migrations only
        flask = [sys.executable, "-m", "flask", "--app", f"{package}:create_app()"]
        upgrade = [*flask, "db", "upgrade"]
        subprocess.run(upgrade, cwd=project, env=env, check=True, capture_output=True, timeout=120)
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [*command, f"{package}:create_app()"], cwd=project, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # up to ~10 s for the first answer
            try:
                if request(base + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail((tmp_path / "gunicorn.log").read_text())
        assert request(base + "/readyz")[0] == 200
        status, item = request(base + "/api/items", {"name": "from the CLI test"})
        assert status == 201
        assert request(f"{base}/api/items/{item['id']}") == (200, item)
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0
        log.close()


@pytest.mark.xdist_group("cli")
def test_no_input_bake_serves(template_dir, tmp_path, clean_env):
    """It generates the defaults with --no-input, and gunicorn serves them."""
    cookiecutter(template_dir, tmp_path, ["--no-input"])
    serve_and_probe(tmp_path / "my-service", "my_service", clean_env, tmp_path)


@pytest.mark.xdist_group("cli")
def test_typed_answers_bake_serves(template_dir, tmp_path, clean_env):
    """It takes answers typed at the prompts, and gunicorn serves the result."""
    cookiecutter(template_dir, tmp_path, [], stdin=keystrokes(template_dir, TYPED))
    project = tmp_path / "orders-api"
    assert (project / "tests" / "platform" / "test_redis_client.py").exists()
    assert not (project / "migrations").exists()
    workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert 'python-version: "3.13"' in workflow
    serve_and_probe(project, "orders_api", clean_env, tmp_path)


@pytest.mark.xdist_group("cli")
def test_a_name_with_punctuation_gives_a_valid_slug_and_package(template_dir, tmp_path):
    """It slugifies the project name: "Acme/Orders" bakes acme-orders with package acme_orders."""
    cookiecutter(template_dir, tmp_path, ["--no-input", "project_name=Acme/Orders"])
    assert (tmp_path / "acme-orders" / "acme_orders" / "settings" / "__init__.py").is_file()
    baked = [path.name for path in tmp_path.iterdir() if path.name != "home"]
    assert baked == ["acme-orders"]


REFUSED = [
    ("project_slug=acme/orders", 'ERROR: project_slug="acme/orders" is invalid; expected '),
    ("project_slug=Acme Orders", 'ERROR: project_slug="Acme Orders" is invalid; expected '),
    ("email=nope", 'ERROR: email="nope" is invalid; expected '),
    ("project_name=   ", 'ERROR: project_name="   " is invalid; expected 1 to 80 printable'),
    ("project_slug=", 'ERROR: project_slug="" is invalid; expected lower-case letters'),
    ("package_name=logging", "ERROR: package_name='logging' is invalid; expected "),
]


@pytest.mark.xdist_group("cli")
@pytest.mark.parametrize(("answer", "message"), REFUSED)
def test_a_refused_answer_leaves_no_folder_behind(template_dir, tmp_path, answer, message):
    """It exits 1 naming the answer, and the output folder holds nothing, not even an empty one."""
    output = tmp_path / "out"
    output.mkdir()
    result = cookiecutter(template_dir, output, ["--no-input", answer], check=False)
    assert result.returncode == 1
    assert message in result.stderr + result.stdout
    assert written(output) == []


def written(output: Path) -> list[str]:
    """Return what a bake left in its output folder (the private HOME aside)."""
    return [path.name for path in output.iterdir() if path.name != "home"]


def readme_refusals() -> list[tuple[list[str], str, list[str]]]:
    """Return the README's table of refusals: the answers, "first" or "last", the lines to read."""
    text = README.read_text()
    table = text.split("| you give | refused by | the line to read |\n")[1].split("\n\n")[0]
    rows = []
    for row in table.splitlines()[1:]:  # below the header's separator
        given, _, shown = (cell.strip() for cell in row.strip("|").split(" | "))
        where = "first" if shown.startswith("the first lines") else "last"
        rows.append((given.strip("`").split(), where, re.findall(r"`([^`]+)`", shown)))
    return rows


def shown_as(pattern: str, line: str) -> bool:
    """Say whether ``line`` is what the README shows, its "..." standing for any text."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("..."))), line) is not None


@pytest.mark.xdist_group("cli")
@pytest.mark.parametrize(
    ("answers", "where", "lines"),
    [pytest.param(*row, id=" ".join(row[0])) for row in readme_refusals()],
)
def test_each_refusal_prints_the_lines_the_readme_shows(
    template_dir, tmp_path, answers, where, lines
):
    """It prints the README's lines to read, where the README says, and writes nothing."""
    output = tmp_path / "out"
    output.mkdir()
    result = cookiecutter(template_dir, output, ["--no-input", *answers], check=False, merged=True)
    printed = result.stdout.splitlines()
    shown = printed[: len(lines)] if where == "first" else printed[-1:]
    assert len(shown) == len(lines), result.stdout
    assert all(map(shown_as, lines, shown)), result.stdout
    assert result.returncode == 1
    assert written(output) == []


# Bad answers typed at the prompts -> the prompt that must not come next.
TYPED_REFUSALS = [
    ({"project_name": "!!!"}, "project_slug"),
    ({"project_name": "   "}, "project_slug"),
    ({"project_name": "x" * 81}, "project_slug"),
    ({"project_slug": "acme/orders"}, "package_name"),
    ({"project_slug": "123-service"}, "package_name"),
    ({"project_slug": "acme--orders"}, "package_name"),
    ({"package_name": "1x"}, "description"),
    ({"package_name": "Orders"}, "description"),
    ({"email": "nope"}, "python_version"),
    ({"email": "ada@example"}, "python_version"),
]


@pytest.mark.xdist_group("cli")
@pytest.mark.parametrize(("typed", "next_prompt"), TYPED_REFUSALS)
def test_a_bad_answer_is_refused_at_once(template_dir, tmp_path, typed, next_prompt):
    """It stops right after the bad answer is typed, naming its field, before the next prompt."""
    output = tmp_path / "out"
    output.mkdir()
    stdin = keystrokes(template_dir, typed)
    result = cookiecutter(template_dir, output, [], stdin=stdin, check=False)
    prompts = json.loads((template_dir / "cookiecutter.json").read_text())["__prompts__"]
    (field,) = typed
    assert result.returncode == 1
    assert prompts[field] in result.stdout
    assert prompts[next_prompt] not in result.stdout
    assert f"'ERROR: {field}=" in result.stderr.splitlines()[-1]
    assert written(output) == []


@pytest.mark.xdist_group("cli")
def test_a_name_starting_with_a_digit_offers_and_bakes_valid_names(template_dir, tmp_path):
    """It offers app-123-service and app_123_service for "123 Service", and bakes them on Enter."""
    stdin = keystrokes(template_dir, {"project_name": "123 Service"})
    result = cookiecutter(template_dir, tmp_path, [], stdin=stdin)
    prompts = json.loads((template_dir / "cookiecutter.json").read_text())["__prompts__"]
    shown = " ".join(result.stdout.split())  # rich wraps the prompts at 80 columns
    assert f"{prompts['project_slug']} (app-123-service)" in shown
    assert f"{prompts['package_name']} (app_123_service)" in shown
    assert (tmp_path / "app-123-service" / "app_123_service" / "__init__.py").is_file()


@pytest.mark.xdist_group("cli")
def test_a_long_name_derives_a_slug_cut_at_a_word(template_dir, tmp_path):
    """It cuts the slug of a 75-character name at a word, within the slug's 50 characters."""
    name = "Regional Warehouse Inventory Reconciliation And Forecasting Service Backend"
    cookiecutter(template_dir, tmp_path, ["--no-input", f"project_name={name}"])
    slug = "regional-warehouse-inventory-reconciliation-and"
    assert (tmp_path / slug / slug.replace("-", "_") / "__init__.py").is_file()


@pytest.mark.xdist_group("cli")
def test_a_refusal_after_the_prompts_says_how_to_generate_again(template_dir, tmp_path):
    """It names cookiecutter's replay file and the command; corrected there, the command bakes."""
    output = tmp_path / "out"
    output.mkdir()
    result = cookiecutter(template_dir, output, ["--no-input", "package_name=logging"], check=False)
    assert result.returncode == 1
    hint = result.stderr.splitlines()[1]
    saved, command = re.fullmatch(
        "The answers are saved in (.+): correct package_name there,"
        " then generate without the prompts: (cookiecutter .+)",
        hint,
    ).groups()
    replay = Path(saved.replace("~", str(output / "home"), 1))
    replay.write_text(replay.read_text().replace('"logging"', '"orders_logs"'))
    assert written(output) == []
    env = {**os.environ, "HOME": str(output / "home")}
    cli = str(Path(sys.executable).with_name("cookiecutter"))
    command = [cli, *shlex.split(command)[1:]]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
    assert (output / "my-service" / "orders_logs" / "__init__.py").is_file()


@pytest.mark.xdist_group("cli")
@pytest.mark.parametrize("here", [True, False], ids=["in-the-folder", "elsewhere"])
def test_a_bake_ends_with_the_commands_that_serve_it(template_dir, tmp_path, here):
    """It prints the folder to enter (as the shell reaches it) and make demo, which exists."""
    output = tmp_path / "out"
    output.mkdir()
    shell = output if here else tmp_path
    result = cookiecutter(template_dir, output, ["--no-input"], cwd=shell)
    where = "my-service" if here else str(output / "my-service")
    assert result.stdout.splitlines()[-2:] == [
        "Next, to serve it on http://127.0.0.1:8000:",
        f"  cd {where} && make demo",
    ]
    if here:  # the README's first commands end with the same line
        assert f"\n{result.stdout.splitlines()[-1].strip()}   # " in README.read_text()
    dry_run = result.stdout.splitlines()[-1].replace("make demo", "make --dry-run demo")
    subprocess.run(["bash", "-c", dry_run], cwd=shell, check=True, capture_output=True, timeout=60)


def test_the_readme_says_what_to_replace_in_its_commands():
    """It tells, for each upper-case placeholder in a command's address, what to put there."""
    text = README.read_text()
    placeholders = set(re.findall(r"https://\S+?/([A-Z][A-Z_]+)/", text))
    assert placeholders
    for word in placeholders:
        assert f"Replace `{word}` with " in text, word
