"""Background tasks: the example task processes an item once; the web enqueues it safely."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.package_name }} import worker
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.items import tasks
from {{ cookiecutter.package_name }}.items.models import PENDING, Item
from {{ cookiecutter.package_name }}.items.tasks import process_item, requeue_pending_items
from {{ cookiecutter.package_name }}.platform import celery_app
from {{ cookiecutter.package_name }}.platform.celery_app import celery_config
from {{ cookiecutter.package_name }}.platform.timestamps import utc_now
from {{ cookiecutter.package_name }}.settings import SettingsError
from tests.conftest import writer_of


def pending_item(app, age: float = 0) -> int:
    """Store an item pending for ``age`` seconds and return its id."""
    with app.app_context():
        item = Item(name="queued", status=PENDING, created_at=utc_now() - timedelta(seconds=age))
        db.session.add(item)
        db.session.commit()
        return item.id


def stored(app, item_id: int) -> Item:
    """Return the item as the database holds it."""
    with app.app_context():
        item = db.session.get_one(Item, item_id)
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
        tasks.process_item.apply(args=(item_id,))  # eager: a retry runs again at once
    assert len(calls) == 2
    assert stored(app, item_id).status == "processed"


def test_the_task_leaves_a_missing_item_alone(app):
    """It finishes without error when the item is gone."""
    assert process_item(10**6) is False


def test_a_posted_item_is_processed_by_its_task(writer):
    """It answers pending, then serves the item processed (eager tasks: web and task in one)."""
    created = writer.post("/api/items", json={"name": "work"})
    assert (created.status_code, created.json["status"]) == (201, "pending")
    assert writer.get(created.headers["Location"]).json["status"] == "processed"


def test_the_task_logs_the_request_id_of_the_request_that_enqueued_it(writer, caplog):
    """It stamps the task's log lines with the X-Request-ID of the POST."""
    with caplog.at_level(logging.INFO):
        writer.post("/api/items", json={"name": "traced"}, headers={"X-Request-ID": "trace-1"})
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
        created = writer_of(unreachable_broker_app).post("/api/items", json={"name": "stuck"})
    assert (created.status_code, created.json["status"]) == (201, "pending")
    assert [r for r in caplog.records if "not enqueued" in r.getMessage()]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("task_serializer", "json"),
        ("accept_content", ("json",)),
        ("task_acks_late", True),
        ("task_reject_on_worker_lost", True),
        ("worker_prefetch_multiplier", 1),
        ("task_time_limit", 30),
        ("task_soft_time_limit", 25),
    ],
)
def test_no_task_is_lost_or_unpickled(app, key, expected):
    """It acknowledges tasks late, reserves one at a time, bounds them and speaks JSON only."""
    assert app.extensions["celery"].conf[key] == expected


def test_tasks_run_in_the_worker_without_redis_url_only_in_process(app):
    """It runs tasks at once in the calling process when no broker is configured."""
    settings = app.extensions["settings"].model_copy(
        update={"redis_url": None, "celery_task_always_eager": False}
    )
    assert celery_config(settings)["task_always_eager"] is True


def test_a_pending_item_is_never_served_from_the_cache(unreachable_broker_app):
    """It reads a pending item from the database every time, so its task's result shows at once."""
    client = writer_of(unreachable_broker_app)
    location = client.post("/api/items", json={"name": "waiting"}).headers["Location"]
    reads = [client.get(location) for _ in range(2)]
    assert [(r.json["status"], r.headers["X-Cache"]) for r in reads] == [("pending", "miss")] * 2


@pytest.fixture
def requeue_app(make_app):
    """Return an app whose scheduler re-queues items pending longer than a minute."""
    return make_app(celery_requeue_after=60)


def test_the_scheduler_requeues_items_left_pending_too_long(requeue_app):
    """It sends the task of items pending longer than CELERY_REQUEUE_AFTER, and of no other."""
    app = requeue_app
    stale, recent = pending_item(app, age=120), pending_item(app, age=1)
    assert requeue_pending_items() == 1
    assert stored(app, stale).status == "processed"
    assert stored(app, recent).status == "pending"


def test_nothing_is_requeued_while_tasks_wait_in_the_queue(requeue_app, monkeypatch):
    """It sends nothing while the queue holds tasks: the workers are behind or down."""
    app = requeue_app
    stale = pending_item(app, age=120)
    monkeypatch.setattr(tasks, "queue_length", lambda app: 3)
    assert requeue_pending_items() == 0
    assert stored(app, stale).status == "pending"


