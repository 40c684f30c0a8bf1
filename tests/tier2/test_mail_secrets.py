"""Tier 2, use_auth: the mail endpoints tell an outsider nothing, by their time or by a log line.

Each row serves one instance sending mail through a real SMTP server on loopback (aiosmtpd,
test_mail.py's), with AUTH_SIGN_UP on, its limits far above these tests, and with Celery a
worker of its own; verified accounts are signed up through the instance first. Proven here:
a password reset of an account's address and of an unknown one, a sign-up and a request for a
new link (POST /api/auth/verification) of a verified account's address and of a free one,
answer alike, and neither kind is the slower in more pairs of requests than chance allows
(the sign test, test_auth.py); after mails are received and their links used, no line the web
process or the worker wrote, on either stream, holds any part of a mailed token, a bearer
token, or "token=" with a value.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from loopback import free_port

from .auth import ANONYMOUS, new_token
from .servers import Service, wait_until
from .test_auth import (
    TIMED_PAIRS,
    WARM_UP,
    assert_no_signal,
    assert_timed_alike,
    sign_test_bounds,
    slower_pairs,
)
from .test_mail import (
    ARRIVES_WITHIN,
    PUBLIC_URL,
    SERVER_DELAY,
    Inbox,
    link_in,
    mail_env,
    mailing_service,
    smtp_server,
    token_in,
)
from .test_served import TIMEOUT, each

OWN_CELERY_PROCESSES = True  # the worker needs the mail settings: the module starts its own
SHARE_DEPLOYMENT = True  # its own instances beside it; it adds only users and their mail
GENEROUS = "1000000 per minute"
ACCOUNTS = WARM_UP + TIMED_PAIRS  # verified accounts: one per timed request of the known kind
SECRET_PART = 20  # characters: a run of this many of a secret in a line is a leak
TOKEN_PARAMETER = re.compile(r"token=[^\s&\"',;)\]}]")  # a parameter named *token with a value
SETTLED_FOR = 1.0  # seconds a log must stay unchanged to count as written out
SETTLES_WITHIN = 15


def email_body(address: str) -> dict[str, str]:
    """Return the body naming ``address`` (a reset's, a new link's)."""
    return {"email": address}


def sign_up_body(address: str) -> dict[str, str]:
    """Return the body signing ``address`` up."""
    return {"email": address}


def verify_body(token: str, password: str) -> dict[str, str]:
    """Return the body confirming an address with its link's token and choosing a password."""
    return {"token": token, "password": password}


def post(url: str, path: str, body: dict, session=requests) -> requests.Response:
    """POST ``body`` as JSON to ``path`` at ``url``, anonymously."""
    return session.post(f"{url}{path}", json=body, headers=ANONYMOUS, timeout=TIMEOUT)


@dataclass
class Mailing:
    """A row's mailing instance, its worker (with Celery), its SMTP server's inbox, and the
    verified accounts signed up through it, by address with their passwords."""

    service: Service
    worker: Service | None
    inbox: Inbox
    accounts: dict[str, str] = field(default_factory=dict)
    bearers: list[str] = field(default_factory=list)  # tokens POST /api/auth/tokens gave

    def since(self, mark: int, count: int) -> list:
        """Wait until ``count`` messages arrived after the first ``mark``; return them."""
        wait_until(
            lambda: len(self.inbox.messages) >= mark + count,
            ARRIVES_WITHIN,
            f"{count} messages",
            0.2,
        )
        with self.inbox.lock:
            return self.inbox.messages[mark:]

    def logs(self) -> list[Path]:
        """Return the STDOUT and STDERR of the web process and of the worker."""
        processes = [self.service] if self.worker is None else [self.service, self.worker]
        return [log for process in processes for log in (process.stdout, process.stderr)]

    def sign_up(self, addresses: list[str]) -> list:
        """Sign ``addresses`` up, confirm each by its mailed link with a new password; return
        the mails."""
        mark = len(self.inbox.messages)
        for address in addresses:
            answer = post(self.service.url, "/api/auth/sign-up", sign_up_body(address))
            assert answer.status_code == 202, answer.text
        messages = self.since(mark, len(addresses))
        for message in messages:
            use_link(self.service.url, message)
            password = secrets.token_urlsafe(18)
            body = verify_body(token_in(message), password)
            answer = post(self.service.url, "/api/auth/verify", body)
            assert answer.status_code == 204, answer.text
            self.accounts[message["To"]] = password
        return messages


