"""Fixtures of the accounts' tests: an app whose mail is kept in a list instead of sent."""

from email import message_from_string, policy
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.platform.test_mail import mail_to, part

MAIL = mail_to("smtp://127.0.0.1:1")  # never reached: the app's mail queue is the outbox


class Outbox(list):
    """The messages an app handed over to be delivered, parsed."""

    def __call__(self, text: str) -> None:
        """Keep a message the app sends (the app's mail queue)."""
        self.append(message_from_string(text, policy=policy.default))

    def token(self) -> str:
        """Return the reset token of the last message's link."""
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
