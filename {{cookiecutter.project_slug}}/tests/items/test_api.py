"""The example API creates, reads, lists, changes and deletes items and rejects bad input
clearly."""

import io
{%- if cookiecutter.use_postgres == "yes" %}
import os
{%- endif %}
import re
import threading
from datetime import UTC, datetime{% if cookiecutter.use_auth == "yes" %}, timedelta{% endif %}

import pytest
{%- if cookiecutter.use_postgres == "yes" %}
from sqlalchemy import text
{%- endif %}

{% if cookiecutter.use_auth == "yes" -%}
from {{ cookiecutter.package_name }}.auth.accounts import User, issue_token
{% endif -%}
{% if cookiecutter.use_postgres == "yes" or cookiecutter.use_auth == "yes" -%}
from {{ cookiecutter.package_name }}.extensions import db
{% endif -%}
from {{ cookiecutter.package_name }}.items.models import PROCESSED_BY_TASK{% if cookiecutter.use_auth == "yes" %}, Item, initial_state{% endif %}
from {{ cookiecutter.package_name }}.platform import caching
from tests.conftest import {% if cookiecutter.use_auth == "yes" %}hash_of, send_token, {% endif %}with_a_cache, writer_of

STATUS_FIELDS = ("status", "processed_at")


def test_create_read_list(writer):
    """It creates an item, serves it back processed, and lists it."""
    created = writer.post("/api/items", json={"name": "first", "description": "one"})
    assert created.status_code == 201
    item = created.json
    assert created.headers["Location"] == f"/api/items/{item['id']}"
    read = writer.get(created.headers["Location"]).json
    assert read["status"] == "processed"
    processed_at = datetime.fromisoformat(read["processed_at"])
    assert processed_at >= datetime.fromisoformat(item["created_at"])
    assert {k: v for k, v in read.items() if k not in STATUS_FIELDS} == {
        k: v for k, v in item.items() if k not in STATUS_FIELDS
    }
    listing = writer.get("/api/items").json
    assert listing["total"] == 1
    assert listing["items"] == [read]


def test_new_items_are_pending_until_processed(writer):
    """It answers a new item pending its task, or processed when no task processes it."""
    item = writer.post("/api/items", json={"name": "new"}).json
    if PROCESSED_BY_TASK:
        assert (item["status"], item["processed_at"]) == ("pending", None)
    else:
        assert item["status"] == "processed" and item["processed_at"]


def test_second_read_is_served_from_cache(writer, shared_cache):
    """It marks the first read a cache miss and the second a hit."""
    location = writer.post("/api/items", json={"name": "cached"}).headers["Location"]
    assert writer.get(location).headers["X-Cache"] == "miss"
    hit = writer.get(location)
    assert hit.headers["X-Cache"] == "hit"
    assert hit.json["name"] == "cached"
    assert hit.mimetype == "application/json"


def test_without_a_shared_cache_nothing_is_cached(make_app):
    """It answers every read from the database when no cache every worker shares is set: a
    worker's own memory would go on answering what another worker changed."""
    writer = writer_of(make_app({% if cookiecutter.use_redis == "yes" %}redis_url=None{% endif %}))
    location = writer.post("/api/items", json={"name": "uncached"}).headers["Location"]
    assert [writer.get(location).headers["X-Cache"] for _ in range(3)] == ["miss"] * 3


def test_no_read_is_cached_with_a_ttl_of_0(make_app):
    """It caches nothing with CACHE_TTL_SECONDS=0 (to a cache, a timeout of 0 is forever)."""
    writer = writer_of(with_a_cache(make_app(cache_ttl_seconds=0)))
    location = writer.post("/api/items", json={"name": "uncached"}).headers["Location"]
    assert [writer.get(location).headers["X-Cache"] for _ in range(2)] == ["miss"] * 2


