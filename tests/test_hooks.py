"""The hooks: answers are validated before anything is written; pruning and secrets work."""

import importlib.util
import json
import re
import shutil

import pytest
from combinations import CHOICES, YES_NO
from cookiecutter.environment import StrictEnvironment
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from developer import TEMPLATE_ONLY
from hook_tables import prune_table
from jinja2.exceptions import UndefinedError

HOOKS = ("pre_gen_project", "post_gen_project")


def default_context(template_dir) -> dict:
    """Return the context cookiecutter hands the hooks for the defaults (--no-input)."""
    context = generate_context(context_file=str(template_dir / "cookiecutter.json"))
    answers = dict(prompt_for_config(context, no_input=True))
    # What cookiecutter adds itself; _checkout is null without --checkout.
    return {**answers, "_template": str(template_dir), "_output_dir": ".", "_checkout": None}


@pytest.fixture
def default_answers(template_dir) -> dict:
    """Return the default answers, without cookiecutter's and the template's private keys."""
    return {k: v for k, v in default_context(template_dir).items() if not k.startswith("_")}


def load_hook(template_dir, tmp_path, name: str, **answers: str):
    """Render a hook with the default answers (or ``answers`` over them); import it as a module."""
    source = (template_dir / "hooks" / f"{name}.py").read_text()
    context = {**default_context(template_dir), **answers}
    rendered = StrictEnvironment().from_string(source).render(cookiecutter=context)
    path = tmp_path / f"{name}.py"
    path.write_text(rendered)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pre_gen(template_dir, tmp_path):
    """Return the rendered pre-gen hook module."""
    return load_hook(template_dir, tmp_path, "pre_gen_project")


@pytest.fixture
def post_gen(template_dir, tmp_path):
    """Return the rendered post-gen hook module."""
    return load_hook(template_dir, tmp_path, "post_gen_project")


def test_default_answers_are_valid(pre_gen, default_answers):
    """It accepts the defaults."""
    assert pre_gen.problems(default_answers) == []


def test_hooks_read_the_answers_as_one_object(template_dir, pre_gen, post_gen, default_answers):
    """It reads every answer, unlisted keys included, from one rendering of the whole context."""
    for name in HOOKS:
        source = (template_dir / "hooks" / f"{name}.py").read_text()
        assert re.findall(r"\{\{.*?\}\}", source) == ["{{ cookiecutter | tojson | tojson }}"], name
    assert pre_gen.ANSWERS == default_answers
    assert post_gen.SELECTED == {option: default_answers[option] == "yes" for option in YES_NO}


BAD_ANSWERS = [
    ("project_name", "   "),
    ("project_name", "!!!"),
    ("project_name", "x" * 81),
    ("project_slug", "123-service"),
    ("project_slug", "acme/orders"),
    ("project_slug", "My Service"),
    ("project_slug", "-leading"),
    ("project_slug", "double--hyphen"),
    ("package_name", "1abc"),
    ("package_name", "has-hyphen"),
    ("package_name", "class"),
    ("package_name", "logging"),
    ("package_name", "flask"),
    ("package_name", "Upper"),
    ("email", "not-an-email"),
    ("email", "a@b"),
    ("python_version", "2.7"),
    ("use_kubernetes", "Y"),
]


@pytest.mark.parametrize(("field", "value"), BAD_ANSWERS + [(option, "maybe") for option in YES_NO])
def test_each_bad_answer_is_named_once(pre_gen, default_answers, field, value):
    """It reports exactly one line naming the field, the value and what is allowed."""
    (line,) = pre_gen.problems({**default_answers, field: value})
    assert line.startswith(f"ERROR: {field}={value!r} is invalid; expected ")


# The answers typed as text: cookiecutter.json refuses most bad ones at once, the hook all of them.
TYPED = ("project_name", "project_slug", "package_name", "email")


@pytest.mark.parametrize(("field", "value"), [row for row in BAD_ANSWERS if row[0] in TYPED])
def test_bad_answer_aborts_generation_with_the_hooks_words(
    cookies, capfd, tmp_path, pre_gen, default_answers, field, value
):
    """It refuses the answer, at once in cookiecutter.json or after the prompts in the hook, each
    with the hook's words, and writes no project file."""
    allowed = pre_gen.refusals({**default_answers, field: value})[field]
    result = cookies.bake(extra_context={field: value})
    assert result.exit_code != 0
    assert not [path for path in (tmp_path / "cookies").rglob("*") if path.is_file()]
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    if isinstance(result.exception, UndefinedError):  # cookiecutter.json's, as the answer came
        expected = f"ERROR: {field}={json.dumps(value)} is invalid; expected {allowed}"
        assert str(result.exception).endswith(f"'{expected}'")
    else:
        assert f"ERROR: {field}={value!r} is invalid; expected {allowed}." in errors


