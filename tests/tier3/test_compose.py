"""The generated compose stack comes up healthy in a real engine and serves the example API.

With use_https, Caddy in front obtains its certificate from a real ACME CA (Pebble, started by
the tests on loopback) by validating the test domain on the ports it listens on, and the API is
served over HTTPS with that certificate, verified against the CA's root and nothing else; plain
HTTP is redirected to HTTPS. With use_opentelemetry, the stack runs with its `tracing` profile and
the app gets .env's OTLP endpoint: the request's trace, the worker's task in it, reaches the
profile's Jaeger (tracing.py).
"""

from __future__ import annotations

import re
import shutil
import ssl
import time
from collections.abc import Iterator
from datetime import datetime

import project_files
import pytest

from ..tier2.acme import DOMAIN, Pebble
from ..tier2.servers import private_dir
from .images import build_image
from .matrix import distinct_combinations, docker_params
from .net import Endpoint, peer_certificate, request
from .project import pulled_services, service_image, stand_in_kind
from .stack import (
    Stack,
    acme_override,
    await_processed,
    create_item,
    open_stack,
    sign_up,
    wait_ready,
)
from .test_frontend import assert_page_and_assets_served
from .tracing import PROFILE, await_request_trace, new_traceparent, tracing_override, viewer

CERTIFICATE_TIMEOUT = 60  # seconds for Caddy to obtain its certificate once it is up
HSTS = "max-age=31536000"


def assert_a_fresh_stack_restores_the_backup(stack: Stack, port, path: str) -> None:
    """`make backup` writes a backup with the stack's backup service; in a fresh stack (every
    volume gone but the backups), `make restore` brings the item back."""
    written = stack.make("backup").stdout
    (file,) = re.findall(r"^Backed up \S+ into (\S+) \(", written, re.M)
    assert file in stack.make("backups").stdout
    stack.down()
    label = f"label=com.docker.compose.project={stack.name}"
    volumes = stack.engine.docker("volume", "ls", "--quiet", "--filter", label).stdout.split()
    assert f"{stack.name}_backups" in volumes, volumes
    # A fresh stack: every volume gone (the database's, Redis' cached items) but the backups.
    stack.engine.docker("volume", "rm", *(v for v in volumes if v != f"{stack.name}_backups"))
    stack.up()
    wait_ready(stack, port)
    assert request(port, "GET", path).status == 404, "the fresh stack still has the item"
    stack.make("restore", f"FILE={file}", "YES=1")
    wait_ready(stack, port)
    restored = request(port, "GET", path)
    assert restored.status == 200, f"the restored stack lacks the item: {restored}"
    # docs/operations.md's copy off the host, `tar -c -C /var/lib/postgresql backups` run by
    # the same service, read back by tar: the stream holds the backup.
    stream = "tar -c -C /var/lib/postgresql backups | tar -t"
    copied = stack.compose("run", "--rm", "-T", "--entrypoint", "sh", "backup", "-c", stream)
    assert f"backups/{file.rsplit('/', 1)[1]}" in copied.stdout.split(), copied.stdout


def _timestamp(value: str) -> datetime:
    """Parse a docker RFC 3339 timestamp (nanoseconds trimmed to microseconds)."""
    head, _, rest = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}")


@pytest.fixture
def stack(combo, engine, standins, app_image, tmp_path):
    """Prepare a combination's compose stack on the host network (with the tracing profile when
    it has one); take it down (with data) after."""
    build = app_image(combo)
    profiles = (PROFILE,) if combo.selected("use_opentelemetry") else ()
    stack = open_stack(engine, build.context, f"fst3-{combo.id}", tmp_path, profiles=profiles)
    if profiles:
        stack.add_override("compose.tier3-tracing.yaml", tracing_override(stack))
    for name, service in stack.config["services"].items():
        image = service_image(stack.config, name)
        if name in project_files.stage_services(stack.config):  # nginx with the built assets
            build_image(engine, build.context, image, target=service["build"]["target"])
        elif name in pulled_services(stack.config):
            standins.service(stand_in_kind(image), image)
        else:
            engine.docker("tag", build.tag, image)
    try:
        yield stack
    finally:
        stack.down(volumes=True)