def test_the_cache_is_read_outside_a_request_too(app, shared_cache):
    """It reads an entry in a command or task (an app context, no request), as in a view."""
    with app.app_context():
        caching.set("outside", b"stored", timeout=60)
        assert caching.get("outside") == b"stored"


def test_a_read_begun_before_a_change_stores_nothing(app, shared_cache):
    """It keeps no read's answer in a key forgotten since (the read began before the change and
    stores after it), and keeps none over a value already there."""
    with app.app_context():
        caching.forget("item", timeout=60)
        caching.keep("item", b"read before the change", timeout=60)
        assert caching.get("item") is None
        caching.keep("other", b"first", timeout=60)
        caching.keep("other", b"second", timeout=60)
        assert caching.get("other") == b"first"
        caching.forget("other", timeout=60)
        assert caching.get("other") is None


def test_update_replaces_the_name_and_description(writer, shared_cache):
    """It replaces both fields, answers the item as changed, and the next read shows the change
    though the item was cached."""
    created = writer.post("/api/items", json={"name": "old", "description": "was"})
    location = created.headers["Location"]
    writer.get(location)  # cached now
    changed = writer.put(location, json={"name": "new"})
    assert changed.status_code == 200, changed.text
    assert (changed.json["name"], changed.json["description"]) == ("new", "")
    unchanged = {k: v for k, v in created.json.items() if k not in ("name", "description")}
    assert {k: changed.json[k] for k in unchanged if k not in STATUS_FIELDS} == {
        k: v for k, v in unchanged.items() if k not in STATUS_FIELDS
    }
    read = writer.get(location)
    assert (read.headers["X-Cache"], read.json) == ("miss", changed.json)


def test_update_refuses_bad_input_and_changes_nothing(writer):
    """It answers 400 or 422 to a bad body and leaves the item as it was."""
    location = writer.post("/api/items", json={"name": "kept"}).headers["Location"]
    assert writer.put(location, data="[]", content_type="application/json").status_code == 400
    assert writer.put(location, json={"name": " "}).status_code == 422
    assert writer.put(location, json={"name": "x", "status": "pending"}).status_code == 422
    assert writer.get(location).json["name"] == "kept"


def test_delete_ends_the_item_and_its_cached_read(writer, shared_cache):
    """It answers 204 with no body; the item is gone from reads, the cache and the list, and a
    second delete or a change of it answers 404."""
    location = writer.post("/api/items", json={"name": "doomed"}).headers["Location"]
    assert writer.get(location).headers["X-Cache"] == "miss"
    assert writer.get(location).headers["X-Cache"] == "hit"
    deleted = writer.delete(location)
    assert (deleted.status_code, deleted.data) == (204, b"")
    assert writer.get(location).status_code == 404
    assert writer.get("/api/items").json["total"] == 0
    assert writer.delete(location).status_code == 404
    assert writer.put(location, json={"name": "back"}).status_code == 404


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize("item_id", ["999", "0", "2147483648", "99999999999999999999"])
def test_changing_an_item_that_does_not_exist_is_a_404(writer, method, item_id):
    """It answers 404 for any id no row can have, as a read does."""
    answer = writer.open(f"/api/items/{item_id}", method=method, json={"name": "x"})
    assert answer.status_code == 404, answer.text
    assert answer.json["error"]["detail"] == f"No item with id {int(item_id)}."


def test_the_same_delete_sent_at_once_succeeds_once(make_app):
    """It answers one of eight concurrent deletes of an item 204 and the others 404, never 500."""
    app = make_app()
    location = writer_of(app).post("/api/items", json={"name": "once"}).headers["Location"]
    clients = [writer_of(app) for _ in range(8)]
    statuses: list[int] = []
    start = threading.Barrier(len(clients))

    def send(client) -> None:
        start.wait(timeout=10)
        statuses.append(client.delete(location).status_code)

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [204] + [404] * 7
{%- if cookiecutter.use_auth == "yes" %}


