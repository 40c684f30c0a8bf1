"""Send mail through the server MAIL_URL names, with the standard library's smtplib and email:
SMTP with STARTTLS or TLS, and a message with text and HTML parts, is all the service needs,
and an extension would add a dependency and its release cycle for no more than that.

A message is rendered from templates the owner edits (``mail/<name>.txt`` and ``.html``, in a
feature's templates folder), then handed over without waiting: to a background task with retries
where create_app gives one, else to a thread of this process, each step bounded by
MAIL_TIMEOUT. No request waits for a mail server, nor takes longer for an address with mail.
"""

import email
import email.policy
import logging
import smtplib
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import SplitResult, unquote, urlsplit

from flask import Flask, current_app, render_template
from werkzeug.exceptions import ServiceUnavailable

from ..settings import Settings

log = logging.getLogger(__name__)
Queue = Callable[[str], None]  # takes a message, as text, to be delivered
MAIL_OFF = "This service sends no mail (its MAIL_URL is unset): ask its operator."
# Messages of this process being delivered, 2 at a time: a burst waits its turn here, not in
# the requests that sent it.
SENDING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail")


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


def send(text: str) -> None:
    """Hand a message over to be delivered, as text (``message(...).as_string()``), without
    waiting for the server; raise 503 when mail is off."""
    require_mail()
    current_app.extensions["mail"](text)


def send_in_background(settings: Settings, text: str) -> None:
    """Deliver a message on a thread of this process; a failure is logged."""
    SENDING.submit(deliver_logged, settings, text)


def deliver_logged(settings: Settings, text: str) -> None:
    """Deliver a message now; log a failure instead of raising it (no one waits for it)."""
    try:
        deliver(settings, text)
    except Exception as exc:  # noqa: BLE001  (a thread's failure has no caller to raise to)
        log.error("mail not sent: %s: %s", type(exc).__name__, exc)


def deliver(settings: Settings, text: str) -> None:
    """Send a message (as text) through MAIL_URL; raise Deferred when trying again may help,
    an OSError when it cannot (the server refused the address or the credentials)."""
    mail = email.message_from_string(text, policy=email.policy.default)
    url = urlsplit(settings.mail_url or "")
    try:
        with connect(url, settings.mail_timeout) as server:
            secure(server, url)
            server.send_message(mail)
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
    """Deliver the app's mail by ``queue`` (create_app's background task, if any), else on
    this process's threads; with no MAIL_URL, say in one line that mail is off."""
    settings = app.extensions["settings"]
    if not settings.mail_url:
        log.warning("mail is off: MAIL_URL is unset, so features that send mail answer 503")
    app.extensions["mail"] = queue or (lambda text: send_in_background(settings, text))
