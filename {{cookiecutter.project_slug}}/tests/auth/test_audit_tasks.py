"""The audit trail's periodic task: the scheduler runs it once a day, and each run drops the events
older than AUDIT_RETENTION_DAYS, keeps the newer ones, and retries when the database drops out.
"""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from {{ cookiecutter.package_name }}.auth import audit
from {{ cookiecutter.package_name }}.auth.audit import Action, AuditEvent
from {{ cookiecutter.package_name }}.auth.audit_tasks import prune_audit_trail
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform.timestamps import as_utc, utc_now
from tests.auth.test_audit import add_events


def add_aged(app, *ages: int) -> None:
    """Store a signed_out event per age, in days."""
    now = utc_now()
    add_events(app, *[(Action.SIGNED_OUT, None, now - timedelta(days=age)) for age in ages])


def ages(app) -> list[int]:
    """Return the age in whole days of each stored event, oldest first."""
    with app.app_context():
        times = db.session.scalars(select(AuditEvent.at).order_by(AuditEvent.at)).all()
    return [(utc_now() - as_utc(at)).days for at in times]


@pytest.fixture
def month_app(make_app):
    """Return an app keeping 30 days of events (built before caplog: it configures logging)."""
    return make_app(audit_retention_days=30)


def test_a_run_drops_the_events_older_than_the_retention_and_keeps_the_rest(month_app, caplog):
    """It drops the events older than AUDIT_RETENTION_DAYS, says how many in its result and its
    log line, and a repeated run drops none."""
    app = month_app
    add_aged(app, 400, 31, 29, 1)
    with caplog.at_level(logging.INFO):
        run = prune_audit_trail.apply()  # as the scheduler sends it: in the app's context
    assert run.get() == 2
    assert ages(app) == [29, 1]
    (line,) = [r for r in caplog.records if r.getMessage() == "audit trail pruned"]
    assert (line.count, line.days) == (2, 30)
    assert prune_audit_trail.apply().get() == 0
    assert ages(app) == [29, 1]


def test_a_transient_database_error_is_retried(month_app, monkeypatch):
    """It runs the prune again after a dropped connection, and the old events end dropped."""
    app = month_app
    add_aged(app, 60, 10)
    calls = []
    prune = audit.prune

    def flaky_prune(days: int) -> int:
        calls.append(days)
        if len(calls) == 1:
            raise OperationalError("DELETE FROM audit_events", {}, ConnectionError("server closed"))
        return prune(days)

    monkeypatch.setattr(audit, "prune", flaky_prune)
    assert prune_audit_trail.apply().get() == 1  # eager: a retry runs again at once
    assert calls == [30, 30]
    assert ages(app) == [10]


def test_the_scheduler_sends_the_prune_once_a_day(make_app):
    """It schedules the registered prune task every 86,400 s, expiring when the next is due."""
    app = make_app()
    celery = app.extensions["celery"]
    entry = celery.conf.beat_schedule[prune_audit_trail.name]
    assert entry["task"] == prune_audit_trail.name and entry["task"] in celery.tasks
    assert entry["schedule"] == 86_400 and entry["options"]["expires"] == 86_400