def other_users_writer(app):
    """Return a client sending the token of a user who is not the test user."""
    with app.app_context():
        user = User(email="other@example.com", password_hash=hash_of("other-password"))
        db.session.add(user)
        db.session.commit()
        token = issue_token(user, timedelta(hours=1))[0]
    return send_token(app.test_client(), token)


def test_only_its_owner_changes_or_deletes_an_item(app, writer):
    """It answers 403 to another user's change or delete of an item, which stays as it was."""
    location = writer.post("/api/items", json={"name": "mine"}).headers["Location"]
    other = other_users_writer(app)
    for answer in (other.put(location, json={"name": "theirs"}), other.delete(location)):
        assert answer.status_code == 403, answer.text
        assert answer.json["error"]["detail"] == (
            "Only the user who created an item may change or delete it."
        )
    assert writer.get(location).json["name"] == "mine"
    assert writer.put(location, json={"name": "still mine"}).status_code == 200


def test_an_item_of_no_user_is_changed_by_none(app, writer):
    """It answers 403 to a change of an item made before users (its owner_id is null)."""
    with app.app_context():
        item = Item(name="seeded", **initial_state())
        db.session.add(item)
        db.session.commit()
        location = f"/api/items/{item.id}"
    assert writer.put(location, json={"name": "taken"}).status_code == 403
    assert writer.delete(location).status_code == 403
{%- endif %}
{%- if cookiecutter.use_postgres == "yes" %}


needs_postgres = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="needs a PostgreSQL server: set TEST_DATABASE_URL",
)


@needs_postgres
def test_a_read_the_database_is_too_slow_for_is_a_503(make_app):
    """It answers 503 when a read outlasts the statement timeout, and serves the next read.

    A lock held by another session keeps the read waiting; the server cancels it.
    """
    app = make_app(database_statement_timeout=0.2)
    client = writer_of(app)
    location = client.post("/api/items", json={"name": "locked"}).headers["Location"]
    with app.app_context():
        engine = db.engine
    locker = engine.connect()
    try:
        locker.execute(text("LOCK TABLE items IN ACCESS EXCLUSIVE MODE"))
        slow = client.get(location)
    finally:
        locker.rollback()
        locker.close()
    assert slow.status_code == 503, slow.text
    assert slow.json["error"]["detail"] == "The database did not answer in time; retry shortly."
    read = client.get(location)
    assert read.status_code == 200
    assert read.json["name"] == "locked"
    with app.app_context():
        db.engine.dispose()


@needs_postgres
def test_a_connection_returned_inside_a_transaction_goes_back_to_the_pool_idle(app):
    """It rolls back a pooled connection returned with a transaction open (psycopg tells)."""
    with app.app_context():
        borrowed = db.engine.raw_connection()
        driver = borrowed.driver_connection
        assert driver is not None
        borrowed.cursor().execute("SELECT 1")  # outside autocommit: a transaction opens
        assert driver.info.transaction_status.name == "INTRANS"
        borrowed.close()
        assert not driver.closed
        assert driver.info.transaction_status.name == "IDLE"
        db.engine.dispose()
{%- endif %}


def test_list_pages(writer):
    """It lists newest first with limit and offset."""
    for name in ("a", "b", "c"):
        writer.post("/api/items", json={"name": name})
    page = writer.get("/api/items?limit=2&offset=1").json
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
def test_invalid_body_is_422_naming_the_field(writer, body, field):
    """It answers 422 naming each invalid field, and stores nothing."""
    response = writer.post("/api/items", json=body)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json["error"]["detail"]]
    assert writer.get("/api/items").json["total"] == 0


def test_malformed_json_is_400(writer):
    """It answers 400 JSON to a body that is not JSON."""
    response = writer.post("/api/items", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["status"] == 400


def test_non_object_json_is_400(writer):
    """It answers 400 to JSON that is not an object."""
    assert writer.post("/api/items", json=["a"]).status_code == 400


def test_wrong_content_type_is_415(writer):
    """It answers 415 to a body that is not declared as JSON."""
    response = writer.post("/api/items", data="name=x", content_type="text/plain")
    assert response.status_code == 415


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "offset=-1"])
def test_invalid_paging_is_422(client, query):
    """It rejects out-of-range or non-numeric paging."""
    assert client.get(f"/api/items?{query}").status_code == 422


