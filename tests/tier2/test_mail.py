"""Tier 2, use_auth: sign-up and password reset by mail through a real SMTP server on loopback
(aiosmtpd, a stand-in for the development stack's Mailpit).

Proven here: with AUTH_SIGN_UP, a sign-up mails a link that confirms the address, after which
(and not before) the account gets a token, and a taken address gets the same answer and no mail;
a reset asked through the served API mails a link; the link's token sets a new password once
(the second time it is refused) and the account's old tokens are refused after it; an unknown
address gets the same answer and no mail, in a similar time (the sign-in timing test's bound);
with a mail server that accepts a connection and never answers, the request is answered at once
(no request waits for the server); with Celery, mail asked for while the server is down arrives
once it is up; in a real browser (frontend bakes), "Forgot your password?" leads to the mail, its
link to a new password, and that password signs in, and "No account? Sign up" leads to the mail,
a sign-in refused until its link's button confirms the address, then signed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from aiosmtpd.controller import Controller
from loopback import free_port
from selenium.webdriver.common.by import By

from . import celery_processes as celery
from .auth import ANONYMOUS, Account, create_user, new_token, sign_in_browser
from .browser import browser
from .servers import Service, wait_until
from .test_auth import (
    ARTEFACT_PROPERTY,
    TIMED_PAIRS,
    WARM_UP,
    assert_similar_medians,
    timed_pairs,
)
from .test_served import TIMEOUT, assert_json_error, each

OWN_CELERY_PROCESSES = True  # the worker needs the mail settings: each test starts its own
PUBLIC_URL = "https://app.example.test"
ARRIVES_WITHIN = 30  # seconds: Celery's retries wait 1, 2, 4, 8 s (jittered) before each try
# The timing test's server accepts a message this many seconds after its data, as a server
# across a network may: one on loopback answers in a few milliseconds, and a request that
# waited for it could hide under the timing bound's floor.
SERVER_DELAY = 0.05


class Inbox:
    """An aiosmtpd handler keeping each message it accepts, ``delay`` seconds after its data."""

    def __init__(self, delay: float = 0) -> None:
        """Start empty."""
        self.messages: list = []
        self.lock = threading.Lock()
        self.delay = delay

    async def handle_DATA(self, server, session, envelope) -> str:
        """Keep the message; accept it."""
        await asyncio.sleep(self.delay)
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def to(self, address: str) -> list:
        """Return the messages sent to ``address``."""
        with self.lock:
            return [message for message in self.messages if message["To"] == address]


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
def mailing_service(deployment, name: str, env: dict[str, str]) -> Iterator[Service]:
    """Start an instance of the service sending mail with ``env`` and, with Celery, a worker of
    its own (stopped at the end: it would try this test's server with the next test's mail)."""
    worker = None
    if deployment.combo.selected("use_celery"):
        worker = celery.start(deployment, "worker", **env)
    try:
        yield deployment.extra_service(name, **env)
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


def mail_to(inbox: Inbox, address: str, within: float = ARRIVES_WITHIN) -> list:
    """Wait until ``inbox`` holds a message to ``address``; return its messages to it."""
    wait_until(lambda: inbox.to(address), within, f"a message to {address}", 0.2)
    return inbox.to(address)


@each("use_auth")
def test_a_reset_mail_arrives_and_its_link_sets_the_password_once(deployment):
    """It mails a link to the account only; the link sets a new password, ends the old tokens,
    and is refused a second time; an unknown address gets the same answer and no mail."""
    port = free_port()
    controller, inbox = smtp_server(port)
    try:
        with mailing_service(deployment, "mail", mail_env(port)) as service:
            reset_journey(deployment, service, inbox)
    finally:
        controller.stop()


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
def test_a_sign_up_mail_arrives_and_its_link_lets_the_account_sign_in(deployment):
    """With AUTH_SIGN_UP, a sign-up mails a link; the account is refused a token (403) until
    the link's token confirms its address, then gets one; a taken address gets the same
    answer and no mail."""
    port = free_port()
    controller, inbox = smtp_server(port)
    try:
        env = {**mail_env(port), "AUTH_SIGN_UP": "true"}
        with mailing_service(deployment, "sign-up-mail", env) as service:
            sign_up_journey(deployment, service, inbox)
    finally:
        controller.stop()


def sign_up_journey(deployment, service: Service, inbox: Inbox) -> None:
    """Sign up a new address and a taken one; confirm the new one by its link; sign in."""
    email, password = f"sign-up-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(18)
    taken = f"taken-{secrets.token_hex(6)}@example.com"
    create_user(deployment, taken, secrets.token_urlsafe(18), service)
    answers = [
        requests.post(
            f"{service.url}/api/auth/sign-up",
            json={"email": address, "password": password},
            headers=ANONYMOUS,
            timeout=TIMEOUT,
        )
        for address in (email, taken)
    ]
    assert [answer.status_code for answer in answers] == [202, 202], answers[1].text
    assert answers[0].text == answers[1].text
    [message] = mail_to(inbox, email)
    body = {"email": email, "password": password}
    tokens = f"{service.url}/api/auth/tokens"
    unverified = requests.post(tokens, json=body, headers=ANONYMOUS, timeout=TIMEOUT)
    assert_json_error(unverified, 403)
    verify = requests.post(
        f"{service.url}/api/auth/verify",
        json={"token": token_in(message)},
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
        env = mail_env(silent.getsockname()[1], timeout=5)
        with mailing_service(deployment, "silent-mail", env) as service:
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
    with mailing_service(deployment, "later-mail", mail_env(port, timeout=2)) as service:
        email = f"later-{secrets.token_hex(6)}@example.com"
        create_user(deployment, email, secrets.token_urlsafe(18), service)
        assert ask_reset(service.url, email).status_code == 202
        time.sleep(3)  # the first tries find nothing listening
        controller, inbox = smtp_server(port)
        try:
            assert len(mail_to(inbox, email, within=60)) == 1
        finally:
            controller.stop()


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_a_browser_resets_a_password_with_the_mailed_link(deployment, tmp_path):
    """It follows "Forgot your password?" from the sign-in form, asks for the mail, opens the
    mailed link (on this instance's address: PUBLIC_URL names a host the browser cannot reach
    here), sets a new password, and signs in with it, with no console error or CSP violation."""
    port = free_port()
    controller, inbox = smtp_server(port)
    try:
        with mailing_service(deployment, "browser-mail", mail_env(port)) as service:
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
                session.open(f"{service.url}/reset-password?token={token_in(message)}")
                new_password = secrets.token_urlsafe(18)
                session.driver.find_element(By.ID, "password").send_keys(new_password)
                session.driver.find_element(By.CSS_SELECTOR, "#new-password-form button").click()
                sign_in_browser(session, None, Account(email, new_password, ""))
                assert session.console_errors() == [] and session.csp_violations() == []
    finally:
        controller.stop()


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_a_browser_signs_up_confirms_the_mailed_link_and_signs_in(
    deployment, tmp_path, record_property
):
    """It follows "No account? Sign up" from the sign-in form and signs up; the sign-in with
    the new password is refused (the page says to confirm the address; no session) until the
    mailed link's page (on this instance's address, as above) confirms it with its button;
    then the same sign-in shows the item form, with no CSP violation and no console error but
    the refusal's 403."""
    port = free_port()
    controller, inbox = smtp_server(port)
    try:
        env = {**mail_env(port), "AUTH_SIGN_UP": "true"}
        with mailing_service(deployment, "browser-sign-up", env) as service:
            account = Account(
                f"new-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(18), ""
            )
            with browser(tmp_path / "artefacts") as session:
                browser_sign_up(session, service, inbox, account, record_property)
    finally:
        controller.stop()


