"""Tier 2, use_auth: sign-up and password reset by mail through a real SMTP server on loopback
(aiosmtpd, a stand-in for the development stack's Mailpit).

Proven here: with AUTH_SIGN_UP, a sign-up (an address only) mails a link whose page or API
call chooses the password and creates the account, which signs in from then on (and not before),
and a taken address gets the same answer and no mail; a reset asked through the served API mails
a link; the link's token sets a new password once (the second time it is refused) and the
account's old tokens are refused after it; an unknown address gets the same answer and no mail
(in a similar time: test_mail_secrets.py); every mail goes to exactly one envelope
recipient, the address's stored form, and an address that is not one plain addr-spec (a list, a
display name, a route, a header injected...) is refused, mailing no one; an address signed up by
someone else becomes its owner's, with the password the owner chooses at the link; one token
sent at once by many requests (to two workers) sets one password; with a mail server that
accepts a connection and never answers, the request is answered at once (no request waits for
the server); with Celery, mail asked for while the server is down arrives once it is up; in a
real browser (frontend bakes), "Forgot your password?" leads to the mail, its link to a new
password, and that password signs in, and "No account? Sign up" leads to the mail, a sign-in
refused as for an unknown address until its link's page chooses the password, then signed in.

A combination's tests share one mailing instance (and, with Celery, its worker) and one SMTP
server, each test reading only its own addresses' mail or the mail since it began; the tests
of a silent or an absent server start their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from aiosmtpd.controller import Controller
from itsdangerous import URLSafeTimedSerializer
from loopback import free_port
from selenium.webdriver.common.by import By

from . import celery_processes as celery
from .auth import (
    ANONYMOUS,
    Account,
    api_sign_in_from,
    at_once,
    create_user,
    exchange,
    form_sign_in_from,
    new_token,
    post_form_from,
    sign_in_browser,
)
from .browser import ARTEFACT_PROPERTY, WIDTHS, browser, layout_problems, layout_seen
from .deployment import GENEROUS_LIMIT
from .servers import Service, wait_until
from .test_served import TIMEOUT, assert_json_error, each

OWN_CELERY_PROCESSES = True  # the worker needs the mail settings: the module starts its own
SHARE_DEPLOYMENT = True  # its own instances beside it; it adds only users and their mail
PUBLIC_URL = "https://app.example.test"
ARRIVES_WITHIN = 30  # seconds: Celery's retries wait 1, 2, 4, 8 s (jittered) before each try
# The timing test's server accepts a message this many seconds after its data, as a server
# across a network may: one on loopback answers in a few milliseconds, and a request that
# waited for it could hide under the timing bound's floor.
SERVER_DELAY = 0.05
CLIENT = "127.0.0.1"  # the address the pages' forms are posted from
RACERS = 8  # requests sent at once with one token: as many as a worker's threads
BURSTS = 3  # races run one after another: one lucky ordering passes no broken service


def address_list(length: int = 250) -> str:
    """Return a comma-separated list of whole addresses, ``length`` characters long."""
    rest = ",".join(f"v{n:02}@example.com" for n in range(14))
    first = "a" * (length - len(rest) - len("@example.com,"))
    return f"{first}@example.com,{rest}"


# Addresses that are not one plain addr-spec: each would mail someone else, or several, or
# nobody a server accepts. Every one is refused (422) and mails no one.
HOSTILE = (
    "x<attacker@evil.example>@bank.example",
    "a@evil.example,victim@example.com",
    address_list(),
    "owner@example.com.",
    "Victim <victim@example.com>",
    "victim@example.com\r\nBcc: attacker@evil.example",
    "üser@example.com",
)


class Inbox:
    """An aiosmtpd handler keeping each message it accepts, and its envelope's recipients
    (RCPT TO), ``delay`` seconds after its data."""

    def __init__(self, delay: float = 0) -> None:
        """Start empty."""
        self.messages: list = []
        self.recipients: list[list[str]] = []  # each message's envelope recipients, in step
        self.lock = threading.Lock()
        self.delay = delay

    async def handle_DATA(self, server, session, envelope) -> str:
        """Keep the message and its envelope's recipients; accept it."""
        await asyncio.sleep(self.delay)
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def to(self, address: str) -> list:
        """Return the messages sent to ``address`` (their To header)."""
        with self.lock:
            return [message for message in self.messages if message["To"] == address]

    def envelopes(self, since: int = 0) -> list[tuple[list[str], object]]:
        """Return each message after the first ``since`` with its envelope's recipients, in
        their order of arrival."""
        with self.lock:
            return list(zip(self.recipients, self.messages, strict=True))[since:]

    def mark(self) -> int:
        """Return how many messages arrived so far, to read only the ones after them."""
        with self.lock:
            return len(self.messages)