def test_a_scheduled_task_gets_a_fresh_request_id_that_its_tasks_carry(requeue_app, caplog):
    """It logs each scheduler-started run under a new id, and the re-queued task under the same."""
    app = requeue_app
    ids = []
    for _ in range(2):
        item_id = pending_item(app, age=120)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            requeue_pending_items.apply()  # as beat sends it: no request id in its headers
        (run,) = [r for r in caplog.records if r.getMessage() == "pending items re-queued"]
        (task,) = [r for r in caplog.records if getattr(r, "item_id", None) == item_id]
        assert run.request_id and task.request_id == run.request_id
        ids.append(run.request_id)
    assert ids[0] != ids[1]


def test_the_schedule_runs_a_registered_task_at_the_configured_interval(make_app):
    """It sends the re-queue task every CELERY_REQUEUE_INTERVAL, expiring when the next is due."""
    app = make_app(celery_requeue_interval=7)
    assert celery_config(app.extensions["settings"])["beat_schedule"] == {}  # features add theirs
    entry = app.extensions["celery"].conf.beat_schedule[requeue_pending_items.name]
    assert entry["task"] in app.extensions["celery"].tasks
    assert entry["schedule"] == 7 and entry["options"]["expires"] == 7


def test_a_visibility_timeout_a_running_task_could_outlast_is_refused(make_app):
    """It refuses CELERY_VISIBILITY_TIMEOUT not above CELERY_TASK_TIME_LIMIT, naming both."""
    with pytest.raises(SettingsError, match=r"CELERY_VISIBILITY_TIMEOUT .*CELERY_TASK_TIME_LIMIT"):
        make_app(celery_task_time_limit=30, celery_visibility_timeout=30)
    app = make_app(celery_task_time_limit=10, celery_visibility_timeout=11)
    options = celery_config(app.extensions["settings"])["broker_transport_options"]
    assert options["visibility_timeout"] == 11


@pytest.fixture
def queued_app(unreachable_broker_app):
    """Return an app sending tasks through a Redis queue (which refuses connections)."""
    return unreachable_broker_app


def test_readiness_reports_the_queue_length(queued_app, monkeypatch):
    """It reports the number of tasks waiting in the queue in /readyz's body."""
    monkeypatch.setattr(celery_app, "queue_length", lambda app: 4)
    ready = queued_app.test_client().get("/readyz")
    assert ready.json["checks"]["task_queue"] == {
        "status": "ok",
        "length": 4,
        "duration_ms": ready.json["checks"]["task_queue"]["duration_ms"],
    }


def test_readiness_does_not_depend_on_the_queue(queued_app):
    """It stays ready (200, degraded) when the queue cannot be read."""
    ready = queued_app.test_client().get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"]["task_queue"]["status"] == "degraded"


def test_tasks_run_in_process_leave_no_queue_in_readiness(client):
    """It reports no queue when tasks run at once in the process that sends them."""
    assert "task_queue" not in client.get("/readyz").json["checks"]


@pytest.fixture
def writer_without_redis(make_app):
    """Return a writer of an app without REDIS_URL (built before caplog: it configures logging)."""
    return writer_of(make_app(redis_url=None))


def test_a_task_run_in_process_without_redis_logs_no_warning(writer_without_redis, caplog):
    """Without REDIS_URL the item's task runs where it is sent, and nothing warns about a broker."""
    client = writer_without_redis
    with caplog.at_level(logging.INFO):
        assert client.post("/api/items", json={"name": "quiet"}).status_code == 201
    assert "item processed" in [r.getMessage() for r in caplog.records]  # the log was heard
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


ENTRY_POINT = """
import {{ cookiecutter.package_name }}.worker as entry
print("imported")
entry.celery_app
"""


def test_importing_the_entry_point_builds_no_app(run_python):
    """It imports without settings, and builds the app (here: refuses) when asked for celery_app."""
    run = run_python("-c", ENTRY_POINT, APP_ENV="production")
    assert run.stdout.splitlines()[-1:] == ["imported"], run.stderr
    assert run.returncode == 1 and "SECRET_KEY" in run.stderr


def test_a_bad_setting_stops_the_worker_command_with_one_line_naming_it(run_python):
    """It exits 1 with one line on STDERR naming the variable, as the flask commands do."""
    app = "{{ cookiecutter.package_name }}.worker:celery_app"
    result = run_python(
        "-m", "celery", "--app", app, "--quiet", "worker", APP_ENV="development", LOG_LEVEL="LOUD"
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: Invalid settings: LOG_LEVEL='LOUD': Input should be"), line


def test_the_entry_point_builds_the_app_once(settings_overrides, monkeypatch):
    """It gives Celery the same app each time it asks."""
    worker.flask_app.cache_clear()
    for name, value in settings_overrides.items():
        monkeypatch.setenv(name.upper(), "" if value is None else str(value))
    assert worker.celery_app is worker.celery_app is worker.flask_app().extensions["celery"]
    worker.flask_app.cache_clear()