def browser_sign_up(session, service: Service, inbox: Inbox, account: Account, record) -> None:
    """Sign ``account`` up in the browser, be refused, confirm the mailed link, sign in."""
    driver = session.driver
    session.open(f"{service.url}/sign-in")
    driver.find_element(By.ID, "sign-up").click()
    session.wait(lambda d: d.find_elements(By.ID, "sign-up-form"), "the sign-up form")
    driver.find_element(By.ID, "email").send_keys(account.email)
    driver.find_element(By.ID, "password").send_keys(account.password)
    driver.find_element(By.CSS_SELECTOR, "#sign-up-form button").click()
    session.wait(lambda d: d.find_elements(By.ID, "sign-up-sent"), "the mail is sent")
    [message] = mail_to(inbox, account.email)
    link = link_in(message)
    assert link.startswith(f"{PUBLIC_URL}/verify-email?token="), link

    session.open(f"{service.url}/sign-in")
    driver.find_element(By.ID, "email").send_keys(account.email)
    driver.find_element(By.ID, "password").send_keys(account.password)
    driver.find_element(By.CSS_SELECTOR, "#sign-in-form button[type=submit]").click()
    refused = session.wait(lambda d: d.find_elements(By.ID, "sign-in-error"), "the refusal")
    assert "Confirm your address" in refused[0].text, refused[0].text
    [answer] = session.console_errors()  # the refusal's status, logged by Chromium
    assert "/sign-in" in answer and "403" in answer, answer
    session.open(f"{service.url}/")
    assert driver.find_elements(By.ID, "sign-in-link"), "a session before the address is confirmed"
    assert not driver.find_elements(By.ID, "name"), "the item form before the address is confirmed"

    session.open(service.url + link.removeprefix(PUBLIC_URL))
    driver.find_element(By.CSS_SELECTOR, "#verify-email-form button").click()
    session.wait(lambda d: d.find_elements(By.ID, "sign-in-form"), "back to the sign-in form")
    assert not driver.find_elements(By.ID, "verify-email-error")
    sign_in_browser(session, None, account)
    session.wait(lambda d: d.find_elements(By.ID, "name"), "the item form")
    record(ARTEFACT_PROPERTY, str(session.screenshot("signed-up-and-in")))
    assert session.console_errors() == [answer] and session.csp_violations() == []