def test_paths_to_prune_follow_the_table(post_gen):
    """It lists exactly the paths of unselected options, and of keys not wholly selected."""
    post_gen.PRUNE = {
        "use_a": ["a"],
        "use_b": ["{package}/b.py"],
        ("use_a", "use_b"): ["a-and-b"],
        ("use_a", "use_c"): ["a-and-c"],
        "server=x": ["x.py"],
        ("use_a", "server=y"): ["a-and-y"],
    }
    answers = {"use_a": "yes", "use_b": "no", "use_c": "yes", "server": "x"}
    assert sorted(post_gen.paths_to_prune(answers, "pkg")) == ["a-and-b", "a-and-y", "pkg/b.py"]
    answers = {"use_a": "no", "use_b": "yes", "use_c": "yes", "server": "y"}
    assert sorted(post_gen.paths_to_prune(answers, "pkg")) == [
        "a",
        "a-and-b",
        "a-and-c",
        "a-and-y",
        "x.py",
    ]


def test_no_file_name_holds_a_condition(template_dir):
    """It chooses files through the PRUNE table only: no Jinja tag in a template file name."""
    project = template_dir / "{{cookiecutter.project_slug}}"
    assert project.is_dir()
    conditional = [str(path.relative_to(project)) for path in project.rglob("*{%*")]
    assert conditional == []


def test_prune_table_names_only_offered_options_and_values():
    """It keys every row by yes/no options or option=value choices cookiecutter.json offers.

    A typo would prune always.
    """
    table = prune_table()
    assert ("use_kubernetes", "use_postgres") in table
    assert ("app_server=granian",) in table
    offered = set(YES_NO) | {
        f"{option}={value}" for option, values in CHOICES.items() for value in values
    }
    for options in table:
        assert set(options) <= offered, options


def test_prune_removes_files_folders_and_emptied_parents(post_gen, tmp_path):
    """It deletes files and folders, then any parent left empty."""
    (tmp_path / "deploy" / "k8s" / "base").mkdir(parents=True)
    (tmp_path / "deploy" / "k8s" / "base" / "a.yaml").write_text("x")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "keep.py").write_text("x")
    (tmp_path / "pkg" / "gone.py").write_text("x")
    post_gen.prune(tmp_path, ["deploy/k8s", "pkg/gone.py", "not/there"])
    assert not (tmp_path / "deploy").exists()
    assert (tmp_path / "pkg" / "keep.py").exists()
    assert not (tmp_path / "pkg" / "gone.py").exists()


def test_write_env_replaces_placeholders(post_gen, tmp_path):
    """It copies .env.example to a private .env with fresh secrets."""
    (tmp_path / ".env.example").write_text("SECRET_KEY=change-me\nPOSTGRES_PASSWORD=change-me\n")
    post_gen.write_env(tmp_path, {"use_postgres": True})
    env = (tmp_path / ".env").read_text()
    assert "change-me" not in env
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / ".env.example").read_text().count("change-me") == 2


def test_write_env_keeps_an_existing_env(post_gen, tmp_path):
    """It leaves an existing .env (a re-bake over a project) and its secrets untouched."""
    (tmp_path / ".env.example").write_text("SECRET_KEY=change-me\n")
    (tmp_path / ".env").write_text("SECRET_KEY=the-users-own-secret\n")
    post_gen.write_env(tmp_path, {"use_postgres": False})
    assert (tmp_path / ".env").read_text() == "SECRET_KEY=the-users-own-secret\n"


def test_hooks_read_any_text_exactly(template_dir, tmp_path):
    """It reads quotes, backslashes, triple quotes, markup and non-ASCII answers unchanged."""
    tricky = 'Ünï "q" \'s\' \\n \\u0041 """ <b>&amp;</b> {{ x }} \U0001f600'
    for name in HOOKS:
        hook = load_hook(template_dir, tmp_path, name, description=tricky, author_name="\\")
        assert hook.CONTEXT["description"] == tricky, name
        assert hook.CONTEXT["author_name"] == "\\", name
        assert hook.CONTEXT["_checkout"] is None, name


def test_rule_refuses_an_answer_without_the_answers_it_needs(pre_gen, default_answers):
    """It names the answer a rule refuses, and the answer it needs beside it, in one line."""
    rule = pre_gen.Rule("use_worker", "yes", {"use_redis": "yes"}, "the worker's queue is Redis")
    answers = {**default_answers, "use_worker": "yes", "use_redis": "no"}
    (line,) = pre_gen.problems(answers, [rule])
    assert line == (
        "ERROR: use_worker='yes' is invalid; expected use_redis='yes' with it "
        "(the worker's queue is Redis)."
    )
    assert pre_gen.problems({**answers, "use_redis": "yes"}, [rule]) == []
    assert pre_gen.problems({**answers, "use_worker": "no"}, [rule]) == []
    # An answer that is itself invalid is reported alone, not again through a rule.
    (line,) = pre_gen.problems({**answers, "use_redis": "maybe"}, [rule])
    assert line.startswith("ERROR: use_redis='maybe' is invalid")


