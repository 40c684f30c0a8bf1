"""Redis backs the cache and rate limits; when it fails, reads degrade and readiness says so."""

import os

import pytest

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.extensions import db

UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture
def app_without_redis(settings_overrides):
    """Build an app whose REDIS_URL points at a closed port."""
    app = create_app({**settings_overrides, "redis_url": UNREACHABLE, "health_check_timeout": 0.5})
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def test_readiness_names_redis_when_down(app_without_redis):
    """It answers 503 with a failing redis check."""
    response = app_without_redis.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"]["status"] == "error"
    assert response.json["checks"]["database"]["status"] == "ok"


def test_reads_degrade_to_the_database_when_redis_is_down(app_without_redis):
    """It serves reads from the database, uncached, while Redis is down."""
    client = app_without_redis.test_client()
    location = client.post("/api/items", json={"name": "still works"}).headers["Location"]
    for _ in range(2):
        response = client.get(location)
        assert response.status_code == 200
        assert response.headers["X-Cache"] == "miss"


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a Redis server: set REDIS_URL")
def test_cached_read_lands_in_redis(client):
    """It stores a read item in Redis under the app's key prefix."""
    import redis

    location = client.post("/api/items", json={"name": "in redis"}).headers["Location"]
    client.get(location)
    server = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert server.keys("{{ cookiecutter.package_name }}:item:*")
    assert client.get(location).headers["X-Cache"] == "hit"
