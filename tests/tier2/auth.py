"""Tier 2 in the use_auth combinations: a user made with the generated CLI, its token on writes.

The deployment fixture signs up once the service serves: `flask users create EMAIL` run as the
image would run it (the service's user, environment and folder), the password on standard input,
then POST /api/auth/tokens for a token. On PostgreSQL the user is made once per migrated database,
right after the migrations, and a deployment on a copy of it only asks for a token. While the
deployment is up, `requests` sends `Authorization: Bearer <token>` on every write to /api/items
that names no Authorization header of its own, so the tests written before use_auth hold in its
rows unchanged. A test writes anonymously with `headers=ANONYMOUS` (requests sends no header
whose value is None).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By

TIMEOUT = 10
EMAIL = "tier2@example.com"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROTECTED = "/api/items"  # the routes whose writes need a token
ANONYMOUS = {"Authorization": None}
T = TypeVar("T")
AT_ONCE_WAIT = 30  # seconds the threads wait for each other before one gives up


def with_two_workers(service):
    """Return ``service`` once it runs two workers (its server forks them after it first
    answers): a race through two workers needs both."""
    deadline = time.monotonic() + 30
    while len(service.workers()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(service.workers()) >= 2, "the race needs two workers"
    return service


def at_once(send: Callable[[T], int], each: list[T]) -> list[int]:
    """Call ``send`` with each of ``each`` from a thread of its own, all let go together once
    every thread is ready (a race for one single-use thing); return the answers in that order."""
    start = threading.Barrier(len(each))

    def released(item: T) -> int:
        start.wait(timeout=AT_ONCE_WAIT)
        return send(item)

    with ThreadPoolExecutor(len(each)) as pool:
        return list(pool.map(released, each))


@dataclass(frozen=True)
class Account:
    """A user of a deployment, and a token of theirs."""

    email: str
    password: str
    token: str

    @property
    def header(self) -> dict[str, str]:
        """Return the request header that carries the token."""
        return {"Authorization": f"Bearer {self.token}"}


def create_user(deployment, email: str, password: str, service=None) -> None:
    """Create a user with the generated `flask users create`, the password on standard input,
    in the environment of ``service`` (default: the deployment's)."""
    argv = ["flask", "--app", f"{deployment.package}:create_app()", "users", "create", email]
    created = (service or deployment.service).run_once(argv, stdin=f"{password}\n")
    assert created.returncode == 0, created.stdout + created.stderr
    assert password not in created.stdout + created.stderr


def new_token(url: str, email: str, password: str) -> str:
    """Return a fresh token of the user from POST /api/auth/tokens at ``url``."""
    answer = requests.post(
        f"{url}/api/auth/tokens",
        json={"email": email, "password": password},
        headers=ANONYMOUS,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def sign_up(deployment, email: str = EMAIL, service=None) -> Account:
    """Create a user with a random password in the store of ``service`` (default: the
    deployment's); return it with a token that service gave."""
    password = secrets.token_urlsafe(18)
    service = service or deployment.service
    create_user(deployment, email, password, service)
    return Account(email, password, new_token(service.url, email, password))


def signed_in(deployment, email: str, password: str) -> Account:
    """Return a user the deployment's store holds already, with a token its service gave."""
    return Account(email, password, new_token(deployment.service.url, email, password))


@contextlib.contextmanager
def bearer_on_writes(token: str) -> Iterator[None]:
    """Make `requests` send the token on writes to /api/items that name no Authorization."""
    request = requests.Session.request

    def with_token(self, method, url, *args, **kwargs):
        headers = kwargs.get("headers") or {}
        named = any(name.lower() == "authorization" for name in headers)
        if method.upper() in WRITES and urlsplit(url).path.startswith(PROTECTED) and not named:
            kwargs["headers"] = {**headers, "Authorization": f"Bearer {token}"}
        return request(self, method, url, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests.Session, "request", with_token)
        yield


def header(deployment) -> dict[str, str]:
    """Return the Authorization header writes not made by `requests` carry ({} without use_auth)."""
    return {} if deployment.account is None else deployment.account.header


def raw_header(deployment) -> str:
    """Return that header as a raw HTTP line ("" without use_auth)."""
    return "".join(f"{name}: {value}\r\n" for name, value in header(deployment).items())


def sign_in_browser(session, entry: str | None, account: Account) -> None:
    """Sign a browser session in through the pages' form (opened at ``entry`` unless None: the
    page shown); wait until signed in."""
    if entry is not None:
        session.open(f"{entry}/sign-in")
    session.wait(lambda d: d.find_elements(By.ID, "sign-in-form"), "the sign-in form")
    email = session.driver.find_element(By.ID, "email")
    email.clear()  # a step before may have typed it in (auth/pages.py's to_sign_in)
    email.send_keys(account.email)
    session.driver.find_element(By.ID, "password").send_keys(account.password)
    session.driver.find_element(By.CSS_SELECTOR, "#sign-in-form button[type=submit]").click()
    shown = session.wait(lambda d: d.find_elements(By.ID, "signed-in-email"), "signed in")
    assert shown[0].text == account.email, shown[0].text


def exchange(
    url: str, method: str, path: str, source: str, body: bytes = b"", headers=None
) -> tuple[int, bytes, http.client.HTTPResponse]:
    """Send one request to ``url`` from the loopback address ``source`` (any 127.0.0.x is this
    host: with no proxy in front, the service sees a client per address); return its status,
    body and answer."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=TIMEOUT, source_address=(source, 0)
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read(), answer
    finally:
        connection.close()


def api_sign_in_from(url: str, source: str, body: object) -> int:
    """POST ``body`` as JSON to /api/auth/tokens from ``source``; return the status."""
    headers = {"Content-Type": "application/json"}
    return exchange(url, "POST", "/api/auth/tokens", source, json.dumps(body).encode(), headers)[0]


def form_sign_in_from(url: str, source: str, email: str, password: str) -> int:
    """Open the pages' sign-in form from ``source`` and post it, its CSRF token and session
    cookie sent back; return the post's status."""
    fields = {"email": email, "password": password}
    return post_form_from(url, source, "/sign-in", "/sign-in", fields)[0]


def post_form_from(
    url: str, source: str, page: str, action: str, fields: dict[str, str]
) -> tuple[int, bytes, http.client.HTTPResponse]:
    """Open the page at ``page`` from ``source`` and post ``fields`` to ``action`` with the
    page's CSRF token and session cookie sent back; return the post's status, body and answer."""
    status, body, answer = exchange(url, "GET", page, source)
    assert status == 200, body
    token = re.search(rb'name="csrf_token" value="([^"]+)"', body)
    assert token, body
    cookie = answer.getheader("Set-Cookie", "").split(";")[0]  # Secure: sent back by hand
    fields = {**fields, "csrf_token": token.group(1).decode()}
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    return exchange(url, "POST", action, source, urlencode(fields).encode(), headers)
