"""Mail through Celery: a task runs each mail job (by its name, for an address: the worker makes
the message and its token) and delivers the message, retried while the server cannot take it;
where tasks would run in the request (eager) or the broker refuses one, a thread does it."""

import pytest

from {{ cookiecutter.package_name }}.platform import mail, mail_tasks
from tests.platform.test_mail import a_message, mail_to


@pytest.fixture
def mail_app(make_app):
    """Return an app sending mail to a server that is never reached (delivery is replaced),
    with a job ``greeting`` mailing each address it is given."""
    app = make_app(**mail_to("smtp://127.0.0.1:1"))
    mail.register(app, "greeting", lambda address: a_message(app, address))
    return app


def test_the_task_retries_while_the_server_defers(mail_app, monkeypatch):
    """It tries again after a Deferred (the server down, slow or saying 4xx), until it is sent,
    running the job afresh each time."""
    tries: list[str] = []

    def deliver(settings, envelope: mail.Envelope) -> None:
        tries.append(envelope.recipient)
        if len(tries) < 3:
            raise mail.Deferred("451 try later")

    monkeypatch.setattr(mail, "deliver", deliver)
    with mail_app.app_context():
        mail_tasks.deliver_mail.apply(args=("greeting", "ada@example.com")).get()
    assert tries == ["ada@example.com"] * 3


def test_a_permanent_refusal_is_not_retried(mail_app, monkeypatch):
    """It fails at once on an error another try cannot mend (a 5xx, credentials refused)."""
    tries: list[str] = []

    def deliver(settings, envelope: mail.Envelope) -> None:
        tries.append(envelope.recipient)
        raise PermissionError("535 authentication failed")

    monkeypatch.setattr(mail, "deliver", deliver)
    with mail_app.app_context(), pytest.raises(PermissionError):
        mail_tasks.deliver_mail.apply(args=("greeting", "ada@example.com")).get()
    assert tries == ["ada@example.com"]


@pytest.mark.parametrize(
    ("eager", "enqueued", "by_thread"),
    [(False, True, False), (False, False, True), (True, True, True)],
)
def test_mail_goes_by_task_else_by_thread(mail_app, monkeypatch, eager, enqueued, by_thread):
    """It hands a job's name and address to the task; to a thread when tasks run eagerly
    (retries would hold the request) or when the broker refused the task."""
    sent: list[tuple[str, ...]] = []
    threaded: list[tuple[str, str]] = []

    def send(task, *args: str) -> bool:
        sent.append(args)
        return enqueued

    monkeypatch.setattr(mail_tasks, "send", send)
    monkeypatch.setattr(mail, "run_in_background", lambda app, *args: threaded.append(args))
    mail_app.extensions["celery"].conf.task_always_eager = eager
    mail_tasks.queue(mail_app)("greeting", "ada@example.com")
    job = ("greeting", "ada@example.com")
    assert threaded == ([job] if by_thread else [])
    assert sent == ([] if eager else [job])
