"""A failing store is skipped for an interval: one call per interval tries it again."""

import logging
import time

from {{ cookiecutter.package_name }}.platform.outage import Outage


def failing() -> str:
    """Fail as a store that is down does."""
    raise ConnectionError("down")


def test_a_failing_store_is_skipped_for_the_interval_then_tried_once(caplog):
    """It answers the fallback when the store fails, skips the store while the interval runs,
    then lets one call try it; it logs the failure and the recovery, once each."""
    outage = Outage("the store", 0.2)
    tried = []

    def store() -> str:
        tried.append(time.monotonic())
        return "stored"

    with caplog.at_level(logging.INFO):
        assert outage.call(failing, lambda: "fallback") == "fallback"
        assert [outage.call(store, lambda: "fallback") for _ in range(3)] == ["fallback"] * 3
        assert tried == []
        time.sleep(0.25)
        assert outage.call(store, lambda: "fallback") == "stored"
        assert outage.call(store, lambda: "fallback") == "stored"
    assert len(tried) == 2
    messages = [record.getMessage() for record in caplog.records]
    failed = "the store skipped for 0.2s: ConnectionError('down')"
    assert messages == [failed, "the store answers again"]


def test_a_store_that_answers_is_always_called(caplog):
    """It calls a store that never failed every time, and logs nothing."""
    outage = Outage("the store", 10.0)
    calls = []
    for _ in range(3):
        assert outage.call(lambda: calls.append("store"), lambda: calls.append("fallback")) is None
    assert calls == ["store"] * 3
    assert caplog.records == []
