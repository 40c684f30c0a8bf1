"""Rate limits: enforced, headers from the hit itself, Retry-After only on 429s and 503s."""

import sys
import threading
import time
from collections import defaultdict

import pytest
from limits.storage import MemoryStorage

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.rate_limits import (
    SWEEP_AT_LEAST,
    Counts,
    WorkerCounts,
    count_in,
    parse_limits,
    plan_route,
)


def test_a_success_carries_the_limit_headers_but_no_retry_after(limited_client):
    """It sends X-RateLimit-* on a 200 and no Retry-After."""
    response = limited_client(ratelimit_default="5 per minute").get("/api/items")
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert "Retry-After" not in response.headers


def test_a_refusal_carries_retry_after(limited_client):
    """It answers 429 with a Retry-After of at most the limit's window."""
    client = limited_client(ratelimit_default="1 per minute")
    assert client.get("/api/items").status_code == 200
    refused = client.get("/api/items")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.json["error"]["status"] == 429


def test_a_database_503_keeps_its_own_retry_after(settings_overrides, empty_database_url):
    """It keeps the database handler's Retry-After (5 s) on a 503 while limits are enforced."""
    overrides = {**settings_overrides, "app_env": "development", "database_url": empty_database_url}
    app = create_app(overrides)
    with app.app_context():
        db.drop_all()
    response = app.test_client().get("/api/items")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_the_headers_come_from_the_hit_without_reading_the_counter_again(
    limited_client, monkeypatch
):
    """It makes one counter call per request and counts X-RateLimit-Remaining down from it."""
    client = limited_client(ratelimit_default="5 per minute")
    calls, count = [], Counts.count
    monkeypatch.setattr(Counts, "count", lambda *args: calls.append(args) or count(*args))
    now = time.time()
    for remaining in (4, 3, 2):
        response = client.get("/api/items")
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert now < int(response.headers["X-RateLimit-Reset"]) <= now + 62
    assert len(calls) == 3


def test_several_limits_are_each_enforced_and_the_tightest_is_sent(limited_client):
    """It counts every limit of a setting and sends the headers of the one closest to refusal."""
    client = limited_client(ratelimit_default="3 per minute;10 per hour")
    sent = [client.get("/api/items").headers["X-RateLimit-Limit"] for _ in range(3)]
    assert sent == ["3", "3", "3"]
    assert client.get("/api/items").status_code == 429
    hourly = limited_client(ratelimit_default="100 per minute;2 per hour")
    assert hourly.get("/api/items").headers["X-RateLimit-Limit"] == "2"
    assert [hourly.get("/api/items").status_code for _ in range(2)] == [200, 429]


def test_each_route_and_each_client_has_its_own_count(limited_client):
    """It counts per client address and route: another client, or another route, starts afresh."""
    client = limited_client(ratelimit_default="1 per minute")
    assert client.get("/api/items").status_code == 200
    assert client.get("/api/items").status_code == 429
    other = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.get("/api/items", environ_base=other).status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_writes_count_against_the_write_limit_instead_of_the_default(limited_client):
    """It counts a write against RATELIMIT_WRITE only: the default limit's count is not spent."""
    client = limited_client(ratelimit_default="1 per minute", ratelimit_write="3 per minute")
    statuses = [client.post("/api/items", json={"name": str(n)}).status_code for n in range(3)]
    assert statuses == [201] * 3
    assert client.get("/api/items").headers["X-RateLimit-Limit"] == "1"


def test_each_limit_of_a_route_is_counted_under_limits_own_key(make_app):
    """It puts each key together around the client as limits' ``key_for`` names it, once."""
    app = make_app(ratelimit_default="10/second;600/minute", ratelimit_write="5/second")
    limits = app.extensions["rate_limits"]
    route = plan_route(app, "api.list_items")
    client = "203.0.113.9"
    keys = [(before + client + after, seconds) for before, after, seconds in route.keys]
    named = [
        (limit.key_for(client, "api.list_items"), limit.get_expiry()) for limit in limits.default
    ]
    assert keys == named
    assert [seconds for _, seconds in keys] == [1, 60]
    assert plan_route(app, "api.create_item").limits == limits.write
    for endpoint in (None, "health.healthz", "static"):
        assert plan_route(app, endpoint) is None, endpoint


def test_unknown_routes_are_answered_404_not_counted(limited_client):
    """It leaves requests that match no route alone: they get their 404, never a 429."""
    client = limited_client(ratelimit_default="1 per minute")
    assert [client.get("/no/such/route").status_code for _ in range(3)] == [404] * 3
    assert "X-RateLimit-Limit" not in client.get("/no/such/route").headers


@pytest.mark.parametrize("value", ["lots", "", "600 per fortnight", "0 per minute", "-1/second"])
def test_a_limit_that_does_not_parse_is_refused(value):
    """It raises a ValueError that shows the expected form."""
    with pytest.raises(ValueError, match="'600 per minute'"):
        parse_limits(value)


def test_a_failing_shared_store_counts_in_memory_and_is_asked_again_next_time(caplog):
    """It counts in memory while the shared store raises, logs once each way, and goes back."""
    shared, failing = MemoryStorage(), [True, True, False]

    def counter(storage, windows, read):
        if failing.pop(0):
            raise ValueError("the store is down")  # MemoryStorage's base_exceptions
        return count_in(storage, windows, read)

    counts = Counts(shared, counter)
    assert [counts.count([("k", 60)])[0][0][0] for _ in range(3)] == [1, 2, 1]
    assert counts.memory.get("k") == 2
    assert shared.get("k") == 1
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "memory" in m]) == 1, messages
    assert any("shared store again" in m for m in messages), messages


def test_threads_of_one_worker_count_every_hit_once_and_never_raise():
    """It gives each hit in a window its own count, from 8 threads switching as often as they can.

    (limits' MemoryStorage could raise "threads can only be started once" here, and return
    another thread's count.)
    """
    counts, answers, errors = Counts(), defaultdict(list), []

    def hammer(number: int) -> None:
        deadline = time.monotonic() + 1.5
        for step in range(1_000_000):
            if time.monotonic() > deadline:
                return
            key = f"key-{step % 3}"
            try:
                [(hits, ends)], _ = counts.count([(key, 1)])
            except Exception as exc:  # noqa: BLE001 - any exception is the failure shown
                errors.append(repr(exc))
                return
            answers[key, ends].append(hits)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    assert len(answers) > 3  # windows of 1 s ended and began again
    for window, hits in answers.items():
        assert sorted(hits) == list(range(1, len(hits) + 1)), window


def test_worker_counts_drop_ended_windows_and_keep_live_ones():
    """It keeps memory to about twice the live windows, without a background thread."""
    counts = WorkerCounts()
    threads = threading.active_count()
    for number in range(5 * SWEEP_AT_LEAST):
        counts.count(f"ended-{number}", 0)  # a window of 0 s has ended by the next call
    assert len(counts) <= SWEEP_AT_LEAST
    for number in range(3 * SWEEP_AT_LEAST):
        counts.count(f"live-{number}", 60)
    assert 3 * SWEEP_AT_LEAST <= len(counts) <= 4 * SWEEP_AT_LEAST
    assert counts.get("live-0") == 1
    assert counts.count("live-0", 60)[0] == 2
    assert counts.get("ended-0") == 0
    assert threading.active_count() == threads