def test_writes_are_rate_limited(limited_app):
    """It answers 429 JSON once a client exceeds RATELIMIT_WRITE."""
    client = writer_of(limited_app(ratelimit_write="2 per minute"))
    statuses = [client.post("/api/items", json={"name": str(n)}).status_code for n in range(3)]
    assert statuses == [201, 201, 429]
    assert client.post("/api/items", json={"name": "x"}).json["error"]["status"] == 429


def test_created_at_is_utc_with_microseconds(writer):
    """It formats created_at the same way on every database: UTC, microseconds, +00:00."""
    created = writer.post("/api/items", json={"name": "when"}).json["created_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", created), created
    moment = datetime.fromisoformat(created)
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 60


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (b'{"name": "\xff"}', "not valid JSON"),
    ],
)
def test_bodies_that_are_not_json_are_400_saying_so(writer, body, message):
    """It answers 400 saying the body is not valid JSON, whatever is wrong with it."""
    response = writer.post("/api/items", data=body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json["error"]["detail"]


@pytest.mark.parametrize(
    "body",
    ['{"name": "nul\\u0000inside"}', '{"name": "\\ud800 lone surrogate"}'],
    ids=["nul", "surrogate"],
)
def test_text_no_database_can_store_is_422(writer, body):
    """It refuses NUL characters and unpaired surrogates before they reach the database."""
    response = writer.post("/api/items", data=body, content_type="application/json")
    assert response.status_code == 422, response.json
    assert response.json["error"]["detail"][0]["field"] == "name"
    assert writer.get("/api/items").json["total"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/items/0",
        "/api/items/2147483648",
        "/api/items/9223372036854775808",
        "/api/items/" + "9" * 40,
        "/api/items/%D9%A1",  # ARABIC-INDIC DIGIT ONE
        "/api/items/%EF%BC%91",  # FULLWIDTH DIGIT ONE
    ],
)
def test_ids_outside_the_column_or_not_ascii_are_404(writer, path):
    """It answers 404 JSON for ids no item can have, never another item or a 500."""
    writer.post("/api/items", json={"name": "number one"})
    response = writer.get(path)
    assert response.status_code == 404
    assert response.json["error"]["status"] == 404


@pytest.mark.parametrize("query", ["offset=2147483648", "offset=9223372036854775808"])
def test_paging_outside_the_columns_range_is_422(client, query):
    """It answers 422 naming the parameter instead of passing a huge number to the database."""
    response = client.get(f"/api/items?{query}")
    assert response.status_code == 422
    assert query.split("=")[0] in [error["field"] for error in response.json["error"]["detail"]]


def _streamed(client, body: bytes):
    """Post ``body`` as a stream of unknown length (as a chunked body reaches the app)."""
    return client.post(
        "/api/items",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_streamed_body_over_the_limit_is_413_and_stores_nothing(make_app):
    """It refuses a chunked body over MAX_CONTENT_LENGTH instead of storing its first part."""
    client = writer_of(make_app(max_content_length=1024))
    padding = " " * 2000
    response = _streamed(client, b'{"name": "cut"}' + padding.encode())
    assert response.status_code == 413
    assert response.json["error"]["title"] == "Request Entity Too Large"
    assert client.get("/api/items").json["total"] == 0


def test_a_streamed_body_within_the_limit_is_accepted(make_app):
    """It accepts a chunked body of exactly MAX_CONTENT_LENGTH bytes."""
    client = writer_of(make_app(max_content_length=1024))
    body = b'{"name": "fits"}'
    response = _streamed(client, body + b" " * (1024 - len(body)))
    assert response.status_code == 201, response.json
