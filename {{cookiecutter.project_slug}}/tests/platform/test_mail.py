"""Outbound mail: MAIL_URL and MAIL_FROM are checked at start (a password never shown); messages
have text and HTML parts from templates; delivery goes through a real SMTP conversation (a
small server on loopback, below) to exactly the envelope's one recipient, whatever the headers
say, in TLS or not at all when the URL has credentials, and a down, slow or deferring server
raises Deferred within MAIL_TIMEOUT; a request hands over a job's name and an address only, and
the job runs later in an app context; with no MAIL_URL, the service starts and says so in one
line, and sending answers 503.
"""

import json
import socket
import socketserver
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest
from aiosmtpd.controller import Controller
from werkzeug.exceptions import ServiceUnavailable

from {{ cookiecutter.package_name }}.platform import mail
from {{ cookiecutter.package_name }}.settings import Settings, SettingsError, load_settings
from tests.mail_sink import Printer

SENDER = "My Service <no-reply@example.com>"
PUBLIC_URL = "https://app.example.com"


def mail_to(url: str, **overrides) -> dict:
    """Return the settings sending mail to the server at ``url``."""
    return {"mail_url": url, "mail_from": SENDER, "public_url": PUBLIC_URL, **overrides}


class SmtpHandler(socketserver.StreamRequestHandler):
    """Speak enough SMTP (RFC 5321) for smtplib: keep each message's data, answer DATA with
    the server's ``reply``, offer the server's ``extensions`` to EHLO."""

    timeout = 10  # a client that stops talking ends its connection

    server: "SmtpServer"

    def handle(self) -> None:
        """Answer one client's commands until QUIT or the end of its connection."""
        self.wfile.write(b"220 test SMTP\r\n")
        for _ in range(100):  # commands per connection, bounded
            line = self.rfile.readline()
            verb = line[:4].upper()
            if not line or verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            if verb == b"EHLO":
                lines = [b"test", *self.server.extensions]
                for number, text in enumerate(lines, 1):
                    last = number == len(lines)
                    self.wfile.write(b"250" + (b" " if last else b"-") + text + b"\r\n")
            elif verb == b"RCPT":  # RCPT TO:<address>: an envelope recipient
                self.server.recipients.append(line.decode().partition("<")[2].partition(">")[0])
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"AUTH":
                self.server.logins.append(line)
                self.wfile.write(b"235 ok\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 end with a dot\r\n")
                data = [self.rfile.readline() for _ in range(1)]
                while data[-1] not in (b".\r\n", b"") and len(data) < 10_000:
                    data.append(self.rfile.readline())
                self.server.messages.append(b"".join(data[:-1]))
                self.wfile.write(self.server.reply + b"\r\n")
            else:
                self.wfile.write(b"250 ok\r\n")


