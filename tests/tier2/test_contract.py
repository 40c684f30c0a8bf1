"""Tier 2: schemathesis fuzzes every served combination against the OpenAPI document it serves.

The run is the generated Makefile's own `make contract` (every schemathesis check: no server
error; statuses, media types, bodies and headers as documented), bounded and seeded, against
gunicorn directly and through nginx when selected, with use_auth both anonymously and with a
token. A second instance with tight rate limits is fuzzed too: its 429s must be documented like
any other answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from loopback import free_port

from .auth import api_sign_in_from, raw_header
from .test_hostile_input import entries, raw_exchange
from .test_mail import PUBLIC_URL, smtp_server
from .test_served import TIMEOUT, assert_json_error, each

ST = Path(sys.executable).parent / "st"
EXAMPLES = 5
# Wrong passwords sent at most to spend an account's sign-in limit, and the refusals in a row
# that show it spent in every worker (without Redis each worker counts its own).
SPENT_WITHIN, REFUSED_IN_A_ROW = 60, 10
# Tight enough for a few cases per operation to reach them; /openapi.json is loaded twice.
TIGHT_LIMITS = {"RATELIMIT_DEFAULT": "3 per minute", "RATELIMIT_WRITE": "1 per minute"}


@pytest.fixture(scope="module")
def service_env() -> Iterator[dict[str, str]]:
    """Give auth bakes' services a mail server (a real SMTP server on loopback), as production
    has: without one, the operations that send mail answer 503, which the fuzzer rightly counts
    as a server error. Their sign-in limits keep the shipped counts over 5 s, not a minute: the
    fuzzing still spends them, and a later run's sign-in waits seconds for them, not a minute."""
    port = free_port()
    controller, _ = smtp_server(port)
    try:
        yield {
            "MAIL_URL": f"smtp://127.0.0.1:{port}",
            "MAIL_FROM": "Tier 2 <no-reply@example.test>",
            "PUBLIC_URL": PUBLIC_URL,
            "RATELIMIT_SIGN_IN": "10 per 5 seconds",
            "RATELIMIT_SIGN_IN_ACCOUNT": "5 per 5 seconds",
        }
    finally:
        controller.stop()


def fuzz(deployment, url: str, examples: int = EXAMPLES, options: str = "", account=None):
    """Run the project's `make contract` against ``url`` with this machine's schemathesis, as
    ``account`` (CONTRACT_EMAIL, CONTRACT_PASSWORD) if given.

    It runs in a folder of its own: schemathesis keeps its examples database in the current one.
    """
    folder = Path(tempfile.mkdtemp(prefix="contract-", dir=deployment.root))
    settings = {"CONTRACT_URL": url, "CONTRACT_EXAMPLES": examples, "CONTRACT_OPTIONS": options}
    named = (
        {"CONTRACT_EMAIL": account.email, "CONTRACT_PASSWORD": account.password} if account else {}
    )
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(deployment.bake / "Makefile")]
        + ["-o", "install", "contract", f"BIN={ST.parent}"]
        + [f"{name}={value}" for name, value in settings.items()],
        cwd=folder,
        env={**os.environ, **named},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def statuses(deployment, service, since: int) -> Counter:
    """Count the statuses of the app server's access lines ``service`` wrote after ``since``."""
    lines = [json.loads(line) for line in service.lines(since) if line.strip()]
    logger = deployment.access_logger
    return Counter(line["status"] for line in lines if line["logger"] == logger)


def runs(deployment) -> list[tuple[str, object, set[int]]]:
    """Return each fuzzing run: its URL, the account it runs as, the statuses it must see.

    With use_auth each entry is fuzzed twice: as the deployment's account, whose token `make
    contract` makes for the run and revokes after, then anonymously (writes refused: 401, never
    201). The account's runs come first: each run's fuzzing spends the sign-in limit, which a
    later sign-in waits out (Retry-After; service_env counts it over 5 s).
    """
    if deployment.account is None:
        return [(url, None, {200, 201, 404, 422}) for url in entries(deployment)]
    urls = entries(deployment)
    signed_in = [(url, deployment.account, {200, 201, 404, 422}) for url in urls]
    return signed_in + [(url, None, {200, 401, 404, 422}) for url in urls]


