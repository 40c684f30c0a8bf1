"""Fixtures of the accounts' tests: an app whose mail jobs run at once, their mail kept in a list
instead of sent."""

from email import message_from_string, policy
from urllib.parse import parse_qs, urlsplit

import pytest

from {{ cookiecutter.package_name }}.platform import mail
from tests.platform.test_mail import mail_to, part

MAIL = mail_to("smtp://127.0.0.1:1")  # never reached: the app's mail queue is the outbox


class Outbox(list):
    """The messages an app's mail jobs made, parsed; their envelope recipients in
    ``recipients``, and the jobs handed over in ``jobs``."""

    def __init__(self) -> None:
        """Start empty."""
        super().__init__()
        self.recipients: list[str] = []
        self.jobs: list[tuple[str, str]] = []

    def empty(self) -> None:
        """Forget every message, recipient and job."""
        self.clear()
        self.recipients.clear()
        self.jobs.clear()

    def __call__(self, name: str, address: str) -> None:
        """Run a job the app hands over (the app's mail queue) now, keeping its message."""
        self.jobs.append((name, address))
        envelope = mail.run_job(name, address)
        if envelope is not None:
            self.recipients.append(envelope.recipient)
            self.append(message_from_string(envelope.message.as_string(), policy=policy.default))

    def token(self) -> str:
        """Return the token of the last message's link."""
        text = part(self[-1], "plain")
        link = next(word for word in text.split() if word.startswith("https://app.example.com/"))
        return parse_qs(urlsplit(link).query)["token"][0]


def with_outbox(app) -> None:
    """Have ``app`` hand its mail jobs to an empty outbox, its ``outbox`` attribute (the one it
    has, emptied, when it has one: a shared app keeps its shape)."""
    if isinstance(app.extensions.get("mail"), Outbox):
        app.extensions["mail"].empty()
    else:
        app.outbox = app.extensions["mail"] = Outbox()


@pytest.fixture
def mail_app(shared_app):
    """Return a function giving an app that sends mail into its ``outbox`` attribute: the one the
    tests share for these overrides (shared_app), or one ``factory`` builds (make_app: the
    test's own, for a test that changes it)."""

    def make(factory=None, **overrides):
        if factory is None:
            return shared_app(with_outbox, **MAIL, **overrides)
        app = factory(**MAIL, **overrides)
        with_outbox(app)
        return app

    return make