class SmtpServer(socketserver.ThreadingTCPServer):
    """An SMTP server on a free loopback port, keeping what it receives."""

    daemon_threads = True

    def __init__(self, extensions=(), reply=b"250 queued") -> None:
        """Listen on 127.0.0.1, offering ``extensions`` and answering DATA with ``reply``."""
        super().__init__(("127.0.0.1", 0), SmtpHandler)
        self.extensions, self.reply = [*extensions], reply
        self.messages: list[bytes] = []
        self.recipients: list[str] = []
        self.logins: list[bytes] = []

    @property
    def url(self) -> str:
        """Return the smtp:// URL of this server."""
        return f"smtp://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def smtp_server():
    """Return a function starting an SMTP server on loopback, stopped after the test."""
    servers = []

    def start(**kwargs) -> SmtpServer:
        server = SmtpServer(**kwargs)
        # shutdown() waits for the loop's next poll: poll often, so a stop is prompt.
        poll = {"poll_interval": 0.05}
        threading.Thread(target=server.serve_forever, kwargs=poll, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def part(message: EmailMessage, subtype: str) -> str:
    """Return the text of the message's part of this subtype (plain, html)."""
    body = message.get_body((subtype,))
    assert body is not None, f"no {subtype} part"
    return str(body.get_content())


def settings_for(url: str, timeout: float = 5) -> Settings:
    """Return settings sending to ``url``."""
    return load_settings(Settings, {"app_env": "test", **mail_to(url, mail_timeout=timeout)})


def a_message(app, to: str = "ada@example.com") -> mail.Envelope:
    """Return the password reset message to ``to`` for its address, rendered in ``app``."""
    with app.test_request_context():
        return mail.Envelope(
            to, mail.message(to, "Hello", "password_reset", link="https://x.test/r?t=1")
        )


def test_a_message_has_text_and_html_parts_from_the_templates(make_app):
    """It renders mail/<name>.txt and .html into one message from MAIL_FROM, the HTML escaped."""
    app = make_app(**mail_to("smtp://127.0.0.1:1"))
    with app.test_request_context():
        sent = mail.message(
            "ada@example.com", "Hi", "password_reset", link="https://x.test/?a=1&b=<2>"
        )
    assert (sent["From"], sent["To"], sent["Subject"]) == (SENDER, "ada@example.com", "Hi")
    text, html = part(sent, "plain"), part(sent, "html")
    assert "https://x.test/?a=1&b=<2>" in text
    assert "https://x.test/?a=1&amp;b=&lt;2&gt;" in html


def test_a_message_has_a_date_and_a_message_id_in_the_senders_domain(make_app):
    """It gives each message the Date RFC 5322 requires and a Message-ID of its own, in
    MAIL_FROM's domain (large mail providers refuse mail without one)."""
    app = make_app(**mail_to("smtp://127.0.0.1:1"))
    with app.test_request_context():
        sent = [mail.message("ada@example.com", "Hi", "password_reset", link="x") for _ in "ab"]
    assert all(parsedate_to_datetime(m["Date"]).tzinfo is not None for m in sent), sent
    ids = {m["Message-ID"] for m in sent}
    assert len(ids) == 2 and all(i.endswith("@example.com>") for i in ids), ids


def test_a_message_is_delivered_through_smtp(make_app, smtp_server):
    """It delivers a message to the server MAIL_URL names, its parts intact."""
    server = smtp_server()
    envelope = a_message(make_app(**mail_to(server.url)))
    mail.deliver(settings_for(server.url), envelope)
    [received] = server.messages
    delivered = message_from_bytes(received, policy=policy.default)
    assert delivered["To"] == "ada@example.com" and server.recipients == ["ada@example.com"]
    assert "https://x.test/r?t=1" in part(delivered, "plain")


def test_make_mails_server_prints_a_delivered_link_whole(make_app, capsys):
    """It prints, as ``make mail`` does, the recipient, subject and text part of a delivered
    message, decoded: a link longer than a mail's line reads whole, as it is to be opened."""
    with socket.socket() as probe:  # a free loopback port for aiosmtpd, which needs a number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Printer(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        url = f"smtp://127.0.0.1:{port}"
        link = "http://localhost:8000/verify-email?token=" + "t0ken-" * 20  # past 78 characters
        with make_app(**mail_to(url)).test_request_context():
            sent = mail.message("ada@example.com", "Hello", "password_reset", link=link)
        mail.deliver(settings_for(url), mail.Envelope("ada@example.com", sent))
    finally:
        controller.stop()
    printed = capsys.readouterr().out
    assert "To: ada@example.com\nSubject: Hello\n" in printed
    assert f"\n{link}\n" in printed


def test_the_envelope_names_its_one_recipient_whatever_the_headers_say(make_app, smtp_server):
    """It gives SMTP the envelope's recipient alone: addresses in To, Cc or Bcc headers (which
    smtplib would read without one) receive nothing."""
    server = smtp_server()
    envelope = a_message(make_app(**mail_to(server.url)))
    del envelope.message["To"]
    envelope.message["To"] = "x<attacker@evil.example>@bank.example, victim@example.org"
    envelope.message["Cc"], envelope.message["Bcc"] = "cc@evil.example", "bcc@evil.example"
    mail.deliver(settings_for(server.url), envelope)
    assert server.recipients == ["ada@example.com"] and len(server.messages) == 1


def test_a_password_is_never_sent_without_tls(make_app, smtp_server):
    """It refuses to sign in to an smtp:// server that offers no STARTTLS, sending nothing."""
    server = smtp_server()
    envelope = a_message(make_app(**mail_to(server.url)))
    with_password = server.url.replace("//", "//user:secret@")
    with pytest.raises(OSError, match="no STARTTLS"):
        mail.deliver(settings_for(with_password), envelope)
    assert server.logins == [] and server.messages == []


def test_starttls_is_used_when_the_server_offers_it(make_app, smtp_server):
    """It starts TLS on an smtp:// server offering STARTTLS (this one cannot: delivery fails
    rather than going on in clear)."""
    server = smtp_server(extensions=[b"STARTTLS"])
    envelope = a_message(make_app(**mail_to(server.url)))
    with pytest.raises(mail.Deferred):
        mail.deliver(settings_for(server.url, timeout=1), envelope)
    assert server.messages == []


@pytest.mark.parametrize(("reply", "deferred"), [(b"451 try later", True), (b"554 no", False)])
def test_a_refusal_is_deferred_only_when_temporary(make_app, smtp_server, reply, deferred):
    """It raises Deferred on a 4xx (a retry may succeed), the server's own error on a 5xx."""
    server = smtp_server(reply=reply)
    envelope = a_message(make_app(**mail_to(server.url)))
    with pytest.raises((mail.Deferred, OSError)) as caught:
        mail.deliver(settings_for(server.url), envelope)
    assert isinstance(caught.value, mail.Deferred) == deferred


def test_a_down_server_is_deferred(make_app):
    """It raises Deferred when nothing listens at MAIL_URL."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"smtp://127.0.0.1:{unused.getsockname()[1]}"
    with pytest.raises(mail.Deferred):
        mail.deliver(settings_for(url), a_message(make_app(**mail_to(url))))


def test_a_silent_server_is_deferred_after_the_timeout(make_app):
    """It gives up on a server that accepts the connection and never answers, after
    MAIL_TIMEOUT, raising Deferred."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"smtp://127.0.0.1:{silent.getsockname()[1]}"
        envelope = a_message(make_app(**mail_to(url)))
        started = time.monotonic()
        with pytest.raises(mail.Deferred):
            mail.deliver(settings_for(url, timeout=0.5), envelope)
        assert 0.4 < time.monotonic() - started < 3


def test_sending_hands_over_a_jobs_name_and_an_address_only(make_app):
    """It gives the app's queue (a task, or a thread) the job's name and the address, nothing
    made from them (no message, no token), and returns at once."""
    app = make_app(**mail_to("smtp://127.0.0.1:1"))
    handed: list[tuple[str, str]] = []
    app.extensions["mail"] = lambda name, address: handed.append((name, address))
    with app.test_request_context():
        mail.send_later("greeting", "ada@example.com")
    assert handed == [("greeting", "ada@example.com")]


def test_a_job_runs_on_a_thread_in_an_app_context_and_its_message_is_delivered(
    make_app, smtp_server
):
    """It runs a registered job later, on a thread of the process, in an app context, and
    delivers the message it returns to its recipient; a job returning None sends nothing."""
    server = smtp_server()
    app = make_app(**mail_to(server.url))
    mail.register(app, "greeting", lambda address: a_message(app, address))
    mail.register(app, "nothing", lambda address: None)
    with app.test_request_context():
        mail.send_later("nothing", "bob@example.com")
        mail.send_later("greeting", "ada@example.com")
    for _ in range(100):  # up to 5 s
        if server.messages:
            break
        time.sleep(0.05)
    assert server.recipients == ["ada@example.com"] and len(server.messages) == 1


def test_without_a_mail_url_the_service_starts_says_so_and_sending_answers_503(make_app, capsys):
    """It starts with mail off, logging it in one line, and refuses to send with a 503."""
    app = make_app()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines if "mail" in line["message"]] == [
        "mail is off: MAIL_URL is unset, so features that send mail answer 503"
    ]
    with app.test_request_context(), pytest.raises(ServiceUnavailable, match="MAIL_URL is unset"):
        mail.send_later("greeting", "ada@example.com")


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        (
            {"MAIL_URL": "http://user:pw-1@mail.example"},
            "MAIL_URL='http://user:***@mail.example': a mail URL starts with smtp://",
        ),
        ({"MAIL_URL": "smtp://mail.example:99999"}, "the port of a mail URL is a number"),
        ({"MAIL_URL": "smtps://"}, "a mail URL names a host"),
        ({"MAIL_URL": "smtps://mail.example"}, "MAIL_FROM is not set; MAIL_URL needs a sender"),
        ({"MAIL_URL": "smtps://mail.example", "MAIL_FROM": SENDER}, "PUBLIC_URL is not set"),
        ({"PUBLIC_URL": "app.example.com"}, "PUBLIC_URL='app.example.com': a public URL is"),
        ({"MAIL_FROM": "no address"}, "MAIL_FROM='no address': a sender is an address"),
    ],
)
def test_bad_mail_settings_are_refused_in_one_line(monkeypatch, variables, problem):
    """It refuses a MAIL_URL that is not smtp:// or smtps:// with a host and port (its
    password masked), or without a sender and a public URL, a sender that is no address, and
    a public URL that is no http(s) address."""
    monkeypatch.setenv("APP_ENV", "test")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(Settings)
    assert problem in str(caught.value) and "pw-1" not in str(caught.value)