def test_a_rule_row_refuses_the_bake_and_leaves_nothing(template_dir, tmp_path, cookies, capfd):
    """It stops generation on a row added to the pre-gen RULES table, naming the answer."""
    template = tmp_path / "template"
    shutil.copytree(template_dir, template, ignore=TEMPLATE_ONLY)
    hook = template / "hooks" / "pre_gen_project.py"
    row = 'Rule("use_nginx", "yes", {"use_redis": "no"}, "a test rule")'
    hook.write_text(hook.read_text().replace("RULES: list[Rule] = [", f"RULES = [{row},", 1))
    result = cookies.bake(extra_context={"use_nginx": "yes"}, template=str(template))
    assert result.exit_code != 0
    assert not [path for path in (tmp_path / "cookies").rglob("*") if path.is_file()]
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    expected = "ERROR: use_nginx='yes' is invalid; expected use_redis='no' with it (a test rule)."
    assert expected in errors


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        pytest.param(
            {"use_celery": "yes", "use_redis": "no"},
            "ERROR: use_celery='yes' is invalid; expected use_redis='yes' with it "
            "(Celery's broker is Redis).",
            id="celery-without-redis",
        ),
        pytest.param(
            {"use_https": "yes", "use_nginx": "no"},
            "ERROR: use_https='yes' is invalid; expected use_nginx='yes' with it "
            "(Caddy hands every request to nginx).",
            id="https-without-nginx",
        ),
    ],
)
def test_each_rule_refuses_its_combination_in_one_line(cookies, capfd, tmp_path, answers, error):
    """It refuses each real RULES row (Celery without Redis, HTTPS without nginx), naming both
    answers, and writes nothing."""
    result = cookies.bake(extra_context=answers)
    assert result.exit_code != 0
    assert not [path for path in (tmp_path / "cookies").rglob("*") if path.is_file()]
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert errors == [error]


@pytest.mark.xdist_group("grouping-guard")
def test_xdist_groups_are_honoured(request):
    """It records the xdist group in the node id under --dist loadgroup (else bakes repeat)."""
    if request.config.getoption("dist", "no") == "loadgroup":
        assert request.node.nodeid.endswith("@grouping-guard")


def write_example(root, text: str) -> None:
    """Write a Kubernetes secret.env.example under root and make the dev overlay folder."""
    (root / "deploy/k8s/overlays/dev").mkdir(parents=True)
    (root / "deploy/k8s/secret.env.example").write_text(text)


def test_write_dev_secret_fills_each_placeholder_with_its_own_secret(post_gen, tmp_path):
    """It writes a private dev secret.env with a different fresh value for every placeholder."""
    write_example(
        tmp_path,
        "# copy me\nDATABASE_URL=postgresql+psycopg://app:change-me@db:5432/app\n"
        "REDIS_URL=redis://:change-me@cache:6379/0\nSECRET_KEY=change-me\n",
    )
    post_gen.write_dev_secret(tmp_path)
    target = tmp_path / "deploy/k8s/overlays/dev/secret.env"
    values = dict(
        line.split("=", 1) for line in target.read_text().splitlines() if not line.startswith("#")
    )
    assert set(values) == {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
    assert "change-me" not in target.read_text()
    assert len(values["SECRET_KEY"]) >= 40
    password = values["DATABASE_URL"].split(":")[2].split("@")[0]
    redis_password = values["REDIS_URL"].split(":")[2].split("@")[0]
    assert len({password, redis_password, values["SECRET_KEY"]}) == 3
    assert target.stat().st_mode & 0o777 == 0o600


def test_write_dev_secret_keeps_an_existing_file(post_gen, tmp_path):
    """It leaves the developer's own dev secret.env untouched."""
    write_example(tmp_path, "SECRET_KEY=change-me\n")
    target = tmp_path / "deploy/k8s/overlays/dev/secret.env"
    target.write_text("SECRET_KEY=mine\n")
    post_gen.write_dev_secret(tmp_path)
    assert target.read_text() == "SECRET_KEY=mine\n"


def test_the_answers_are_written_without_private_keys(post_gen, tmp_path):
    """It writes every answer as JSON, and none of cookiecutter's or the template's "_" keys."""
    post_gen.write_answers(tmp_path, {"project_name": "Ünïcode", "_template": "x", "__check": ""})
    text = (tmp_path / post_gen.ANSWERS_FILE).read_text(encoding="utf-8")
    assert json.loads(text) == {"project_name": "Ünïcode"}
    assert text.endswith("}\n")


def test_next_step_names_the_folder_as_the_shell_reaches_it(post_gen, tmp_path, monkeypatch):
    """It names the folder relative to the shell's, else absolute; none for a bake out of sight
    (cruft's update writes in a temporary folder and hands no _output_dir)."""
    project = tmp_path / "my service"
    project.mkdir()
    monkeypatch.setenv("PWD", str(tmp_path))
    assert post_gen.next_step(project, {}).endswith("\n  cd 'my service' && make demo")
    monkeypatch.setenv("PWD", "/")
    step = post_gen.next_step(project, {"_output_dir": str(tmp_path)})
    assert step.endswith(f"\n  cd '{project}' && make demo")
    assert post_gen.next_step(project, {}) is None
