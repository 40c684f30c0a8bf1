"""Background tasks: the example task processes an item once; the web enqueues it safely."""

import logging

import pytest
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.package_name }} import tasks
from {{ cookiecutter.package_name }}.celery_app import celery_config
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.models import PENDING, Item, utc_now
from {{ cookiecutter.package_name }}.tasks import process_item


def pending_item(app) -> int:
    """Store a pending item and return its id."""
    with app.app_context():
        item = Item(name="queued", status=PENDING)
        db.session.add(item)
        db.session.commit()
        return item.id


def stored(app, item_id: int) -> Item:
    """Return the item as the database holds it."""
    with app.app_context():
        item = db.session.get(Item, item_id)
        db.session.expunge(item)
        return item


def test_the_task_marks_a_pending_item_processed_once(app):
    """It marks the item processed with a time, and a repeated run changes nothing."""
    item_id = pending_item(app)
    assert process_item(item_id) is True
    first = stored(app, item_id)
    assert first.status == "processed" and first.processed_at is not None
    assert process_item(item_id) is False  # a redelivered task
    assert stored(app, item_id).processed_at == first.processed_at


def test_a_transient_database_error_is_retried(app, monkeypatch):
    """It runs the task again after a dropped connection, and the item ends processed."""
    item_id = pending_item(app)
    calls = []

    def flaky_now():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE items", {}, ConnectionError("server closed"))
        return utc_now()

    monkeypatch.setattr(tasks, "utc_now", flaky_now)
    with app.app_context():
        tasks.process_item.apply(args=[item_id])  # eager: a retry runs again at once
    assert len(calls) == 2
    assert stored(app, item_id).status == "processed"


def test_the_task_leaves_a_missing_item_alone(app):
    """It finishes without error when the item is gone."""
    assert process_item(10**6) is False


def test_a_posted_item_is_processed_by_its_task(client):
    """It answers pending, then serves the item processed (eager tasks: web and task in one)."""
    created = client.post("/api/items", json={"name": "work"})
    assert (created.status_code, created.json["status"]) == (201, "pending")
    assert client.get(created.headers["Location"]).json["status"] == "processed"


def test_the_task_logs_the_request_id_of_the_request_that_enqueued_it(client, caplog):
    """It stamps the task's log lines with the X-Request-ID of the POST."""
    with caplog.at_level(logging.INFO):
        client.post("/api/items", json={"name": "traced"}, headers={"X-Request-ID": "trace-1"})
    (line,) = [r for r in caplog.records if r.getMessage() == "item processed"]
    assert line.request_id == "trace-1"


@pytest.fixture
def unreachable_broker_app(make_app):
    """Return an app whose tasks go to a broker that refuses connections."""
    app = make_app()
    app.extensions["celery"].conf.update(
        task_always_eager=False, broker_url="redis://127.0.0.1:9/0"
    )
    return app


def test_an_unreachable_broker_still_answers_with_the_item_pending(unreachable_broker_app, caplog):
    """It answers 201 with the item pending and logs that the task was not enqueued."""
    with caplog.at_level(logging.ERROR):
        created = unreachable_broker_app.test_client().post("/api/items", json={"name": "stuck"})
    assert (created.status_code, created.json["status"]) == (201, "pending")
    assert [r for r in caplog.records if "not enqueued" in r.getMessage()]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("task_serializer", "json"),
        ("accept_content", ["json"]),
        ("task_acks_late", True),
        ("task_reject_on_worker_lost", True),
        ("worker_prefetch_multiplier", 1),
        ("task_time_limit", 30),
        ("task_soft_time_limit", 25),
    ],
)
def test_no_task_is_lost_or_unpickled(app, key, expected):
    """It acknowledges tasks late, reserves one at a time, bounds them and speaks JSON only."""
    assert celery_config(app.extensions["settings"])[key] == expected


def test_tasks_run_in_the_worker_without_redis_url_only_in_process(app):
    """It runs tasks at once in the calling process when no broker is configured."""
    settings = app.extensions["settings"].model_copy(
        update={"redis_url": None, "celery_task_always_eager": False}
    )
    assert celery_config(settings)["task_always_eager"] is True


def test_a_pending_item_is_never_served_from_the_cache(unreachable_broker_app):
    """It reads a pending item from the database every time, so its task's result shows at once."""
    client = unreachable_broker_app.test_client()
    location = client.post("/api/items", json={"name": "waiting"}).headers["Location"]
    reads = [client.get(location) for _ in range(2)]
    assert [(r.json["status"], r.headers["X-Cache"]) for r in reads] == [("pending", "miss")] * 2
