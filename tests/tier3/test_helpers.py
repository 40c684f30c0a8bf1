"""The tier-3 helpers read names from files and write the host-network override correctly."""

from __future__ import annotations

import pytest
from combinations import DEFAULTS, PYTHON_VERSIONS, SERVED

from .matrix import DOCKER, TIER3, with_pythons
from .project import base_images, major_version, stand_in_kind, tmpfs_mounts
from .stack import PROBE_INTERVAL, duration_seconds, faster_probe, host_network_override
from .standins import _base_kind, debian_mirror, python_minor, tag_version
from .tracing import Span, request_trace_problems

pytestmark = DOCKER

DOCKERFILE = """\
# syntax comment
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
FROM ${PYTHON_IMAGE} AS builder
RUN echo build
FROM --platform=linux/amd64 $PYTHON_IMAGE
COPY --from=builder /opt/venv /opt/venv
FROM builder AS again
"""


def test_base_images_resolves_arg_defaults_and_skips_stages(tmp_path):
    """It names each base image once, with ARG defaults filled in and stage names left out."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(DOCKERFILE)
    assert base_images(dockerfile) == ["python:3.12.12-slim-bookworm"]


@pytest.mark.parametrize(
    ("image", "kind", "major"),
    [
        ("postgres:17.6-bookworm", "postgres", 17),
        ("redis:7.4.7-bookworm", "redis", 7),
        ("nginxinc/nginx-unprivileged:1.28.0", "nginx", 1),
        ("docker.io/library/postgres:18@sha256:abc", "postgres", 18),
    ],
)
def test_stand_in_kind_and_major_version_come_from_the_image_name(image, kind, major):
    """It maps an official image to its stand-in and reads the tag's major version."""
    assert stand_in_kind(image) == kind
    assert major_version(image) == major


def test_unknown_image_has_no_stand_in():
    """It refuses an image no stand-in recipe covers."""
    with pytest.raises(LookupError):
        stand_in_kind("mysql:8")


def test_debian_mirror_reads_one_line_and_deb822_sources():
    """It finds the mirror serving bookworm main in either apt sources format."""
    one_line = {"sources.list": "# c\ndeb [arch=amd64] http://one.example/debian bookworm main\n"}
    deb822 = {
        "sources.list.d/debian.sources": (
            "Types: deb\nURIs: http://two.example/debian\nSuites: bookworm bookworm-updates\n"
            "Components: main\n\nTypes: deb\nURIs: http://sec.example\nSuites: bookworm-security\n"
            "Components: main\n"
        )
    }
    assert debian_mirror(one_line) == "http://one.example/debian"
    assert debian_mirror(deb822) == "http://two.example/debian"
    assert debian_mirror(deb822, "bookworm-security") == "http://sec.example"
    with pytest.raises(RuntimeError):
        debian_mirror(deb822, "forky")


@pytest.mark.parametrize(
    ("image", "kind", "version"),
    [
        ("python:3.14.8-slim-trixie", "python", "3.14.8"),
        ("python:3.13.15-slim-trixie@sha256:abc", "python", "3.13.15"),
        ("ghcr.io/astral-sh/uv:0.13.8", "uv", "0.13.8"),
        ("node:24.21.0-trixie-slim", "node", "24.21.0"),
        ("nginxinc/nginx-unprivileged:1.30.6", "nginx", "1.30.6"),
        ("caddy:2.11.7", "caddy", "2.11.7"),
        ("caddy:2.11.7-alpine", "caddy", "2.11.7"),
    ],
)
def test_base_image_stand_in_and_tag_version(image, kind, version):
    """It picks a base image's stand-in by its repository and reads the version its tag names."""
    assert _base_kind(image) == kind
    assert tag_version(image) == version


def test_python_stand_in_only_for_packaged_versions():
    """It reads the minor version of a python tag, and refuses one Debian does not package."""
    assert python_minor("python:3.15.0-slim-trixie") == "3.15"
    with pytest.raises(LookupError, match=r"python:3\.9\.20"):
        python_minor("python:3.9.20-slim-bookworm")


def test_tier3_spreads_every_python_over_the_served_rows():
    """Each offered Python builds at least once, the defaults row keeps the default, no row more."""
    versions = [combo.value("python_version") for combo in TIER3]
    assert set(versions) == set(PYTHON_VERSIONS)
    assert len(TIER3) == len(SERVED)
    at_defaults = [
        combo.value("python_version")
        for combo in TIER3
        if all(DEFAULTS[o] == v for o, v in combo.answers.items() if o != "python_version")
    ]
    assert at_defaults == [DEFAULTS["python_version"]]
    assert len({combo.id for combo in TIER3}) == len(TIER3)
    one = with_pythons(SERVED[:1])  # one row cannot hold three versions: rows are added
    assert sorted(c.value("python_version") for c in one) == sorted(PYTHON_VERSIONS)


