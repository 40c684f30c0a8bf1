"""The generated compose stack comes up healthy in a real engine and serves the example API."""

from __future__ import annotations

import time
from datetime import datetime

import project_files
import pytest

from .images import build_image
from .matrix import distinct_combinations, docker_params
from .net import request
from .project import pulled_services, service_image, stand_in_kind
from .stack import await_processed, create_item, open_stack, wait_ready
from .test_frontend import assert_page_and_assets_served


def _timestamp(value: str) -> datetime:
    """Parse a docker RFC 3339 timestamp (nanoseconds trimmed to microseconds)."""
    head, _, rest = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}")


@pytest.fixture
def stack(combo, engine, standins, app_image, tmp_path):
    """Prepare a combination's compose stack on the host network; take it down (with data) after."""
    build = app_image(combo)
    stack = open_stack(engine, build.context, f"fst3-{combo.id}", tmp_path)
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


@pytest.mark.parametrize("combo", docker_params(distinct_combinations()))
def test_stack_comes_up_healthy_and_serves_the_api(combo, stack, report):
    """It becomes healthy with --wait, migrates before web starts, and serves the API end to end.

    With use_celery, worker and scheduler are healthy too and the worker processes the item.
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

    port = stack.entry_port()
    ready = wait_ready(stack, port)
    assert ready["checks"]["database"]["status"] == "ok", ready
    if combo.selected("use_redis"):
        assert ready["checks"]["redis"]["status"] == "ok", ready

    path = create_item(port, f"tier3 {combo.id}")
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
    if combo.selected("use_nginx"):
        assert port != stack.ports[web]
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