@each()
def test_the_service_keeps_its_contract_under_fuzzing(deployment):
    """It answers schemathesis's cases as documented, directly and through nginx (with use_auth,
    anonymously and with a token `make contract` made for the run and revoked after: zero server
    errors, zero conformance failures either way). `make contract` waits out a spent sign-in
    limit before its run (the first signed-in run meets one)."""
    for index, (url, account, expected) in enumerate(runs(deployment)):
        if index == 0 and account is not None:
            spend_sign_in_limit(url, account.email)  # the run's sign-in must wait it out
        since = deployment.service.mark()
        run = fuzz(deployment, url, account=account)
        assert run.returncode == 0, f"{url}\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
        seen = statuses(deployment, deployment.service, since)
        assert expected <= seen.keys(), (account, seen)
        assert not any(status >= 500 for status in seen), seen
        if account is not None:
            assert "the run's token is revoked" in run.stdout, run.stdout[-2000:]
        if index == 0 and account is not None:
            assert "the sign-in limit is spent; trying again" in run.stdout, run.stdout[-2000:]


def spend_sign_in_limit(url: str, email: str) -> None:
    """Send wrong passwords of ``email`` to ``url`` until REFUSED_IN_A_ROW are refused (429).

    The account's count, cleared by its last sign-in, starts its window with the first of them:
    the run's sign-in right after meets it spent (an address's count may be older and expire).
    """
    wrong = {"email": email, "password": "not the account's password"}
    refused = 0
    for _ in range(SPENT_WITHIN):
        refused = refused + 1 if api_sign_in_from(url, "127.0.0.1", wrong) == 429 else 0
        if refused == REFUSED_IN_A_ROW:
            return
    raise AssertionError(
        f"{SPENT_WITHIN} wrong sign-ins at {url}: not {REFUSED_IN_A_ROW} 429s in a row"
    )


@each(without=("use_nginx",))  # the limiter's storages: memory and Redis
def test_rate_limit_refusals_keep_the_contract(deployment):
    """It answers 429s under fuzzing with the documented body and headers (Retry-After)."""
    service = deployment.extra_service("limited", **TIGHT_LIMITS)
    since = service.mark()
    run = fuzz(deployment, service.url, options="--phases fuzzing")
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert statuses(deployment, service, since)[429] > 0


@each("use_nginx")
def test_nginx_names_the_allowed_methods_of_its_own_405(deployment):
    """It sends Allow with nginx's own 405 (TRACE) and leaves the app's Allow alone."""
    refused = requests.request("TRACE", f"{deployment.nginx.url}/api/items", timeout=TIMEOUT)
    assert_json_error(refused, 405)
    assert refused.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert refused.headers["X-Request-ID"]
    direct = requests.delete(f"{deployment.service.url}/healthz", timeout=TIMEOUT)
    proxied = requests.delete(f"{deployment.nginx.url}/healthz", timeout=TIMEOUT)
    assert_json_error(proxied, 405)
    # The same methods; their order is a set's, which differs between workers that do not share
    # a hash seed (granian's workers are started afresh, not forked).
    assert allowed(proxied) == allowed(direct)


def allowed(response) -> set[str]:
    """Return the methods an Allow header names."""
    return {method.strip() for method in response.headers["Allow"].split(",")}


@each(without=("use_nginx",))
def test_a_request_pipelined_behind_an_unread_body_is_answered(deployment):
    """It answers a request sent right behind one refused with its body unread (found fuzzing)."""
    first = (
        b"POST /api/items HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n"
        + raw_header(deployment).encode()  # with use_auth: the 415, not a 401, leaves it unread
        + b"Content-Length: 10\r\n\r\n0123456789"
    )
    second = b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    answer = raw_exchange(deployment.service.port, first + second)
    assert re.findall(rb"^HTTP/1.1 (\d+)", answer, re.MULTILINE) == [b"415", b"200"], answer