@pytest.fixture
def pebble(combo, stack) -> Iterator[Pebble | None]:
    """For an HTTPS bake: start Pebble, validating on the loopback ports its Caddy listens on,
    and add the override that points Caddy at it (DOMAIN, ACME_CA, SSL_CERT_FILE)."""
    if not combo.selected("use_https"):
        yield None
        return
    caddy = stack.entry_service()
    # Pebble runs as tier 2's unprivileged user, who may traverse this folder (not tmp_path).
    folder = private_dir("tier3-pebble-")
    ca = Pebble(folder / "pebble", stack.side_ports[caddy]["http"], stack.ports[caddy])
    try:
        ca.start()
        stack.add_override(
            "compose.tier3-acme.yaml",
            acme_override(caddy, DOMAIN, ca.directory, ca.listener_cert),
        )
        yield ca
    finally:
        ca.stop()
        shutil.rmtree(folder, ignore_errors=True)


def await_certificate(stack: Stack, pebble: Pebble, entry: Endpoint) -> dict:
    """Wait until the entry point presents a certificate for DOMAIN that verifies against
    Pebble's root; return it."""
    deadline = time.monotonic() + CERTIFICATE_TIMEOUT
    while True:
        try:
            return peer_certificate(entry)
        except (OSError, ssl.SSLError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no verified certificate for {DOMAIN} in {CERTIFICATE_TIMEOUT} s: {exc}\n"
                    f"{stack.logs()}\n{pebble.logs()}"
                ) from None
            time.sleep(0.5)


def assert_redirects_to_https(port: int) -> None:
    """Assert plain HTTP for the domain is redirected (308) to the same URL over HTTPS."""
    reply = request(port, "GET", "/api/items?page=1", headers={"Host": DOMAIN})
    assert reply.status == 308, reply
    assert reply.headers["location"] == f"https://{DOMAIN}/api/items?page=1", reply.headers


