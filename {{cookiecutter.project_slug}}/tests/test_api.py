"""The example API creates, reads and lists items and rejects bad input clearly."""

import pytest


def test_create_read_list(client):
    """It creates an item, serves it back, and lists it."""
    created = client.post("/api/items", json={"name": "first", "description": "one"})
    assert created.status_code == 201
    item = created.json
    assert created.headers["Location"] == f"/api/items/{item['id']}"
    assert client.get(created.headers["Location"]).json == item
    listing = client.get("/api/items").json
    assert listing["total"] == 1
    assert listing["items"] == [item]


def test_second_read_is_served_from_cache(client):
    """It marks the first read a cache miss and the second a hit."""
    location = client.post("/api/items", json={"name": "cached"}).headers["Location"]
    assert client.get(location).headers["X-Cache"] == "miss"
    assert client.get(location).headers["X-Cache"] == "hit"


def test_list_pages(client):
    """It lists newest first with limit and offset."""
    for name in ("a", "b", "c"):
        client.post("/api/items", json={"name": name})
    page = client.get("/api/items?limit=2&offset=1").json
    assert [item["name"] for item in page["items"]] == ["b", "a"]
    assert page["total"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 42}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "extra": 1}, "extra"),
        ({"name": "ok", "description": ["not", "text"]}, "description"),
    ],
)
def test_invalid_body_is_422_naming_the_field(client, body, field):
    """It answers 422 naming each invalid field, and stores nothing."""
    response = client.post("/api/items", json=body)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json["error"]["detail"]]
    assert client.get("/api/items").json["total"] == 0


def test_malformed_json_is_400(client):
    """It answers 400 JSON to a body that is not JSON."""
    response = client.post("/api/items", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["status"] == 400


def test_non_object_json_is_400(client):
    """It answers 400 to JSON that is not an object."""
    assert client.post("/api/items", json=["a"]).status_code == 400


def test_wrong_content_type_is_415(client):
    """It answers 415 to a body that is not declared as JSON."""
    response = client.post("/api/items", data="name=x", content_type="text/plain")
    assert response.status_code == 415


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "offset=-1"])
def test_invalid_paging_is_422(client, query):
    """It rejects out-of-range or non-numeric paging."""
    assert client.get(f"/api/items?{query}").status_code == 422


def test_writes_are_rate_limited(limited_client):
    """It answers 429 JSON once a client exceeds RATELIMIT_WRITE."""
    client = limited_client(ratelimit_write="2 per minute")
    statuses = [client.post("/api/items", json={"name": str(n)}).status_code for n in range(3)]
    assert statuses == [201, 201, 429]
    assert client.post("/api/items", json={"name": "x"}).json["error"]["status"] == 429