def smtp_server(port: int, delay: float = 0) -> tuple[Controller, Inbox]:
    """Start an SMTP server on 127.0.0.1:``port``, accepting each message after ``delay``
    seconds; return it and its inbox."""
    inbox = Inbox(delay)
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox


def mail_env(port: int, timeout: float = 5) -> dict[str, str]:
    """Return the settings sending mail to 127.0.0.1:``port``."""
    return {
        "MAIL_URL": f"smtp://127.0.0.1:{port}",
        "MAIL_FROM": "Tier 2 <no-reply@example.test>",
        "PUBLIC_URL": PUBLIC_URL,
        "MAIL_TIMEOUT": str(timeout),
        "RATELIMIT_SIGN_IN": "100000 per minute",  # all of these tests come from one address
    }


@contextlib.contextmanager
def mailing_service(
    deployment, name: str, env: dict[str, str]
) -> Iterator[tuple[Service, Service | None]]:
    """Start an instance of the service sending mail with ``env`` and, with Celery, a worker of
    its own beside it (stopped at the end: it would try this server with later mail); yield
    both, the worker None without Celery."""
    worker = None
    if deployment.combo.selected("use_celery"):
        worker = celery.launch(deployment, "worker", **env)
    try:
        service = deployment.extra_service(name, **env)
        if worker is not None:
            celery.await_healthy(deployment, worker, "worker")
        yield service, worker
    finally:
        if worker is not None:
            celery.stop(worker)


def ask_reset(url: str, email: str, session=requests) -> requests.Response:
    """POST a password reset request for ``email`` (on ``session`` if given)."""
    return session.post(
        f"{url}/api/auth/password-reset", json={"email": email}, headers=ANONYMOUS, timeout=TIMEOUT
    )


def link_in(message) -> str:
    """Return a message's link to PUBLIC_URL (in its text part)."""
    text = message.get_body(("plain",)).get_content()
    return next(word for word in text.split() if word.startswith(PUBLIC_URL))


def token_in(message) -> str:
    """Return the token of a message's link to PUBLIC_URL."""
    return parse_qs(urlsplit(link_in(message)).query)["token"][0]


def mail_to(inbox: Inbox, address: str, within: float = ARRIVES_WITHIN, count: int = 1) -> list:
    """Wait until ``inbox`` holds ``count`` messages to ``address``; return its messages to it."""
    what = f"{count} message(s) to {address}"
    wait_until(lambda: len(inbox.to(address)) >= count, within, what, 0.2)
    return inbox.to(address)


def deferred(worker: Service) -> bool:
    """Say whether the worker logged a try of a mail task that ended deferred, to be retried."""
    return any("deliver_mail" in line and " retry: " in line for line in worker.lines())


