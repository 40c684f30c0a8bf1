"""Rate limits: writes always, every route with RATELIMIT_DEFAULT; JSON 429s with their headers."""

import threading
import time

import pytest
from flask import Blueprint
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform import routes
from {{ cookiecutter.package_name }}.platform.rate_limits import RateLimits, is_limited, limit
from {{ cookiecutter.package_name }}.platform.routes import Access, access
from {{ cookiecutter.package_name }}.settings.limits import checked_limits, checked_optional_limits
from tests.conftest import writer_of


def test_reads_are_not_limited_by_default(limited_client):
    """It leaves reads alone while RATELIMIT_DEFAULT is empty: no count, no headers."""
    client = limited_client(ratelimit_write="1 per minute")
    responses = [client.get("/api/items") for _ in range(5)]
    assert [response.status_code for response in responses] == [200] * 5
    assert "X-RateLimit-Limit" not in responses[-1].headers


@pytest.mark.parametrize(("ratelimit_default", "hooks"), [("", 0), ("100 per minute", 1)])
def test_only_a_default_limit_adds_a_hook_to_every_request(make_app, ratelimit_default, hooks):
    """It registers no app-wide hook while RATELIMIT_DEFAULT is empty (only the marked views
    count, in their wrappers): a request not counted runs no rate-limiting code; with a default,
    one before_request, and nothing after any request."""
    app = make_app(app_env="development", ratelimit_default=ratelimit_default)

    def by_rate_limiting(registered: dict) -> list:
        return [hook for hook in registered.get(None, []) if "limit" in hook.__module__]

    assert len(by_rate_limiting(app.before_request_funcs)) == hooks
    assert by_rate_limiting(app.after_request_funcs) == []
    assert by_rate_limiting(app.teardown_request_funcs) == []


def test_a_write_carries_the_limit_headers(limited_app):
    """It sends X-RateLimit-* on a write, its remaining count going down."""
    client = writer_of(limited_app(ratelimit_write="5 per minute"))
    now = time.time()
    for remaining in (4, 3, 2):
        response = client.post("/api/items", json={"name": "x"})
        assert response.status_code == 201
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert now < int(response.headers["X-RateLimit-Reset"]) <= now + 62


def test_a_refusal_is_json_with_retry_after(limited_app):
    """It answers 429 in the JSON error shape with a Retry-After of at most the window."""
    client = writer_of(limited_app(ratelimit_write="1 per minute"))
    assert client.post("/api/items", json={"name": "x"}).status_code == 201
    refused = client.post("/api/items", json={"name": "x"})
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.json["error"]["status"] == 429
    assert refused.json["error"]["title"] == "Too Many Requests"
    assert refused.json["error"]["detail"] == "1 per 1 minute"  # the limit spent


def test_a_default_limit_applies_to_every_other_route(limited_app):
    """It limits reads to RATELIMIT_DEFAULT when set, and writes to RATELIMIT_WRITE instead."""
    app = limited_app(ratelimit_default="1 per minute", ratelimit_write="3 per minute")
    client = writer_of(app)
    assert [client.get("/api/items").status_code for _ in range(2)] == [200, 429]
    statuses = [client.post("/api/items", json={"name": str(n)}).status_code for n in range(3)]
    assert statuses == [201] * 3
    assert client.get("/openapi.json").status_code == 200  # a route of its own count


def test_several_limits_are_each_enforced(limited_client):
    """It counts every limit of a setting; headers name the shortest window, or the one refusing."""
    client = limited_client(ratelimit_default="3 per minute;10 per hour")
    sent = [client.get("/api/items").headers["X-RateLimit-Limit"] for _ in range(3)]
    assert sent == ["3", "3", "3"]
    assert client.get("/api/items").status_code == 429
    hourly = limited_client(ratelimit_default="100 per minute;2 per hour")
    responses = [hourly.get("/api/items") for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 429]
    assert responses[0].headers["X-RateLimit-Limit"] == "100"
    assert responses[-1].headers["X-RateLimit-Limit"] == "2"


def test_each_client_has_its_own_count(limited_app):
    """It counts per client address: another client starts afresh."""
    client = writer_of(limited_app(ratelimit_write="1 per minute"))
    assert client.post("/api/items", json={"name": "x"}).status_code == 201
    assert client.post("/api/items", json={"name": "x"}).status_code == 429
    other = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.post("/api/items", json={"name": "x"}, environ_base=other).status_code == 201


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/no/such/route"])
def test_probes_metrics_and_unknown_routes_are_never_limited(limited_client, path):
    """It never counts probes, /metrics or requests matching no route, even with a default."""
    client = limited_client(ratelimit_default="1 per minute")
    responses = [client.get(path) for _ in range(3)]
    assert 429 not in [response.status_code for response in responses]
    assert "X-RateLimit-Limit" not in responses[-1].headers


