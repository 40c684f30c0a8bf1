"""Send mail through the server MAIL_URL names, with the standard library's smtplib and email:
SMTP with STARTTLS or TLS, and a message with text and HTML parts, is all the service needs,
and an extension would add a dependency and its release cycle for no more than that.

A feature registers mail jobs: a job takes an address and returns the message to send it (an
``Envelope``), or None to send nothing. A request hands over the job's name and the address
only, without waiting: to a background task with retries where create_app gives one, else to a
thread of this process. The job runs there, in an app context: it looks the address up, makes
any token, renders the message from templates the owner edits (``mail/<name>.txt`` and
``.html``), and it is delivered, each step bounded by MAIL_TIMEOUT. So a request does the same
work whether or not the address has an account, no request waits for a mail server, and no
token travels through a broker or a task's logged arguments. Each message goes to exactly one
envelope recipient, the job's address, given to SMTP explicitly (never read from a header).
"""

import logging
import smtplib
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import NamedTuple
from urllib.parse import SplitResult, unquote, urlsplit

from flask import Flask, current_app, render_template
from werkzeug.exceptions import ServiceUnavailable

from ..settings import Settings

log = logging.getLogger(__name__)
MAIL_OFF = "This service sends no mail (its MAIL_URL is unset): ask its operator."
# Messages of this process being delivered, 2 at a time: a burst waits its turn here, not in
# the requests that sent it.
SENDING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail")


class Envelope(NamedTuple):
    """A message and the one address it is delivered to (the envelope's only recipient)."""

    recipient: str
    message: EmailMessage


Job = Callable[[str], Envelope | None]  # an address -> its message, or None: no mail
Queue = Callable[[str, str], None]  # takes a job's name and an address, to run it later


class Deferred(Exception):
    """The mail server could not take a message now (unreachable, slow, a 4xx): try later."""


def is_on(app: Flask) -> bool:
    """Say whether the service sends mail (MAIL_URL is set)."""
    return bool(app.extensions["settings"].mail_url)


def require_mail() -> None:
    """Raise 503 unless the service sends mail: a feature that needs it says so."""
    if not is_on(current_app):
        raise ServiceUnavailable(MAIL_OFF)


def message(to: str, subject: str, template: str, **context: object) -> EmailMessage:
    """Return a message from MAIL_FROM to ``to``, its text and HTML parts rendered from the
    templates ``mail/<template>.txt`` and ``mail/<template>.html`` with ``context``."""
    settings = current_app.extensions["settings"]
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = settings.mail_from, to, subject
    # RFC 5322 requires a Date; large providers refuse mail without a Message-ID. The ID names
    # the sender's domain (make_msgid's default would ask DNS for this host's name).
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=parseaddr(settings.mail_from)[1].rpartition("@")[2])
    mail.set_content(render_template(f"mail/{template}.txt", **context))
    mail.add_alternative(render_template(f"mail/{template}.html", **context), subtype="html")
    return mail


def register(app: Flask, name: str, job: Job) -> None:
    """Make ``job`` runnable by ``send_later(name, ...)`` in ``app`` and in its workers."""
    app.extensions.setdefault("mail_jobs", {})[name] = job


def send_later(name: str, address: str) -> None:
    """Hand the mail job ``name`` for ``address`` over, without waiting for it or a server;
    raise 503 when mail is off."""
    require_mail()
    current_app.extensions["mail"](name, address)


def run_job(name: str, address: str) -> Envelope | None:
    """Run the mail job ``name`` for ``address`` (in an app context): its message, or None."""
    job: Job = current_app.extensions["mail_jobs"][name]
    return job(address)


def run_in_background(app: Flask, name: str, address: str) -> None:
    """Run a mail job and deliver its message on a thread of this process; failures are logged."""
    SENDING.submit(run_logged, app, name, address)


def run_logged(app: Flask, name: str, address: str) -> None:
    """Run a mail job and deliver its message now; log a failure instead of raising it (no
    one waits for it)."""
    try:
        with app.app_context():
            envelope = run_job(name, address)
            if envelope is not None:
                deliver(app.extensions["settings"], envelope)
    except Exception as exc:  # noqa: BLE001  (a thread's failure has no caller to raise to)
        log.error("mail not sent: %s: %s", type(exc).__name__, exc)


def deliver(settings: Settings, envelope: Envelope) -> None:
    """Send a message to its envelope's one recipient through MAIL_URL; raise Deferred when
    trying again may help, an OSError when it cannot (the server refused the address or the
    credentials)."""
    url = urlsplit(settings.mail_url or "")
    sender = parseaddr(settings.mail_from)[1]
    try:
        with connect(url, settings.mail_timeout) as server:
            secure(server, url)
            # Both addresses given: smtplib would otherwise read them from the headers.
            server.send_message(envelope.message, sender, [envelope.recipient])
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPNotSupportedError):
        raise
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:  # a permanent refusal (RFC 5321): the same again gets the same
            raise
        raise Deferred(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
    except OSError as exc:  # refused, reset, timed out, or disconnected before an answer
        raise Deferred(f"{type(exc).__name__}: {exc}") from exc
    log.info("mail sent")


def connect(url: SplitResult, timeout: float) -> smtplib.SMTP:
    """Return a connection to the mail server: in TLS from the start for smtps://."""
    if url.scheme == "smtps":
        tls = ssl.create_default_context()
        return smtplib.SMTP_SSL(url.hostname or "", url.port or 465, timeout=timeout, context=tls)
    return smtplib.SMTP(url.hostname or "", url.port or 587, timeout=timeout)


def secure(server: smtplib.SMTP, url: SplitResult) -> None:
    """Switch an smtp:// connection to TLS when its server offers STARTTLS, then sign in with
    the URL's user and password if it names them (never in clear)."""
    if url.scheme == "smtp":
        server.ehlo()
        if server.has_extn("starttls"):
            server.starttls(context=ssl.create_default_context())
            server.ehlo()
        elif url.username:
            raise smtplib.SMTPNotSupportedError(
                "the mail server offers no STARTTLS: its password is not sent in clear"
            )
    if url.username:
        server.login(unquote(url.username), unquote(url.password or ""))


def init_app(app: Flask, queue: Queue | None = None) -> None:
    """Run the app's mail jobs by ``queue`` (create_app's background task, if any), else on
    this process's threads; with no MAIL_URL, say in one line that mail is off."""
    if not app.extensions["settings"].mail_url:
        log.warning("mail is off: MAIL_URL is unset, so features that send mail answer 503")
    app.extensions.setdefault("mail_jobs", {})
    app.extensions["mail"] = queue or (lambda name, address: run_in_background(app, name, address))