def test_tmpfs_mounts_reads_both_syntaxes():
    """It lists tmpfs mounts from the short list and from long-syntax volumes."""
    service = {"tmpfs": ["/tmp"], "volumes": [{"type": "tmpfs", "target": "/run"}]}
    assert tmpfs_mounts(service) == ["/tmp", "/run"]


NGINX = {
    "image": "nginxinc/nginx-unprivileged:1.28.0",
    "ports": [{"target": 8080, "published": "8000"}],
    "environment": {"NGINX_PORT": "8080", "NGINX_UPSTREAM_PORT": "8000"},
}


@pytest.mark.parametrize(
    ("value", "seconds"), [("10s", 10), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("1.5s", 1.5)]
)
def test_duration_seconds_reads_compose_durations(value, seconds):
    """It reads the durations compose files write."""
    assert duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["", "10", "ten s", "10s later"])
def test_duration_seconds_refuses_what_is_not_a_duration(value):
    """It fails on anything else rather than read part of it."""
    with pytest.raises(AssertionError, match="not a duration"):
        duration_seconds(value)


@pytest.mark.parametrize(
    ("health", "interval", "retries"),
    [
        ({"interval": "10s", "retries": 3}, "2s", 15),  # the web's probe: 30 s of failures
        ({"interval": "30s", "retries": 3, "start_period": "30s"}, "5s", 18),  # Celery's
        ({"test": ["CMD", "true"]}, "2s", 45),  # Docker's defaults: 30 s x 3
        ({"interval": "5s", "retries": 10}, "2s", 25),
        ({"interval": "1s", "retries": 1}, "2s", 1),
    ],
)
def test_faster_probes_keep_the_generated_window_of_failures(health, interval, retries):
    """Probing more often keeps the time a service may fail its probes before it is unhealthy."""
    assert faster_probe(health, interval) == {"interval": interval, "retries": retries}


def test_override_probes_often_and_waits_as_long_as_the_generated_stack():
    """Every healthcheck probes every PROBE_INTERVAL in the override (Celery's every 5 s), with
    the retries that keep the generated interval x retries."""
    config = {
        "services": {
            "web": {
                "build": {"context": "."},
                "healthcheck": {"test": ["CMD", "true"], "interval": "10s", "retries": 3},
            },
            "worker": {
                "build": {"context": "."},
                "command": ["celery", "worker"],
                "healthcheck": {"test": ["CMD", "true"], "interval": "30s", "retries": 3},
            },
            "nginx": {**NGINX, "healthcheck": {"test": ["CMD", "true"], "disable": True}},
        }
    }
    override = host_network_override(config, {"web": 1001, "worker": 1002, "nginx": 1003})
    services = override["services"]
    assert services["web"]["healthcheck"] == {"interval": PROBE_INTERVAL, "retries": 15}
    assert services["worker"]["healthcheck"] == {"interval": "5s", "retries": 18}
    assert "healthcheck" not in services["nginx"]


def test_override_moves_every_service_to_its_loopback_port():
    """It puts services on the host network and points every reference at the new ports."""
    config = {
        "services": {
            "web": {
                "build": {"context": "."},
                "environment": {
                    "PORT": "8000",
                    "DATABASE_URL": "postgresql+psycopg://u:p@postgres:5432/db",
                    "REDIS_URL": "redis://redis:6379/0",
                },
            },
            "postgres": {"image": "postgres:17.6-bookworm"},
            "redis": {
                "image": "redis:7.4.7-bookworm",
                "command": ["redis-server", "--maxmemory", "192mb"],
                "healthcheck": {"test": ["CMD-SHELL", "redis-cli ping | grep -q PONG"]},
            },
            "nginx": NGINX,
        }
    }
    ports = {"web": 1001, "postgres": 1002, "redis": 1003, "nginx": 1004}
    override = host_network_override(config, ports)["services"]
    assert {svc["network_mode"] for svc in override.values()} == {"host"}
    assert "postgres:127.0.0.1" in override["web"]["extra_hosts"]
    assert override["web"]["environment"] == {
        "PORT": "1001",
        "HOST": "127.0.0.1",
        "DATABASE_URL": "postgresql+psycopg://u:p@postgres:1002/db",
        "REDIS_URL": "redis://redis:1003/0",
    }
    assert override["postgres"]["command"] == [
        "postgres",
        "-p",
        "1002",
        "-c",
        "listen_addresses=127.0.0.1",
    ]
    assert override["postgres"]["environment"] == {"PGPORT": "1002"}
    assert override["redis"]["command"] == [
        *["redis-server", "--maxmemory", "192mb"],
        *["--port", "1003", "--bind", "127.0.0.1"],
    ]
    assert override["redis"]["healthcheck"]["test"][1] == "redis-cli -p 1003 ping | grep -q PONG"
    assert override["nginx"]["environment"] == {"NGINX_PORT": "1004", "NGINX_UPSTREAM_PORT": "1001"}
    assert override["nginx"]["ports"] == []


