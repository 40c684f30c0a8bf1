"""Rate limits: enforced, headers from the hit itself, Retry-After only on 429s and 503s."""

import time

from limits.strategies import FixedWindowRateLimiter

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.rate_limits import LIMITER_RETRY_AFTER


def test_a_success_carries_the_limit_headers_but_no_retry_after(limited_client):
    """It sends X-RateLimit-* on a 200 and no Retry-After."""
    response = limited_client(ratelimit_default="5 per minute").get("/api/items")
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert "Retry-After" not in response.headers
    assert LIMITER_RETRY_AFTER not in response.headers


def test_a_refusal_carries_retry_after(limited_client):
    """It answers 429 with a Retry-After of at most the limit's window."""
    client = limited_client(ratelimit_default="1 per minute")
    assert client.get("/api/items").status_code == 200
    refused = client.get("/api/items")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert LIMITER_RETRY_AFTER not in refused.headers


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
    """It counts down X-RateLimit-Remaining from each hit's own count, with no second read."""
    client = limited_client(ratelimit_default="5 per minute")
    reads = []
    monkeypatch.setattr(FixedWindowRateLimiter, "get_window_stats", lambda *a: reads.append(a))
    now = time.time()
    for remaining in (4, 3, 2):
        response = client.get("/api/items")
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert now < int(response.headers["X-RateLimit-Reset"]) <= now + 62
    assert reads == []