def sign_up_by_api(url: str, body: dict[str, str]) -> requests.Response:
    """POST a sign-up with ``body``."""
    return requests.post(f"{url}/api/auth/sign-up", json=body, headers=ANONYMOUS, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def mailing(deployment) -> Iterator[tuple[Service, Inbox]]:
    """Serve a combination's mailing instance, shared by the tests of a well-behaved SMTP
    server: 2 workers of RACERS threads, AUTH_SIGN_UP on, limits far above the races' requests
    and sign-ins and the envelopes' mails; yield it and its server's inbox."""
    port = free_port()
    controller, inbox = smtp_server(port)
    env = {
        **mail_env(port),
        "AUTH_SIGN_UP": "true",
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": str(RACERS),
        "RATELIMIT_SIGN_IN_ACCOUNT": GENEROUS_LIMIT,  # each burst tries RACERS - 1 wrong ones
        "RATELIMIT_MAIL_ACCOUNT": GENEROUS_LIMIT,
    }
    try:
        with mailing_service(deployment, "mail", env) as (service, _):
            wait_until(lambda: len(service.workers()) >= 2, TIMEOUT, "two workers")
            yield service, inbox
    finally:
        controller.stop()


def own_broker(deployment) -> dict[str, str]:
    """Return the settings giving an instance and its worker a Redis index of their own, with
    Celery: the shared worker would otherwise take their mail to the shared server."""
    if not deployment.combo.selected("use_celery"):
        return {}
    return {"REDIS_URL": deployment.redis.url(deployment.redis.new_db())}


@each("use_auth")
def test_a_reset_mail_arrives_and_its_link_sets_the_password_once(deployment, mailing):
    """It mails a link to the account only; the link sets a new password, ends the old tokens,
    and is refused a second time; an unknown address gets the same answer and no mail."""
    service, inbox = mailing
    reset_journey(deployment, service, inbox)


def reset_journey(deployment, service: Service, inbox: Inbox) -> None:
    """Ask for a reset of a new user and of an unknown address; use the link, twice."""
    email, password = f"reset-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(18)
    create_user(deployment, email, password, service)
    old_token = new_token(service.url, email, password)
    known, unknown = ask_reset(service.url, email), ask_reset(service.url, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202, (known.text, unknown.text)
    assert known.text == unknown.text
    [message] = mail_to(inbox, email)
    new_password = secrets.token_urlsafe(18)
    body = {"token": token_in(message), "password": new_password}
    url = f"{service.url}/api/auth/password"
    assert requests.post(url, json=body, headers=ANONYMOUS, timeout=TIMEOUT).status_code == 204
    body["password"] = secrets.token_urlsafe(18)
    assert_json_error(requests.post(url, json=body, headers=ANONYMOUS, timeout=TIMEOUT), 403)
    new_token(service.url, email, new_password)
    old = Account(email, password, old_token).header
    refused = requests.post(f"{service.url}/api/items", json={}, headers=old, timeout=TIMEOUT)
    assert_json_error(refused, 401)
    assert inbox.to("nobody@example.com") == []


@each("use_auth")
def test_a_sign_up_mail_arrives_and_its_link_lets_the_account_sign_in(deployment, mailing):
    """With AUTH_SIGN_UP, a sign-up (an address; a password with it is refused) mails a link;
    the address is refused a token (401: no account) until the link's token and a password
    create the account, which then gets one; a taken address gets the same answer and no mail."""
    service, inbox = mailing
    sign_up_journey(deployment, service, inbox)


def sign_up_journey(deployment, service: Service, inbox: Inbox) -> None:
    """Sign up a new address and a taken one; confirm the new one by its link; sign in."""
    email, password = f"sign-up-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(18)
    taken = f"taken-{secrets.token_hex(6)}@example.com"
    create_user(deployment, taken, secrets.token_urlsafe(18), service)
    with_password = sign_up_by_api(service.url, {"email": email, "password": password})
    refused = assert_json_error(with_password, 422)["error"]["detail"]
    assert [error["field"] for error in refused] == ["password"], refused
    answers = [sign_up_by_api(service.url, {"email": address}) for address in (email, taken)]
    assert [answer.status_code for answer in answers] == [202, 202], answers[1].text
    assert answers[0].text == answers[1].text
    [message] = mail_to(inbox, email)
    body = {"email": email, "password": password}
    tokens = f"{service.url}/api/auth/tokens"
    no_account = requests.post(tokens, json=body, headers=ANONYMOUS, timeout=TIMEOUT)
    assert_json_error(no_account, 401)
    verify = requests.post(
        f"{service.url}/api/auth/verify",
        json={"token": token_in(message), "password": password},
        headers=ANONYMOUS,
        timeout=TIMEOUT,
    )
    assert verify.status_code == 204, verify.text
    new_token(service.url, email, password)
    assert inbox.to(taken) == []


@each("use_auth")
def test_a_silent_mail_server_holds_no_request(deployment):
    """It answers a reset at once while the mail server accepts connections and never replies."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        env = {**mail_env(silent.getsockname()[1], timeout=5), **own_broker(deployment)}
        with mailing_service(deployment, "silent-mail", env) as (service, _):
            email = f"silent-{secrets.token_hex(6)}@example.com"
            create_user(deployment, email, secrets.token_urlsafe(18), service)
            for _ in range(3):
                started = time.monotonic()
                assert ask_reset(service.url, email).status_code == 202
                assert time.monotonic() - started < 2, "a reset waited for the mail server"


@each("use_auth", "use_celery")
def test_mail_asked_for_while_the_server_is_down_arrives_once_it_is_up(deployment):
    """It keeps a message while nothing listens at MAIL_URL, and delivers it (once) after the
    server starts, by the task's retries."""
    port = free_port()
    env = {**mail_env(port, timeout=2), **own_broker(deployment)}
    with mailing_service(deployment, "later-mail", env) as (service, worker):
        email = f"later-{secrets.token_hex(6)}@example.com"
        create_user(deployment, email, secrets.token_urlsafe(18), service)
        assert ask_reset(service.url, email).status_code == 202
        wait_until(
            lambda: deferred(worker),
            ARRIVES_WITHIN,
            "a first try finding nothing listening",
            0.2,
        )
        controller, inbox = smtp_server(port)
        try:
            assert len(mail_to(inbox, email, within=60)) == 1
        finally:
            controller.stop()


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_a_browser_resets_a_password_with_the_mailed_link(
    deployment, mailing, tmp_path, record_property
):
    """It follows "Forgot your password?" from the sign-in form, asks for the mail, opens the
    mailed link (on this instance's address: PUBLIC_URL names a host the browser cannot reach
    here; its page fits a phone), sets a new password, is told so on the sign-in form with the
    address typed in, and signs in with it, with no console error or CSP violation; the link
    spent, its page refuses a second password, saying so, and fits a phone."""
    service, inbox = mailing
    email = f"browser-{secrets.token_hex(6)}@example.com"
    create_user(deployment, email, secrets.token_urlsafe(18), service)
    with browser(tmp_path / "artefacts") as session:
        session.open(f"{service.url}/sign-in")
        session.driver.find_element(By.ID, "forgot").click()
        session.wait(lambda d: d.find_elements(By.ID, "reset-form"), "the reset form")
        session.driver.find_element(By.ID, "email").send_keys(email)
        session.driver.find_element(By.CSS_SELECTOR, "#reset-form button").click()
        session.wait(lambda d: d.find_elements(By.ID, "reset-sent"), "the mail is sent")
        [message] = mail_to(inbox, email)
        page = f"{service.url}/reset-password?token={token_in(message)}"
        assert layout_problems(session, page, "reset-password", record_property) == {}
        session.open(page)
        new_password = secrets.token_urlsafe(18)
        session.driver.find_element(By.ID, "password").send_keys(new_password)
        session.driver.find_element(By.CSS_SELECTOR, "#new-password-form button").click()
        assert_told_on_the_sign_in_form(session, "Your password is changed", email)
        sign_in_browser(session, None, Account(email, new_password, ""))
        assert session.console_errors() == [] and session.csp_violations() == []
        refusal = spent_link(session, page, "new-password", "reset-password-spent", record_property)
        assert "link" in refusal.lower(), refusal


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_a_browser_signs_up_confirms_the_mailed_link_and_signs_in(
    mailing, tmp_path, record_property
):
    """It follows "No account? Sign up" from the sign-in form, whose only field is the address,
    and signs up; a sign-in with the password to come is refused as for an unknown address (the
    same message; no session) until the mailed link's page (on this instance's address, as
    above) asks for the password and its button creates the account, and the sign-in form says
    so with the address typed in; then the same sign-in shows the item form, with no CSP
    violation and no console error but the refusals'."""
    service, inbox = mailing
    account = Account(f"new-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(18), "")
    with browser(tmp_path / "artefacts") as session:
        browser_sign_up(session, service, inbox, account, record_property)


def assert_told_on_the_sign_in_form(session, sentence: str, email: str) -> None:
    """Assert the page is the sign-in form, saying ``sentence`` with ``email`` typed in."""
    session.wait(lambda d: d.find_elements(By.ID, "sign-in-form"), "the sign-in form")
    notice = session.driver.find_element(By.CSS_SELECTOR, ".notice").text
    assert notice.startswith(sentence), notice
    assert session.driver.find_element(By.ID, "email").get_attribute("value") == email


def browser_sign_up(session, service: Service, inbox: Inbox, account: Account, record) -> None:
    """Sign ``account`` up in the browser, be refused, choose the password at the mailed link,
    sign in; the sign-up and new-link forms, and the link's page, fit a phone first; the link
    spent, its page refuses it, saying so, and fits a phone."""
    driver = session.driver
    for path, name in (("/sign-up", "sign-up"), ("/verification", "new-link")):
        assert layout_problems(session, service.url + path, name, record) == {}, name
    session.open(f"{service.url}/sign-in")
    driver.find_element(By.ID, "sign-up").click()
    session.wait(lambda d: d.find_elements(By.ID, "sign-up-form"), "the sign-up form")
    assert not driver.find_elements(By.ID, "password"), "a password asked before the link"
    driver.find_element(By.ID, "email").send_keys(account.email)
    driver.find_element(By.CSS_SELECTOR, "#sign-up-form button").click()
    session.wait(lambda d: d.find_elements(By.ID, "sign-up-sent"), "the mail is sent")
    [message] = mail_to(inbox, account.email)
    link = link_in(message)
    assert link.startswith(f"{PUBLIC_URL}/verify-email?token="), link

    unknown = Account(f"nobody-{secrets.token_hex(6)}@example.com", account.password, "")
    refusals = [refused_sign_in(session, service, each) for each in (account, unknown)]
    assert refusals[0] == refusals[1], refusals  # as for an address with no account
    answers = session.console_errors()  # the refusals' statuses, logged by Chromium
    assert len(answers) == 2 and all("/sign-in" in line and "422" in line for line in answers)
    session.open(f"{service.url}/")
    assert driver.find_elements(By.ID, "sign-in-link"), "a session before the address is confirmed"
    assert not driver.find_elements(By.ID, "name"), "the item form before the address is confirmed"

    page = service.url + link.removeprefix(PUBLIC_URL)
    assert layout_problems(session, page, "verify-email", record) == {}
    session.open(page)
    driver.find_element(By.ID, "password").send_keys(account.password)
    driver.find_element(By.CSS_SELECTOR, "#verify-email-form button").click()
    session.wait(lambda d: d.find_elements(By.ID, "sign-in-form"), "back to the sign-in form")
    assert not driver.find_elements(By.ID, "verify-email-error")
    assert_told_on_the_sign_in_form(session, "Your address is confirmed", account.email)
    sign_in_browser(session, None, account)
    session.wait(lambda d: d.find_elements(By.ID, "name"), "the item form")
    record(ARTEFACT_PROPERTY, str(session.screenshot("signed-up-and-in")))
    assert session.console_errors() == answers and session.csp_violations() == []
    refusal = spent_link(session, page, "verify-email", "verify-email-spent", record)
    assert "link" in refusal.lower(), refusal


def spent_link(session, url: str, form: str, name: str, record) -> str:
    """Post a new password on the page of a link already used, at a phone's width; assert the
    refusal's page fits it (``record`` its screenshot as ``name-phone``); return the refusal."""
    driver = session.driver
    driver.set_window_size(*WIDTHS["phone"])
    try:
        session.open(url)
        driver.find_element(By.ID, "password").send_keys(secrets.token_urlsafe(18))
        driver.find_element(By.CSS_SELECTOR, f"#{form}-form button").click()
        [shown] = session.wait(lambda d: d.find_elements(By.ID, f"{form}-error"), "the refusal")
        refusal = shown.text
        seen = layout_seen(session, f"{name}-phone", record)
    finally:
        driver.set_window_size(*WIDTHS["desktop"])
    assert not seen["overflow"] and not seen["uneven"], seen
    return refusal


def refused_sign_in(session, service: Service, account: Account) -> str:
    """Post the sign-in form with ``account``; return the refusal it shows."""
    session.open(f"{service.url}/sign-in")
    session.driver.find_element(By.ID, "email").send_keys(account.email)
    session.driver.find_element(By.ID, "password").send_keys(account.password)
    session.driver.find_element(By.CSS_SELECTOR, "#sign-in-form button[type=submit]").click()
    return session.wait(lambda d: d.find_elements(By.ID, "sign-in-error"), "the refusal")[0].text


@each("use_auth")
def test_each_mail_goes_to_one_stored_address_and_a_hostile_address_to_no_one(deployment, mailing):
    """It answers 422 (field email) to a sign-up and a reset for each HOSTILE address, and
    mails no one for them; a sign-up for a mixed-case and an IDNA address, and a reset asked in
    another case, each mail one message whose envelope's one recipient, and To header, is the
    address's stored form (lower case, IDNA domain)."""
    service, inbox = mailing
    envelopes_journey(deployment, service, inbox)


def envelopes_journey(deployment, service: Service, inbox: Inbox) -> None:
    """Ask for mail for each hostile address, then for three accepted ones; read the inbox's
    messages since."""
    mark = inbox.mark()
    for address in HOSTILE:
        for path in ("sign-up", "password-reset"):
            answer = requests.post(
                f"{service.url}/api/auth/{path}",
                json={"email": address},
                headers=ANONYMOUS,
                timeout=TIMEOUT,
            )
            detail = assert_json_error(answer, 422)["error"]["detail"]
            assert [error["field"] for error in detail] == ["email"], (path, address, detail)
    tag = secrets.token_hex(4)
    stored = {  # as asked -> as stored
        f"Ada.{tag}@Example.COM": f"ada.{tag}@example.com",
        f"Ada.{tag}@Bücher.example": f"ada.{tag}@xn--bcher-kva.example",
        f"Known.{tag}@Example.ORG": f"known.{tag}@example.org",
    }
    create_user(deployment, f"known.{tag}@example.org", secrets.token_urlsafe(18), service)
    for asked, path in zip(stored, ("sign-up", "sign-up", "password-reset"), strict=True):
        answer = requests.post(
            f"{service.url}/api/auth/{path}",
            json={"email": asked},
            headers=ANONYMOUS,
            timeout=TIMEOUT,
        )
        assert answer.status_code == 202, (asked, answer.text)
    wait_until(lambda: len(inbox.envelopes(mark)) >= len(stored), ARRIVES_WITHIN, "every mail", 0.2)
    envelopes = inbox.envelopes(mark)
    assert sorted(recipients for recipients, _ in envelopes) == [
        [address] for address in sorted(stored.values())
    ], envelopes
    assert all(message["To"] == recipients[0] for recipients, message in envelopes), envelopes


@each("use_auth", "use_frontend")
def test_an_address_signed_up_by_someone_else_gets_the_password_its_owner_chooses(mailing):
    """An attacker signs up the victim's address by the API (a password with it is refused;
    the mail goes to the victim) and posts forged tokens to verify (403); the victim signs up
    on the page, opens the attacker's link and chooses a password on its page (which sends no
    Referer and is not cached); then the attacker's password is refused by the API (401) and
    the sign-in form (422), and the victim's signs in by both (201, 303)."""
    service, inbox = mailing
    pre_hijack_journey(service.url, inbox)


def pre_hijack_journey(url: str, inbox: Inbox) -> None:
    """Sign the victim's address up as an attacker, then as the victim; confirm; sign in."""
    victim = f"victim-{secrets.token_hex(6)}@example.com"
    attackers, victims = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    mark = inbox.mark()
    assert_json_error(sign_up_by_api(url, {"email": victim, "password": attackers}), 422)
    assert sign_up_by_api(url, {"email": victim}).status_code == 202
    [by_attacker] = mail_to(inbox, victim)
    assert inbox.envelopes(mark)[0][0] == [victim]
    guessed = secrets.token_urlsafe(48)
    forged = URLSafeTimedSerializer("change-me", salt="sign-up").dumps([victim, "x"])
    for token in (guessed, forged):
        body = {"token": token, "password": attackers}
        answer = requests.post(
            f"{url}/api/auth/verify", json=body, headers=ANONYMOUS, timeout=TIMEOUT
        )
        assert assert_json_error(answer, 403)["error"]["detail"][0]["field"] == "token"

    status, page, _ = post_form_from(url, CLIENT, "/sign-up", "/sign-up", {"email": victim})
    assert status == 200 and b'id="sign-up-sent"' in page, page
    assert len(mail_to(inbox, victim, count=2)) == 2
    token = token_in(by_attacker)  # either link works: the one the attacker caused
    link = f"/verify-email?token={token}"
    status, page, answer = exchange(url, "GET", link, CLIENT)
    assert status == 200 and b'id="password"' in page, page
    assert answer.getheader("Referrer-Policy") == "no-referrer"
    assert "no-store" in answer.getheader("Cache-Control", "")
    fields = {"token": token, "password": victims}
    status, page, answer = post_form_from(url, CLIENT, link, "/verify-email", fields)
    assert status == 303 and answer.getheader("Location", "").endswith("/sign-in"), page

    assert api_sign_in_from(url, CLIENT, {"email": victim, "password": attackers}) == 401
    assert form_sign_in_from(url, CLIENT, victim, attackers) == 422
    assert api_sign_in_from(url, CLIENT, {"email": victim, "password": victims}) == 201
    assert form_sign_in_from(url, CLIENT, victim, victims) == 303


def race(url: str, token: str) -> tuple[list[str], str]:
    """POST ``token`` with RACERS different passwords to ``url``, all released at once; assert
    one 204 and 403 to the rest; return the passwords and the one that won."""
    passwords = [secrets.token_urlsafe(18) for _ in range(RACERS)]

    def send(password: str) -> int:
        body = {"token": token, "password": password}
        return requests.post(url, json=body, headers=ANONYMOUS, timeout=TIMEOUT).status_code

    answers = at_once(send, passwords)
    assert sorted(answers) == [204] + [403] * (RACERS - 1), answers
    return passwords, passwords[answers.index(204)]


def signs_in(url: str, email: str, password: str) -> bool:
    """Say whether ``password`` gets a token of ``email`` (201; else 401)."""
    status = api_sign_in_from(url, CLIENT, {"email": email, "password": password})
    assert status in (201, 401), status
    return status == 201


def login_generation(deployment, email: str) -> int:
    """Return the account's login generation, read from the real store."""
    return deployment.query("SELECT login_generation FROM users WHERE email = ?", email)[0][0]


@each("use_auth")
def test_one_reset_token_sent_by_many_requests_at_once_sets_one_password(deployment, mailing):
    """Of RACERS requests sent at once to two workers with one reset token and as many
    passwords, one gets 204 and the others 403; only the winner's password signs in, and the
    login generation grew by one; BURSTS times."""
    service, inbox = mailing
    email = f"reset-race-{secrets.token_hex(6)}@example.com"
    create_user(deployment, email, secrets.token_urlsafe(18), service)
    for burst in range(1, BURSTS + 1):
        generation = login_generation(deployment, email)
        assert ask_reset(service.url, email).status_code == 202
        message = mail_to(inbox, email, count=burst)[-1]
        passwords, won = race(f"{service.url}/api/auth/password", token_in(message))
        signed_in = [signs_in(service.url, email, password) for password in passwords]
        assert signed_in == [password == won for password in passwords], burst
        assert login_generation(deployment, email) == generation + 1, burst


@each("use_auth")
def test_one_sign_up_token_sent_by_many_requests_at_once_makes_one_account(deployment, mailing):
    """Of RACERS requests sent at once to two workers with one sign-up token and as many
    passwords, one gets 204 and the others 403; one account exists, and only the winner's
    password signs in; BURSTS times, each a new address."""
    service, inbox = mailing
    for burst in range(BURSTS):
        email = f"verify-race-{secrets.token_hex(6)}@example.com"
        assert sign_up_by_api(service.url, {"email": email}).status_code == 202
        [message] = mail_to(inbox, email)
        passwords, won = race(f"{service.url}/api/auth/verify", token_in(message))
        accounts = deployment.query("SELECT count(*) FROM users WHERE email = ?", email)
        assert accounts == [(1,)], (burst, accounts)
        signed_in = [signs_in(service.url, email, password) for password in passwords]
        assert signed_in == [password == won for password in passwords], burst