@each("use_auth")
def test_a_reset_for_a_known_and_an_unknown_address_answer_alike_in_a_similar_time(
    deployment, record_property
):
    """It answers the same 202 body to both, their median times within 25 % or 10 ms, the
    bound of the sign-in's timing test (test_auth.py).

    Bound: an answer does the same work either way (a limit count, the lookup of the address,
    the mail rendered) except handing the known address's mail over: to Celery's broker, or to
    a thread of the process, which then talks to the SMTP server beside the next requests.
    This server accepts each message SERVER_DELAY (50 ms) after its data, as one across a
    network may, so a request that waited for it would answer a known address that much later
    at least, far past the bound. The kinds alternate, so load on this two-core machine hits
    both alike; an instance with limits far above the attempts answers, so no 429 is timed,
    and each unknown address is new.
    """
    port = free_port()
    controller, inbox = smtp_server(port, delay=SERVER_DELAY)
    env = {**mail_env(port), "RATELIMIT_MAIL_ACCOUNT": "1000000 per minute"}
    try:
        with mailing_service(deployment, "reset-timing", env) as service:
            email = f"timing-{secrets.token_hex(6)}@example.com"
            create_user(deployment, email, secrets.token_urlsafe(18), service)

            def ask(kind: str, session: requests.Session) -> str:
                asked = f"nobody-{uuid.uuid4().hex}@example.com" if kind == "unknown" else email
                answer = ask_reset(service.url, asked, session)
                assert answer.status_code == 202, answer.text
                return answer.text

            times = timed_pairs(ask, ("unknown", "known"))
            mailed = WARM_UP + TIMED_PAIRS
            wait_until(lambda: len(inbox.messages) >= mailed, ARRIVES_WITHIN, "every mail", 0.2)
            assert len(inbox.to(email)) == len(inbox.messages) == mailed, inbox.messages
    finally:
        controller.stop()
    assert_similar_medians(times, record_property, "reset")