@pytest.fixture(scope="module")
def mailing(deployment) -> Iterator[Mailing]:
    """Serve a row's mailing instance (and worker) with ACCOUNTS verified accounts.

    The SMTP server accepts each message SERVER_DELAY after its data, as one across a network
    may: a request that waited for it would take that much longer, well past the noise.
    """
    port = free_port()
    controller, inbox = smtp_server(port, delay=SERVER_DELAY)
    env = {**mail_env(port), "AUTH_SIGN_UP": "true", "RATELIMIT_MAIL_ACCOUNT": GENEROUS}
    try:
        with mailing_service(deployment, "secrets", env) as (service, worker):
            mailing = Mailing(service, worker, inbox)
            mailing.sign_up([fresh("known") for _ in range(ACCOUNTS)])
            yield mailing
    finally:
        controller.stop()


def fresh(kind: str) -> str:
    """Return an address no account has."""
    return f"{kind}-{uuid.uuid4().hex}@example.com"


def assert_alike_in_time(
    mailing: Mailing, path: str, kinds: tuple[str, str], record, body=email_body
) -> dict:
    """POST the ``body`` of the address of one of the accounts (kinds[1], each request of a
    round its own account) and of a free address (kinds[0]) to ``path`` in pairs (see
    assert_timed_alike); assert every answer is the same 202 and that no kind is the slower in
    too many pairs; return the addresses asked for, by kind (an account as often as asked)."""
    asked: dict[str, list[str]] = {kind: [] for kind in kinds}
    known = itertools.cycle(mailing.accounts)

    def ask(kind: str, session: requests.Session) -> str:
        address = next(known) if kind == kinds[1] else fresh(kind)
        asked[kind].append(address)
        answer = post(mailing.service.url, path, body(address), session)
        assert answer.status_code == 202, answer.text
        return answer.text

    assert_timed_alike(ask, kinds, record, path.rsplit("/", 1)[1])  # the sign-in's bounds
    return asked


def assert_mailed_to(mailing: Mailing, mark: int, addresses: list[str], page: str) -> None:
    """Assert that, after the first ``mark`` messages, exactly ``addresses`` got one each,
    every one a link to ``page``."""
    messages = mailing.since(mark, len(addresses))
    time.sleep(SETTLED_FOR)  # a message to an address that should get none may still come
    with mailing.inbox.lock:
        messages = mailing.inbox.messages[mark:]
    assert sorted(message["To"] for message in messages) == sorted(addresses)
    assert {urlsplit(link_in(message)).path for message in messages} == {page}


@each("use_auth")
def test_a_reset_for_a_known_and_an_unknown_address_answer_alike_in_a_similar_time(
    mailing, record_property
):
    """It answers the same 202 body to an account's address and to an unknown one, mails a
    link to each account asked for and nothing to the others, and the account's side is the
    slower in neither too many nor too few pairs for chance: the lookup of the address, the
    token and the mail happen after the answer, whatever the address."""
    mark = len(mailing.inbox.messages)
    asked = assert_alike_in_time(
        mailing, "/api/auth/password-reset", ("unknown", "known"), record_property
    )
    assert_mailed_to(mailing, mark, asked["known"], "/reset-password")


@each("use_auth")
def test_a_sign_up_of_a_taken_and_a_free_address_answer_alike_in_a_similar_time(
    mailing, record_property
):
    """It answers the same 202 body to a sign-up of a verified account's address and of a free
    one, mails a link to each free one and nothing to the taken, and neither side is the
    slower in too many pairs for chance."""
    mark = len(mailing.inbox.messages)
    asked = assert_alike_in_time(
        mailing, "/api/auth/sign-up", ("free", "taken"), record_property, sign_up_body
    )
    assert_mailed_to(mailing, mark, asked["free"], "/verify-email")


@each("use_auth")
def test_a_new_link_for_a_taken_and_a_free_address_answer_alike_in_a_similar_time(
    mailing, record_property
):
    """It answers POST /api/auth/verification alike for a verified account's address and a
    free one (a link to each free one, nothing to the taken), neither side the slower in too
    many pairs for chance."""
    mark = len(mailing.inbox.messages)
    asked = assert_alike_in_time(
        mailing, "/api/auth/verification", ("free", "taken"), record_property
    )
    assert_mailed_to(mailing, mark, asked["free"], "/verify-email")


