"""Run a generated compose stack on the host network: a test-only override with loopback ports.

The override (written by the tests into a temporary folder, never into the project) puts every
service on `network_mode: host`, maps every service name to 127.0.0.1 with `extra_hosts`, drops
published ports, and moves each service to a free loopback port through the interface its image
documents: the app's PORT and HOST, postgres `-p` (and PGPORT for pg_isready), redis `--port`,
the nginx template's *_PORT variables, the Caddyfile's CADDY_HTTP_PORT, CADDY_HTTPS_PORT and
UPSTREAM with Caddy's own CADDY_ADMIN (its admin API, which the healthcheck asks), and Jaeger's
`--set` endpoints (its query port, OTLP/HTTP receiver and health extension), and Mailpit's
MP_UI_BIND_ADDR and MP_SMTP_BIND_ADDR (its HTTP API, which its healthcheck asks, and its SMTP
port, which the app's MAIL_URL names). So no traffic goes to a container bridge address. A stack
opened with profiles starts their services too. A second test-only override (acme_override)
points an HTTPS stack's Caddy at the tests' ACME CA.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import project_files
import yaml

from .engine import DockerEngine, DockerError
from .net import Endpoint, free_port, request
from .project import stand_in_kind

# Ports the official images listen on unless told otherwise.
IMAGE_PORTS = {
    "postgres": 5432,
    "redis": 6379,
    "nginx": 8080,
    "caddy": 443,
    "jaeger": 16686,
    "mailpit": 8025,
}
# The Caddyfile's default upstream (UPSTREAM) and Caddy's default admin address (CADDY_ADMIN).
CADDY_UPSTREAM = "nginx:8080"
CADDY_ADMIN = "127.0.0.1:2019"
# Jaeger's health extension, which its healthcheck asks, and the `--set` keys of its endpoints.
JAEGER_HEALTH = "127.0.0.1:13133"
JAEGER_ENDPOINTS = {
    "query": "extensions.jaeger_query.http.endpoint",
    "otlp": "receivers.otlp.protocols.http.endpoint",
    "health": "extensions.healthcheckv2.http.endpoint",
}
# The other loopback ports each kind of service listens on besides its main one.
SIDE_PORTS = {"caddy": ("http", "admin"), "jaeger": ("otlp", "health"), "mailpit": ("smtp",)}
# The side ports other services name in URLs ("mailpit:1025" in MAIL_URL), moved like main ports.
NAMED_SIDE_PORTS = {"mailpit": {"smtp": 1025}}
# Where an HTTPS stack's Caddy finds the ACME CA's listener certificate (SSL_CERT_FILE).
CA_FILE_IN_CONTAINER = "/run/tier3/acme-ca-listener.pem"
APP_PORT = 8000  # the app's default PORT
UP_TIMEOUT = 240

READY_TIMEOUT = 60
PROCESSED_TIMEOUT = 60  # seconds for the worker container to process a posted item
PROBE_INTERVAL = "2s"  # healthchecks of the stacks under test (the generated intervals are longer)
# Docker's healthcheck defaults, where a generated healthcheck leaves a key out.
PROBE_DEFAULTS = {"interval": "30s", "retries": 3}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def duration_seconds(value: str) -> float:
    """Return a compose duration ("10s", "1m30s", "500ms") in seconds."""
    parts = _DURATION.findall(value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def faster_probe(health: dict, interval: str) -> dict:
    """Return the healthcheck keys that probe every `interval` and still let a service fail its
    probes for as long as the generated healthcheck does (interval x retries, after its
    start_period) before it counts as unhealthy: probing more often must not make a slow start
    on a busy machine fail where the generated stack would have waited."""
    window = duration_seconds(str(health.get("interval", PROBE_DEFAULTS["interval"])))
    window *= int(health.get("retries", PROBE_DEFAULTS["retries"]))
    return {"interval": interval, "retries": max(1, math.ceil(window / duration_seconds(interval)))}


class _Reset(list):
    """A compose `!reset` value: drop what the base file set."""


class _Dumper(yaml.SafeDumper):
    """A YAML dumper that writes `!reset []`."""


_Dumper.add_representer(_Reset, lambda dumper, _: dumper.represent_sequence("!reset", []))


def kind_of(name: str, service: dict) -> str:
    """Return "app" for a service running the project's image, "tool" for another stage of its
    Dockerfile that names no image (the dev stack's esbuild watch), else its stand-in kind."""
    if project_files.runs_the_app(service):
        return "app"
    if "build" in service and "image" not in service:
        return "tool"
    return stand_in_kind(service["image"])


def original_port(name: str, service: dict) -> int:
    """Return the port a service listens on in the generated stack (inside its container)."""
    for mapping in service.get("ports") or []:
        if isinstance(mapping, dict) and mapping.get("target"):
            return int(mapping["target"])
    kind = kind_of(name, service)
    if kind == "app":
        return int((service.get("environment") or {}).get("PORT") or APP_PORT)
    if kind == "tool":
        return 0  # it listens on no port
    return IMAGE_PORTS[kind]


@dataclass
class Stack:
    """One compose project of a generated project, on the host network."""

    engine: DockerEngine
    project_dir: Path
    name: str
    override: Path
    config: dict
    ports: dict[str, int] = field(default_factory=dict)
    files: tuple[str, ...] = ("compose.yaml",)
    # A service's other loopback ports (SIDE_PORTS: Caddy's "http" and "admin", its HTTPS port
    # in ``ports``; Jaeger's "otlp" and "health", its query port in ``ports``).
    side_ports: dict[str, dict[str, int]] = field(default_factory=dict)
    overrides: list[Path] = field(default_factory=list)
    profiles: tuple[str, ...] = ()

    def compose_args(self, *args: str) -> list[str]:
        """Return the `docker compose` arguments naming the project, its files, overrides and
        profiles."""
        paths = (*self.files, str(self.override), *map(str, self.overrides))
        files = [arg for name in paths for arg in ("-f", name)]
        profiles = [arg for name in self.profiles for arg in ("--profile", name)]
        return ["compose", "-p", self.name, *files, *profiles, *args]

    def compose(self, *args: str, check: bool = True, timeout: float = UP_TIMEOUT):
        """Run docker compose with the project's compose files and the test override."""
        return self.engine.docker(
            *self.compose_args(*args), cwd=self.project_dir, check=check, timeout=timeout
        )

    def up(self) -> None:
        """Start the stack and wait until every service is healthy or done."""
        self.compose(
            "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT - 30), "--no-build"
        )

    def down(self, *, volumes: bool = False) -> None:
        """Stop and remove the stack's containers (and its volumes when asked)."""
        self.compose("down", "--timeout", "30", *(["--volumes"] if volumes else []), check=False)

    def containers(self) -> list[dict]:
        """Return `docker compose ps --all` entries, one per container.

        While compose replaces a container (`up --watch` starting, a restart), `ps` can list one
        and then fail to inspect it: "No such container". It is asked again, up to 3 times.
        """
        for attempt in range(3):
            try:
                out = self.compose("ps", "--all", "--format", "json").stdout.strip()
                break
            except DockerError as exc:
                if "No such container" not in exc.result.stderr or attempt == 2:
                    raise
                time.sleep(0.5)
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container_state(self, service: str) -> dict:
        """Return the `docker inspect` State of a service's container."""
        ids = self.compose("ps", "--all", "--quiet", service).stdout.split()
        assert len(ids) == 1, f"{service} has containers {ids}"
        return self.engine.inspect("container", ids[0])["State"]

    def logs(self) -> str:
        """Return the last log lines of every service, then each container's state and its last
        healthcheck probes (last: a long message is cut from the front), for a failure message."""
        result = self.compose("logs", "--no-color", "--tail", "60", check=False, timeout=60)
        lines = [result.stdout + result.stderr, "--- containers ---"]
        try:
            containers = self.containers()
        except DockerError as exc:
            return "\n".join([*lines, str(exc)])
        for entry in containers:
            name = entry.get("Name", "")
            lines.append(f"{name}: {entry.get('State')} ({entry.get('Status')})")
            health = self.engine.docker(
                "inspect", "--format", "{{json .State.Health}}", name, check=False, timeout=30
            ).stdout.strip()
            if health and health != "null":
                for probe in (json.loads(health).get("Log") or [])[-3:]:
                    output = " ".join(str(probe.get("Output", "")).split())[:300]
                    started = str(probe.get("Start", ""))[:23]
                    lines.append(f"  probe {started} exit {probe.get('ExitCode')}: {output}")
        return "\n".join(lines)

    def entry_service(self) -> str:
        """Return the one service compose.yaml publishes ports of (where clients come in); a
        profile's service (a local tool) is not one."""
        published = [
            name
            for name, svc in self.config["services"].items()
            if svc.get("ports") and not svc.get("profiles")
        ]
        assert len(published) == 1, f"compose.yaml publishes {published}, expected one entry point"
        return published[0]

    def entry_port(self) -> int:
        """Return the loopback port clients use: that of the service compose.yaml publishes
        (Caddy's HTTPS port in an HTTPS stack)."""
        return self.ports[self.entry_service()]

    def make(self, *args: str) -> subprocess.CompletedProcess:
        """Run a make target of the project as its owner would, with plain `docker compose`
        told this stack's files, name and profiles by COMPOSE_FILE, COMPOSE_PROJECT_NAME and
        COMPOSE_PROFILES; fail with its output unless it succeeds."""
        paths = (*self.files, str(self.override), *map(str, self.overrides))
        env = {
            **self.engine.env,
            "PATH": f"{Path(self.engine.cli).parent}{os.pathsep}{self.engine.env['PATH']}",
            "COMPOSE_FILE": os.pathsep.join(paths),
            "COMPOSE_PROJECT_NAME": self.name,
            "COMPOSE_PROFILES": ",".join(self.profiles),
        }
        result = subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=self.project_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=UP_TIMEOUT, check=False,
        )  # fmt: skip
        output = (
            f"make {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
        assert result.returncode == 0, f"{output}\n{self.logs()}"
        return result

    def add_override(self, name: str, content: dict) -> Path:
        """Write one more test-only override beside the first; later `compose` calls use it."""
        path = self.override.with_name(name)
        text = "# Test-only override written by the template's tier-3 tests.\n"
        path.write_text(text + yaml.dump(content, Dumper=_Dumper, sort_keys=False))
        self.overrides.append(path)
        return path


def host_network_override(
    config: dict, ports: dict[str, int], side_ports: dict[str, dict[str, int]] | None = None
) -> dict:
    """Return the override that runs each service on the host network at ``ports[service]``.

    A Caddy service serves HTTPS at its port, and plain HTTP and its admin API at
    ``side_ports[service]["http"]`` and ``["admin"]``; a Jaeger service its query API at its
    port, and its OTLP/HTTP receiver and health extension at ``["otlp"]`` and ``["health"]``; a
    Mailpit service its HTTP API at its port and SMTP at ``["smtp"]``.
    """
    services = config["services"]
    old = {name: original_port(name, svc) for name, svc in services.items()}
    hosts = sorted(f"{name}:127.0.0.1" for name in services)
    # (service, old port) -> new port, for the main ports and the side ports URLs name.
    new = {(name, old[name]): port for name, port in ports.items()}
    for name, sides in (side_ports or {}).items():
        named = NAMED_SIDE_PORTS.get(kind_of(name, services[name]), {})
        new.update({(name, named[side]): port for side, port in sides.items() if side in named})

    def moved(value: str) -> str:
        """Point "service:old-port" references (URLs) at the service's new port."""
        for (name, was), port in new.items():
            value = re.sub(rf"(?<![\w.-]){re.escape(name)}:{was}\b", f"{name}:{port}", value)
        return value

    override: dict = {}
    for name, service in services.items():
        kind = kind_of(name, service)
        port = ports[name]
        given = {key: str(value) for key, value in (service.get("environment") or {}).items()}
        env = {key: moved(value) for key, value in given.items()}
        entry: dict = {"network_mode": "host", "extra_hosts": hosts}
        if service.get("ports"):
            entry["ports"] = _Reset()
        if kind == "app":
            env.update(PORT=str(port), HOST="127.0.0.1")
        elif kind == "postgres":
            command = service.get("command") or ["postgres"]
            entry["command"] = [*command, "-p", str(port), "-c", "listen_addresses=127.0.0.1"]
            env["PGPORT"] = str(port)
        elif kind == "redis":
            command = service.get("command") or ["redis-server"]
            entry["command"] = [*command, "--port", str(port), "--bind", "127.0.0.1"]
            test = (service.get("healthcheck") or {}).get("test")
            if test:
                entry["healthcheck"] = {
                    "test": [part.replace("redis-cli", f"redis-cli -p {port}") for part in test]
                }
        elif kind == "nginx":
            # The app's services share one old port; nginx's upstream is the web (the image's CMD),
            # not a worker with a command of its own.
            by_old_port = {
                str(old[other]): ports[other]
                for other in services
                if other != name
                and (kind_of(other, services[other]) != "app" or not services[other].get("command"))
            }
            by_old_port[str(old[name])] = port
            for key, value in env.items():
                if key.endswith("PORT") and value in by_old_port:
                    env[key] = str(by_old_port[value])
        elif kind == "caddy":
            side = (side_ports or {})[name]
            admin = f"127.0.0.1:{side['admin']}"
            env.update(
                CADDY_HTTP_PORT=str(side["http"]),
                CADDY_HTTPS_PORT=str(port),
                CADDY_ADMIN=admin,
                UPSTREAM=moved(env.get("UPSTREAM", CADDY_UPSTREAM)),
            )
            test = (service.get("healthcheck") or {}).get("test")
            if test:
                entry["healthcheck"] = {"test": [part.replace(CADDY_ADMIN, admin) for part in test]}
        elif kind == "jaeger":
            at = {"query": port, **(side_ports or {})[name]}
            entry["command"] = [
                f"--set={key}=127.0.0.1:{at[server]}" for server, key in JAEGER_ENDPOINTS.items()
            ]
            health = f"127.0.0.1:{at['health']}"
            test = (service.get("healthcheck") or {}).get("test")
            if test:
                entry["healthcheck"] = {
                    "test": [part.replace(JAEGER_HEALTH, health) for part in test]
                }
        elif kind == "mailpit":
            smtp = (side_ports or {})[name]["smtp"]
            env.update(MP_UI_BIND_ADDR=f"127.0.0.1:{port}", MP_SMTP_BIND_ADDR=f"127.0.0.1:{smtp}")
        changed = {key: value for key, value in env.items() if given.get(key) != value}
        if changed:
            entry["environment"] = changed
        health = service.get("healthcheck") or {}
        if health and not health.get("disable"):
            # The generated probes, run often so a stack is healthy as soon as it is: compose's
            # first probe waits a whole interval. Celery's probe is a whole client: less often.
            celery = kind == "app" and service.get("command")
            probe = faster_probe(health, "5s" if celery else PROBE_INTERVAL)
            entry.setdefault("healthcheck", {}).update(probe)
        override[name] = entry
    return {"services": override}


def open_stack(
    engine: DockerEngine,
    project_dir: Path,
    name: str,
    work: Path,
    files: tuple[str, ...] = ("compose.yaml",),
    profiles: tuple[str, ...] = (),
) -> Stack:
    """Allocate loopback ports and write the host-network override for a project's stack, with
    the services of ``profiles`` too.

    ``name`` becomes the compose project name without the characters compose refuses there
    (a combination's id may hold a Python version's dot: "bare-py3.13" -> "bare-py313").
    """
    name = re.sub(r"[^a-z0-9_-]", "", name.lower())
    config = project_files.compose_model(project_dir, files, profiles=profiles)
    # The override places every profile's services too: `docker compose run` starts one of
    # them (make backup's) without its profile being given.
    every_profile = tuple(project_files.profiles(project_dir, files))
    every = project_files.compose_model(project_dir, files, profiles=every_profile)
    ports = {service: free_port() for service in every["services"]}
    side_ports = {
        service: {side: free_port() for side in SIDE_PORTS[kind_of(service, entry)]}
        for service, entry in every["services"].items()
        if kind_of(service, entry) in SIDE_PORTS
    }
    override = work / "compose.tier3-host-network.yaml"
    text = "# Test-only override written by the template's tier-3 tests: host network.\n"
    content = host_network_override(every, ports, side_ports)
    text += yaml.dump(content, Dumper=_Dumper, sort_keys=False)
    override.write_text(text)
    return Stack(
        engine, project_dir, name, override, config, ports, files, side_ports, profiles=profiles
    )


def acme_override(service: str, domain: str, directory: str, ca_file: Path) -> dict:
    """Return the override that has a stack's Caddy serve ``domain`` with a certificate from the
    ACME CA at ``directory``, whose listener certificate (``ca_file``) it trusts by SSL_CERT_FILE.
    """
    mount = {"type": "bind", "source": str(ca_file), "target": CA_FILE_IN_CONTAINER}
    environment = {"DOMAIN": domain, "ACME_CA": directory, "SSL_CERT_FILE": CA_FILE_IN_CONTAINER}
    return {
        "services": {
            service: {"environment": environment, "volumes": [{**mount, "read_only": True}]}
        }
    }


def wait_ready(stack: Stack, port: int | Endpoint) -> dict:
    """Poll /readyz through the entry port until it answers 200; return its body."""
    deadline = time.monotonic() + READY_TIMEOUT
    reply = None
    while time.monotonic() < deadline:
        try:
            reply = request(port, "GET", "/readyz")
        except OSError:
            reply = None
        if reply is not None and reply.status == 200:
            return reply.json()
        time.sleep(0.5)
    raise AssertionError(f"/readyz never answered 200 (last: {reply}):\n{stack.logs()}")


def await_processed(stack: Stack, port: int | Endpoint, path: str) -> dict:
    """Poll an item until its background task marked it processed; return it."""
    deadline = time.monotonic() + PROCESSED_TIMEOUT
    item = None
    while time.monotonic() < deadline:
        item = request(port, "GET", path).json()
        if item["status"] == "processed":
            return item
        time.sleep(0.5)
    raise AssertionError(f"the item stayed {item}:\n{stack.logs()}")


def create_item(port: int | Endpoint, name: str, headers: dict[str, str] | None = None) -> str:
    """Create an item through the entry port (with ``headers``) and return its Location path."""
    body = {"name": name, "description": "made by tier 3"}
    reply = request(port, "POST", "/api/items", body, headers=headers)
    assert reply.status == 201, reply
    location = reply.headers["location"]
    return "/" + location.split("/", 3)[3] if location.startswith("http") else location


def sign_up(
    stack: Stack,
    port: int | Endpoint,
    folder: Path,
    email: str = "tier3@example.com",
    web: str | None = None,
) -> dict[str, str]:
    """Create a user as docs/auth.md says, in the web container (``web``, else the stack's web
    service) with the password on standard input (`docker compose exec -T web flask --app
    PKG:create_app() users create EMAIL`); return the Authorization header of a token
    POST /api/auth/tokens gives it through ``port``."""
    password = secrets.token_urlsafe(18)
    secret = folder / "password"
    secret.write_text(f"{password}\n")
    app = f"{project_files.package_name(stack.project_dir)}:create_app()"
    web = web or project_files.web_service(stack.config)
    with secret.open() as stdin:
        created = stack.engine.docker(
            *stack.compose_args("exec", "-T", web, "flask", "--app", app, "users", "create", email),
            cwd=stack.project_dir,
            stdin=stdin,
            check=False,
            timeout=120,
        )
    assert created.returncode == 0, created.stdout + created.stderr
    reply = request(port, "POST", "/api/auth/tokens", {"email": email, "password": password})
    assert reply.status == 201, reply
    return {"Authorization": f"Bearer {reply.json()['token']}"}
