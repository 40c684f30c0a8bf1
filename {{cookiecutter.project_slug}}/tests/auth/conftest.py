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


@pytest.fixture
def mail_app(make_app):
    """Return a function building an app that sends mail into its ``outbox`` attribute."""

    def make(factory=make_app, **overrides):
        app = factory(**MAIL, **overrides)
        app.outbox = app.extensions["mail"] = Outbox()
        return app

    return make