def test_override_points_nginx_at_the_web_when_workers_share_its_port():
    """It gives nginx the web's new port, not that of a worker built from the same image."""
    app = {"build": {"context": "."}, "environment": {"PORT": "8000"}}
    config = {
        "services": {
            "web": app,
            "worker": {**app, "command": ["celery", "worker"]},
            "scheduler": {**app, "command": ["celery", "beat"]},
            "nginx": NGINX,
        }
    }
    ports = {"web": 1001, "worker": 1002, "scheduler": 1003, "nginx": 1004}
    override = host_network_override(config, ports)["services"]
    assert override["nginx"]["environment"] == {"NGINX_PORT": "1004", "NGINX_UPSTREAM_PORT": "1001"}


def test_override_moves_jaegers_query_receiver_and_health_ports():
    """It gives Jaeger `--set` endpoints on loopback for its query API, OTLP/HTTP receiver and
    health extension, and points its healthcheck at the moved health port."""
    probe = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:13133/status"]
    config = {
        "services": {
            "jaeger": {
                "image": "jaegertracing/jaeger:2.22.0",
                "profiles": ["tracing"],
                "ports": [{"target": 16686, "published": "16686"}, {"target": 4318}],
                "healthcheck": {"test": probe},
            }
        }
    }
    sides = {"jaeger": {"otlp": 2002, "health": 2003}}
    (jaeger,) = host_network_override(config, {"jaeger": 2001}, sides)["services"].values()
    assert jaeger["command"] == [
        "--set=extensions.jaeger_query.http.endpoint=127.0.0.1:2001",
        "--set=receivers.otlp.protocols.http.endpoint=127.0.0.1:2002",
        "--set=extensions.healthcheckv2.http.endpoint=127.0.0.1:2003",
    ]
    assert jaeger["healthcheck"]["test"][-1] == "http://127.0.0.1:2003/status"
    assert jaeger["ports"] == [] and jaeger["network_mode"] == "host"


def test_override_moves_mailpits_api_and_smtp_ports_and_the_apps_mail_url():
    """It moves Mailpit's HTTP API and SMTP port with MP_UI_BIND_ADDR and MP_SMTP_BIND_ADDR (its
    healthcheck, `/mailpit readyz`, reads the first) and points the app's MAIL_URL at SMTP."""
    app = {"build": {"context": "."}, "environment": {"MAIL_URL": "smtp://mailpit:1025"}}
    mailpit = {
        "image": "axllent/mailpit:v1.31.1",
        "ports": [{"target": 8025, "published": "8025"}, {"target": 1025, "published": "1025"}],
        "healthcheck": {"test": ["CMD", "/mailpit", "readyz"]},
    }
    config = {"services": {"web": app, "mailpit": mailpit}}
    ports, sides = {"web": 3001, "mailpit": 3002}, {"mailpit": {"smtp": 3003}}
    override = host_network_override(config, ports, sides)["services"]
    assert override["mailpit"]["environment"] == {
        "MP_UI_BIND_ADDR": "127.0.0.1:3002",
        "MP_SMTP_BIND_ADDR": "127.0.0.1:3003",
    }
    assert override["web"]["environment"]["MAIL_URL"] == "smtp://mailpit:3003"
    assert override["mailpit"]["ports"] == [] and override["mailpit"]["network_mode"] == "host"


def _traced_config() -> dict:
    """Return a compose model of a web and a Celery worker, each naming its spans."""
    app = {"build": {"context": "."}, "restart": "unless-stopped"}
    app["environment"] = {"OTEL_SERVICE_NAME": "shop"}
    worker = {"environment": {"OTEL_SERVICE_NAME": "shop-worker"}, "command": ["celery", "worker"]}
    return {"services": {"web": app, "worker": {**app, **worker}}}


def test_request_trace_problems_name_what_the_trace_lacks():
    """It accepts a request's whole trace and names each part missing or misplaced."""
    whole = [
        Span("s1", "caller", "POST /api/items", "server", "shop"),
        Span("s2", "s1", "INSERT shop", "client", "shop"),
        Span("s3", "s1", "send shop.tasks.process_item", "producer", "shop"),
        Span("s4", "s3", "run shop.tasks.process_item", "consumer", "shop-worker"),
        Span("s5", "s4", "UPDATE shop", "client", "shop-worker"),
    ]
    config = _traced_config()
    assert request_trace_problems(config, whole, "caller") == []
    assert request_trace_problems(config, whole, "another") == [
        "the server span's parent is 'caller', not the caller another"
    ]
    (lacking,) = request_trace_problems(config, whole[:3], "caller")
    assert "0 CONSUMER spans of shop-worker" in lacking
    assert request_trace_problems(config, [*whole[:1], *whole[2:]], "caller") == [
        "no INSERT span below the server span"
    ]
    assert request_trace_problems(config, whole[:4], "caller") == [
        "no UPDATE span below shop-worker's CONSUMER span"
    ]
    assert request_trace_problems(config, whole[1:], "caller") == [
        "0 SERVER spans 'POST /api/items' of shop, expected one"
    ]