def test_the_sign_test_flags_the_differences_measured_before_the_mail_jobs():
    """It calls a known address the slower in 37 of 40 pairs a signal, and a free one in 33 of
    40 (a taken one in 7), the figures measured when the request looked the address up and
    made the mail; 20 of 40 and 30 of 60 are none."""
    assert sign_test_bounds(40) == (9, 31) and sign_test_bounds(60) == (17, 43)

    def times(slower: int, pairs: int) -> dict[str, list[float]]:
        return {"known": [2.0] * slower + [1.0] * (pairs - slower), "unknown": [1.5] * pairs}

    for slower, pairs in ((37, 40), (7, 40)):
        assert slower_pairs(times(slower, pairs), "known") == slower
        with pytest.raises(AssertionError):
            assert_no_signal(times(slower, pairs), "known", lambda *_: None, "test")
    for slower, pairs in ((20, 40), (30, 60)):
        assert_no_signal(times(slower, pairs), "known", lambda *_: None, "test")


def test_a_difference_that_holds_is_a_signal_after_the_second_round():
    """A kind slower in every pair (3 ms more, as a lookup the other kind skips) is timed in a
    second round of pairs and still flagged: the second round never hides a real difference."""
    asked: Counter[str] = Counter()

    def ask(kind: str, session: requests.Session) -> str:
        asked[kind] += 1
        time.sleep(0.004 if kind == "known" else 0.001)
        return "the same answer"

    with pytest.raises(AssertionError, match=r"known slower in \d+ of 120 pairs"):
        assert_timed_alike(ask, ("unknown", "known"), lambda *_: None, "test")
    assert asked == {"known": 2 * (WARM_UP + TIMED_PAIRS), "unknown": 2 * (WARM_UP + TIMED_PAIRS)}


@each("use_auth")
def test_no_line_of_the_web_process_or_the_worker_holds_a_token(mailing):
    """After a reset and a sign-up whose mails arrive and whose links are opened and used, and
    a sign-in with each new password, no line the web process or the worker wrote (STDOUT and
    STDERR, from its start) holds SECRET_PART characters in a row of any token mailed or
    given, nor a parameter "token=" with a value."""
    url = mailing.service.url
    known = next(iter(mailing.accounts))
    mark = len(mailing.inbox.messages)
    assert post(url, "/api/auth/password-reset", {"email": known}).status_code == 202
    [reset] = mailing.since(mark, 1)
    use_link(url, reset)
    new_password = secrets.token_urlsafe(18)
    body = {"token": token_in(reset), "password": new_password}
    assert post(url, "/api/auth/password", body).status_code == 204
    mailing.bearers.append(new_token(url, known, new_password))
    [signed_up] = mailing.sign_up([fresh("logged")])
    address = signed_up["To"]
    mailing.bearers.append(new_token(url, address, mailing.accounts[address]))
    settle(mailing.logs())

    tokens = [token_in(message) for message in mailing.inbox.messages] + mailing.bearers
    leaks = lines_with_secrets(mailing.logs(), tokens)
    assert not leaks, f"{len(leaks)} lines, the first ones:\n" + "\n".join(leaks[:8])


def use_link(url: str, message) -> None:
    """Open a mail's link as a browser would, on the instance (PUBLIC_URL names another host)."""
    link = link_in(message).removeprefix(PUBLIC_URL)
    assert requests.get(f"{url}{link}", timeout=TIMEOUT).status_code in (200, 404)


def settle(logs: list[Path]) -> None:
    """Wait until no log has grown for SETTLED_FOR seconds (within SETTLES_WITHIN)."""
    sizes: list[int] = []

    def unchanged() -> bool:
        now = [log.stat().st_size if log.exists() else 0 for log in logs]
        still = now == sizes
        sizes[:] = now
        return still

    wait_until(unchanged, SETTLES_WITHIN, "the logs written out", SETTLED_FOR)


def lines_with_secrets(logs: list[Path], secrets_: list[str]) -> list[str]:
    """Return each line of ``logs`` holding SECRET_PART characters in a row of a secret, or
    a token parameter with a value."""
    parts = {
        secret[start : start + SECRET_PART]
        for secret in secrets_
        for start in range(len(secret) - SECRET_PART + 1)
    }
    assert parts, "no secret to look for"
    found = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            windows = (line[i : i + SECRET_PART] for i in range(len(line) - SECRET_PART + 1))
            if TOKEN_PARAMETER.search(line) or any(window in parts for window in windows):
                found.append(f"{log.parent.parent.name}/{log.name}: {line[:300]}")
    return found