def test_an_answer_that_is_no_refusal_carries_no_retry_after(limited_app):
    """It sends Retry-After on a 429 only: a write let through has the X-RateLimit-* headers and
    nothing telling the client to wait."""
    client = writer_of(limited_app(ratelimit_write="5 per minute"))
    created = client.post("/api/items", json={"name": "x"})
    assert created.status_code == 201
    assert created.headers["X-RateLimit-Remaining"] == "4"
    assert "Retry-After" not in created.headers


@pytest.mark.parametrize("ratelimit_default", ["", "100 per minute"])
def test_a_database_503_keeps_its_own_retry_after(
    settings_overrides, empty_database_url, ratelimit_default
):
    """It keeps the database handler's Retry-After (5 s) on a 503, on a route limited or not:
    the database refused, not the limiter."""
    overrides = {
        **settings_overrides,
        "app_env": "development",
        "database_url": empty_database_url,
        "ratelimit_default": ratelimit_default,
    }
    app = create_app(overrides)
    app.extensions["rate_limits"].reset()
    with app.app_context():
        db.drop_all()
    response = app.test_client().get("/api/items")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("value", ["lots", "", "600 per fortnight", "0 per minute", "-1/second"])
def test_a_limit_that_does_not_parse_is_refused(value):
    """It raises a ValueError that shows the expected form."""
    with pytest.raises(ValueError, match="'60 per minute'"):
        checked_limits(value)


@pytest.mark.parametrize("value", ["", "  ", "10/second;600/minute"])
def test_the_default_limit_may_be_empty(value):
    """It accepts an empty RATELIMIT_DEFAULT (no default limit) and a valid one."""
    assert checked_optional_limits(value) == value


def test_a_failing_counter_lets_the_request_through(limited_app, monkeypatch, capsys):
    """It serves a write whose count fails (the storage and its fallback alike), logging the
    error, instead of answering 500."""
    client = writer_of(limited_app(ratelimit_write="1 per minute"))

    def fail(*args, **kwargs):
        raise RuntimeError("threads can only be started once")

    monkeypatch.setattr(FixedWindowRateLimiter, "hit", fail)  # in any storage, fallback too
    statuses = [client.post("/api/items", json={"name": "x"}).status_code for _ in range(2)]
    assert statuses == [201, 201]
    assert "threads can only be started once" in capsys.readouterr().out  # the log, on stdout


def test_counts_in_memory_are_taken_one_at_a_time():
    """It never counts in limits' memory storage from two threads at once: that storage starts its
    expiry timer unguarded, and a second start of one timer fails (limits issue #26)."""
    limits = RateLimits(enabled=True, storage=MemoryStorage(), retry_interval=0)
    guard = threading.Lock()
    inside = most = 0

    def count(strategy: FixedWindowRateLimiter) -> None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.01)  # long enough for every other thread to arrive meanwhile
        with guard:
            inside -= 1

    threads = [threading.Thread(target=limits.run, args=(count,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in threads)
    assert most == 1


@pytest.fixture
def reports_app(make_app, monkeypatch):
    """Return a function building an app that enforces rate limits, with a route of another
    feature that declares its own limit, two requests a minute."""
    reports = Blueprint("reports", __name__)

    @reports.get("/reports")
    @access(Access.ANYONE)
    @limit("2/minute")
    def list_reports() -> dict[str, list[int]]:
        return {"reports": []}

    apply_rules = routes.init_app

    def with_reports(app):
        app.register_blueprint(reports)
        apply_rules(app)

    monkeypatch.setattr(routes, "init_app", with_reports)

    def make(**overrides):
        app = make_app(app_env="development", **overrides)
        app.extensions["rate_limits"].reset()
        return app

    return make


def test_a_route_declares_a_limit_of_its_own(reports_app):
    """It counts a route marked @limit(...) against that limit per client address, in place of
    RATELIMIT_DEFAULT, with the limit's headers and a JSON 429."""
    app = reports_app(ratelimit_default="100 per minute")
    client = app.test_client()
    answers = [client.get("/reports") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert [answer.headers["X-RateLimit-Limit"] for answer in answers] == ["2"] * 3
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert answers[2].json["error"]["status"] == 429
    assert is_limited(app, "reports.list_reports")
    another = client.get("/reports", environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert another.status_code == 200  # another address, a count of its own


@pytest.mark.parametrize("spec", ["", "often", "5 per fortnight"])
def test_a_limit_that_does_not_parse_fails_at_import(spec):
    """It refuses a route's limit that limits cannot parse when the decorator is applied."""
    with pytest.raises(ValueError):
        limit(spec)
