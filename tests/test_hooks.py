"""The hooks: answers are validated before anything is written; pruning and secrets work."""

import importlib.util
import json

import pytest
from cookiecutter.environment import StrictEnvironment
from hook_tables import HOOK as POST_GEN_HOOK

DEFAULT_ANSWERS = {
    "project_name": "My Service",
    "project_slug": "my-service",
    "package_name": "my_service",
    "email": "you@example.com",
    "python_version": "3.12",
    "use_postgres": "yes",
    "use_redis": "yes",
    "use_nginx": "no",
    "use_kubernetes": "no",
}


def load_hook(template_dir, tmp_path, name: str):
    """Render a hook with the default answers and import it as a module."""
    context = json.loads((template_dir / "cookiecutter.json").read_text())
    cookiecutter = {**context, **DEFAULT_ANSWERS}
    source = (template_dir / "hooks" / f"{name}.py").read_text()
    rendered = StrictEnvironment().from_string(source).render(cookiecutter=cookiecutter)
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


def test_default_answers_are_valid(pre_gen):
    """It accepts the defaults."""
    assert pre_gen.problems(DEFAULT_ANSWERS) == []


BAD_ANSWERS = [
    ("project_name", "   "),
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
    ("use_postgres", "maybe"),
    ("use_kubernetes", "Y"),
]


@pytest.mark.parametrize(("field", "value"), BAD_ANSWERS)
def test_each_bad_answer_is_named_once(pre_gen, field, value):
    """It reports exactly one line naming the field, the value and what is allowed."""
    (line,) = pre_gen.problems({**DEFAULT_ANSWERS, field: value})
    assert line.startswith(f"ERROR: {field}={value!r} is invalid; expected ")


@pytest.mark.parametrize(
    ("field", "value"), [("project_slug", "My Service"), ("email", "nope"), ("package_name", "1x")]
)
def test_bad_answer_aborts_generation_and_leaves_nothing(cookies, capfd, tmp_path, field, value):
    """It exits non-zero with a clear line naming the field and writes no project file."""
    result = cookies.bake(extra_context={field: value})
    assert result.exit_code != 0
    assert not [path for path in (tmp_path / "cookies").rglob("*") if path.is_file()]
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert any(
        line.startswith(f"ERROR: {field}={value!r} is invalid; expected ") for line in errors
    )


def test_paths_to_prune_follow_the_table(post_gen):
    """It lists exactly the paths of unselected options."""
    selected = {
        "use_postgres": True,
        "use_redis": False,
        "use_nginx": False,
        "use_kubernetes": True,
    }
    paths = post_gen.paths_to_prune(selected, "pkg")
    assert "pkg/redis_store.py" in paths
    assert "nginx" in paths
    assert "migrations" not in paths
    assert "deploy/k8s" not in paths


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


def test_post_gen_hook_reads_each_option_once():
    """It reads every option in one table at the top of the hook."""
    source = POST_GEN_HOOK.read_text()
    for option in ("use_postgres", "use_redis", "use_nginx", "use_kubernetes"):
        assert source.count("cookiecutter." + option) == 1


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