@pytest.mark.parametrize("combo", docker_params(distinct_combinations()))
def test_stack_comes_up_healthy_and_serves_the_api(combo, stack, pebble, report, tmp_path):
    """It becomes healthy with --wait, migrates before web starts, and serves the API end to end.

    With use_celery, worker and scheduler are healthy too and the worker processes the item.
    With use_https, Caddy gets a certificate for the test domain from Pebble, the API answers over
    HTTPS (verified against Pebble's root, with HSTS), and plain HTTP redirects to HTTPS.
    With use_opentelemetry, Jaeger (the tracing profile) is healthy too and receives the POST's
    trace: the web's server span continues the caller's traceparent over its INSERT, and with
    use_celery the worker's task continues the web's send of it, its UPDATE below.
    With use_auth, an anonymous POST is refused (401), a user is created with `flask users create`
    in the web container (the password on standard input) and the POST carries its token.
    """
    started = time.monotonic()
    try:
        stack.up()
    except Exception as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None
    report(f"compose {combo.id}: up --wait healthy in {time.monotonic() - started:.1f} s")

    states = {entry["Service"]: entry for entry in stack.containers()}
    assert set(states) == set(stack.config["services"]), states
    one_shot = project_files.one_shot_services(stack.config)
    web = project_files.web_service(stack.config)
    for name, entry in states.items():
        if name in one_shot:
            assert (entry["State"], entry["ExitCode"]) == ("exited", 0), entry
        else:
            assert entry["State"] == "running", entry
            assert entry["Health"] == "healthy", entry

    web_started = _timestamp(stack.container_state(web)["StartedAt"])
    for job in one_shot:
        finished = _timestamp(stack.container_state(job)["FinishedAt"])
        assert finished <= web_started, f"{web} started at {web_started}, before {job} ended"

    port: int | Endpoint = stack.entry_port()
    if pebble is not None:
        port = Endpoint(stack.entry_port(), DOMAIN, pebble.client_context())
        started = time.monotonic()
        certificate = await_certificate(stack, pebble, port)
        issuer = dict(pair for rdn in certificate["issuer"] for pair in rdn)["commonName"]
        assert issuer.startswith("Pebble Intermediate CA"), certificate
        assert ("DNS", DOMAIN) in certificate["subjectAltName"], certificate
        report(
            f"compose {combo.id}: certificate for {DOMAIN} from {issuer} (Pebble, ACME) in"
            f" {time.monotonic() - started:.1f} s after up"
        )
    ready = wait_ready(stack, port)
    assert ready["checks"]["database"]["status"] == "ok", ready
    if combo.selected("use_redis"):
        assert ready["checks"]["redis"]["status"] == "ok", ready

    trace_id, caller, traceparent = new_traceparent()
    traced = combo.selected("use_opentelemetry")
    headers = dict(traceparent) if traced else {}
    if combo.selected("use_auth"):
        anonymous = request(port, "POST", "/api/items", {"name": "anonymous"})
        assert anonymous.status == 401, anonymous
        assert anonymous.headers["www-authenticate"].lower().startswith("bearer"), anonymous
        headers.update(sign_up(stack, port, tmp_path))
    path = create_item(port, f"tier3 {combo.id}", headers=headers or None)
    if combo.selected("use_celery"):
        assert ready["checks"]["task_queue"]["status"] == "ok", ready
        await_processed(stack, port, path)
    first = request(port, "GET", path)
    assert first.status == 200, first
    assert first.json()["name"] == f"tier3 {combo.id}"
    second = request(port, "GET", path)
    assert second.status == 200
    if combo.selected("use_redis"):
        assert second.headers["x-cache"] == "hit", second.headers
    assert second.headers.get("x-request-id"), second.headers
    if traced:
        started = time.monotonic()
        spans = await_request_trace(stack, trace_id, caller)
        services = sorted({span.service for span in spans})
        report(
            f"compose {combo.id}: {viewer(stack)} got the POST's trace, {len(spans)} spans of"
            f" {', '.join(services)} (waited {time.monotonic() - started:.1f} s)"
        )
    if combo.selected("use_https"):
        assert isinstance(port, Endpoint)
        assert second.headers.get("strict-transport-security") == HSTS, second.headers
        assert_redirects_to_https(stack.side_ports[stack.entry_service()]["http"])
    if combo.selected("use_nginx"):
        assert stack.entry_port() != stack.ports[web]
        assert second.headers.get("x-content-type-options") == "nosniff", "not served through nginx"
        assert request(port, "GET", "/metrics").status == 404, "nginx publishes /metrics"
    if combo.selected("use_frontend"):
        assert_page_and_assets_served(port, through_nginx=combo.selected("use_nginx"))
    # The workers' metrics folder is the read-only container's tmpfs: /metrics sums what they wrote.
    metrics = request(stack.ports[web], "GET", "/metrics")
    assert metrics.status == 200, metrics
    assert b'route="/api/items/<id:item_id>"' in metrics.body, metrics.body[:2000]

    if combo.selected("use_postgres"):
        stack.down()
        try:
            stack.up()
        except Exception as exc:
            raise AssertionError(f"second up failed: {exc}\n{stack.logs()}") from None
        wait_ready(stack, port)
        again = request(port, "GET", path)
        assert again.status == 200, f"the item did not survive down and up: {again}"
        assert again.json()["name"] == f"tier3 {combo.id}"
    # The backup service is the same in every bake with PostgreSQL: proven once, where the
    # restore has the most to stop (web, worker and scheduler).
    if combo.selected("use_postgres") and combo.selected("use_celery"):
        assert_a_fresh_stack_restores_the_backup(stack, port, path)
