"""Tier 2, use_auth: tokens on the API and the sign-in limits, against the real servers.

The deployment signs a user up with the generated `flask users create` (tests/tier2/auth.py).
Proven here: a write without a token is refused (401 JSON with WWW-Authenticate), directly and
through nginx, and accepted with one; the per-account sign-in limit is one count in Redis shared
by every worker of several app-server processes (429 with Retry-After once it is spent, and the
email never in a Redis key), holds for attempts arriving at once from many addresses, is shared
with the per-address limit by the API and the pages' form, and counts no malformed body; an
unknown email and a wrong password answer alike, in a similar
time; in a real browser (frontend bakes) a user signs in, adds an item, signs out, and the item
form's request no longer adds one. schemathesis runs with and without a token in
test_contract.py.
"""

from __future__ import annotations

import hashlib
import math
import random
import secrets
import statistics
import time
import uuid
from collections.abc import Callable

import pytest
import requests
from selenium.webdriver.common.by import By

from .auth import (
    ANONYMOUS,
    api_sign_in_from,
    at_once,
    create_user,
    form_sign_in_from,
    sign_in_browser,
)
from .browser import ARTEFACT_PROPERTY, browser
from .servers import Service
from .test_hostile_input import entries
from .test_served import TIMEOUT, assert_json_error, each

GENEROUS_SIGN_IN = "1000000 per minute"
ACCOUNT_LIMIT = 4  # password checks per account and minute in the limit tests' instances
INSTANCES = 2  # app-server processes (each with WEB_CONCURRENCY workers) sharing one Redis
TIMED_PAIRS = 60  # pairs of requests of two kinds, each pair's order drawn, after WARM_UP pairs
WARM_UP = 3
PAIRS_SEED = 64  # the draw of each pair's order: a failed run replays in the same order
# Under no difference between two kinds, the pairs where one is the slower count as fair coin
# flips; a count in either tail as unlikely as this is a difference (the sign test).
SIGN_TEST_LEVEL = 0.001
# |median(unknown) - median(wrong password)| <= the larger of TIMING_RATIO x the slower median
# and TIMING_FLOOR seconds: see the test.
TIMING_RATIO = 0.25
TIMING_FLOOR = 0.010
# The rendered widths (CSS pixels) of the elements a selector finds, in order.
FIELD_WIDTHS = "return [...document.querySelectorAll(arguments[0])].map(e => e.offsetWidth)"
AT_ONCE = 16  # wrong passwords for one account sent at once, from SOURCES addresses
SOURCES = 8  # loopback client addresses 127.0.0.2 onwards (127.0.0.1 stays the tests' own)
Times = dict[str, list[float]]  # seconds each request of a kind took


def sign_in(url: str, email: str, password: str, session=requests) -> requests.Response:
    """POST an email and password to /api/auth/tokens at ``url``."""
    return session.post(
        f"{url}/api/auth/tokens",
        json={"email": email, "password": password},
        headers=ANONYMOUS,
        timeout=TIMEOUT,
    )


@each("use_auth")
def test_a_write_needs_a_token_directly_and_through_nginx(deployment):
    """It refuses an anonymous or forged-token POST with 401 JSON and WWW-Authenticate: Bearer,
    stores nothing for them, and stores the item of a POST with the user's token; reads stay
    public."""
    for entry in entries(deployment):
        before = deployment.rows()
        anonymous = requests.post(
            f"{entry}/api/items", json={"name": "anon"}, headers=ANONYMOUS, timeout=TIMEOUT
        )
        assert_json_error(anonymous, 401)
        assert anonymous.headers["WWW-Authenticate"].lower().startswith("bearer"), anonymous
        forged = requests.post(
            f"{entry}/api/items",
            json={"name": "forged"},
            headers={"Authorization": f"Bearer {uuid.uuid4().hex}"},
            timeout=TIMEOUT,
        )
        assert_json_error(forged, 401)
        assert "invalid_token" in forged.headers["WWW-Authenticate"], forged.headers
        assert deployment.rows() == before
        created = requests.post(
            f"{entry}/api/items",
            json={"name": "signed"},
            headers=deployment.account.header,
            timeout=TIMEOUT,
        )
        assert created.status_code == 201, created.text
        assert deployment.rows() == before + 1
        read = requests.get(f"{entry}/api/items/{created.json()['id']}", timeout=TIMEOUT)
        assert read.status_code == 200 and read.json()["name"] == "signed"


@pytest.fixture(scope="module")
def account_limited(deployment) -> list[Service]:
    """Start INSTANCES instances of WEB_CONCURRENCY workers each, allowing each account
    ACCOUNT_LIMIT password checks a minute (each client address far more), on first use.

    The module's tests of that limit share them: each spends it on an account of its own (the
    deployment's, or a new user), counted in Redis under that account alone.
    """
    limits = {
        "RATELIMIT_SIGN_IN_ACCOUNT": f"{ACCOUNT_LIMIT} per minute",
        "RATELIMIT_SIGN_IN": GENEROUS_SIGN_IN,
    }
    return [deployment.extra_service(f"account-limited-{n}", **limits) for n in range(INSTANCES)]


@each("use_auth", "use_redis", "use_postgres")
def test_the_account_sign_in_limit_is_shared_by_every_worker(deployment, account_limited):
    """It counts one account's failed sign-ins once, in Redis, across app-server processes.

    The attempts alternate between two instances of two workers each, so each process's own
    memory would allow ACCOUNT_LIMIT failures per worker; the shared count allows ACCOUNT_LIMIT in
    all, then answers 429 with Retry-After on every instance, even to the right password.
    """
    services = account_limited
    assert len({pid for service in services for pid in service.workers()}) >= 2 * INSTANCES
    account = deployment.account
    answers = [
        sign_in(services[attempt % INSTANCES].url, account.email, "wrong password").status_code
        for attempt in range(3 * ACCOUNT_LIMIT)
    ]
    assert answers == [401] * ACCOUNT_LIMIT + [429] * (2 * ACCOUNT_LIMIT), answers
    for service in services:
        refused = sign_in(service.url, account.email, account.password)
        assert_json_error(refused, 429)
        assert 0 < int(refused.headers["Retry-After"]) <= 60, refused.headers
    keys = deployment.redis.client(deployment.redis_db).keys("*")
    assert keys, "the limiter wrote nothing to Redis"
    assert not [key for key in keys if account.email.encode() in key], keys
    digest = hashlib.sha256(account.email.encode()).hexdigest().encode()
    assert any(digest in key for key in keys), keys


def new_user(deployment) -> tuple[str, str]:
    """Create a user of its own for a test (its counts start afresh); return email, password."""
    email, password = f"limits-{uuid.uuid4().hex[:12]}@example.com", secrets.token_urlsafe(18)
    create_user(deployment, email, password)
    return email, password


def source(n: int) -> str:
    """Return the n-th client address (mod SOURCES) of the tests of limits."""
    return f"127.0.0.{2 + n % SOURCES}"


@each("use_auth", "use_redis")
def test_an_account_gets_its_limit_of_password_checks_however_many_arrive_at_once(
    deployment, account_limited
):
    """It answers AT_ONCE wrong passwords for one account, sent at once from SOURCES addresses to
    two instances of two workers each, with ACCOUNT_LIMIT 401s (real password checks) and 429 to
    the rest: each check is counted, in Redis, before it runs, not after its answer."""
    services = account_limited
    assert len({pid for service in services for pid in service.workers()}) >= 2 * INSTANCES
    email, _ = new_user(deployment)

    def attempt(n: int) -> int:
        body = {"email": email, "password": f"wrong password {n}"}
        return api_sign_in_from(services[n % INSTANCES].url, source(n), body)

    answers = sorted(at_once(attempt, list(range(AT_ONCE))))
    checked = answers.count(401)  # real password checks
    assert answers == [401] * ACCOUNT_LIMIT + [429] * (AT_ONCE - ACCOUNT_LIMIT), (checked, answers)


@each("use_auth", "use_redis", "use_frontend")
def test_the_api_and_the_form_share_one_count_per_account_and_one_per_address(deployment):
    """It counts an account's failed checks through POST /api/auth/tokens and POST /sign-in in
    one count (ACCOUNT_LIMIT 401s, then 429 on both), and one address's attempts on both in one
    count (twice ACCOUNT_LIMIT answers in all, then 429 on both)."""
    address_limit = 2 * ACCOUNT_LIMIT
    limits = {
        "RATELIMIT_SIGN_IN_ACCOUNT": f"{ACCOUNT_LIMIT} per minute",
        "RATELIMIT_SIGN_IN": f"{address_limit} per minute",
    }
    url = deployment.extra_service("both-surfaces", **limits).url
    email, password = new_user(deployment)
    tries = ACCOUNT_LIMIT + 1
    body = {"email": email, "password": "wrong password"}
    by_api = [api_sign_in_from(url, source(n), body) for n in range(tries)]
    by_form = [form_sign_in_from(url, source(n), email, "wrong password") for n in range(tries)]
    assert by_api == [401] * ACCOUNT_LIMIT + [429], by_api
    assert by_form == [429] * tries, by_form
    assert form_sign_in_from(url, source(tries), email, password) == 429  # spent, right or not

    one = "127.0.0.99"  # an address of its own; unknown emails, counted per account alike
    unknown = [f"nobody-{n}-{uuid.uuid4().hex[:8]}@example.com" for n in range(address_limit + 2)]
    half = len(unknown) // 2
    by_api = [api_sign_in_from(url, one, {"email": e, "password": "x"}) for e in unknown[:half]]
    by_form = [form_sign_in_from(url, one, e, "a wrong password") for e in unknown[half:]]
    assert by_api == [401] * half, by_api
    assert by_form == [422] * (address_limit - half) + [429] * 2, by_form


# Bodies naming an account that are no sign-in: refused before any password check.
MALFORMED = (
    {"password": 12345678},
    {"password": None},
    {"password": ["wrong password"]},
    {"password": "wrong password", "is_admin": True},
    {},
)


@each("use_auth", "use_redis")
def test_a_malformed_body_naming_an_account_does_not_count_against_it(deployment, account_limited):
    """It refuses each malformed body naming the account with 422 and counts none against it:
    more of them than RATELIMIT_SIGN_IN_ACCOUNT leave the right password answered 201."""
    assert len(MALFORMED) > ACCOUNT_LIMIT
    url = account_limited[0].url
    email, password = new_user(deployment)
    answers = [api_sign_in_from(url, source(0), {"email": email, **body}) for body in MALFORMED]
    assert answers == [422] * len(MALFORMED), answers
    assert api_sign_in_from(url, source(1), {"email": email, "password": password}) == 201


@each("use_auth", "use_postgres")
def test_an_unknown_email_and_a_wrong_password_answer_alike_in_a_similar_time(
    deployment, record_property
):
    """It answers the same 401 body to both, their median times within 25 % or 10 ms, and
    neither kind slower in more of TIMED_PAIRS pairs than the sign test allows.

    Bound: every attempt runs one argon2 verification (the user's hash, or a dummy one with the
    same parameters for an unknown email), most of an answer's time (about 20-45 ms here, with
    an indexed lookup of the email either way). Without the dummy an unknown email answers in a
    few milliseconds: the medians then differ by the verification's whole time, some 80 % of
    the slower (measured with the dummy's verification removed: 4-5 ms against 22-25 ms, with
    gunicorn and with granian). 25 % of the slower median, or 10 ms when that is less, leaves
    room for a noisy two-core machine and still catches that. A smaller difference that holds
    request after request shows in the pairs instead: each pair's order is drawn, so neither
    kind gains from going first, and load on the machine hits both alike. The attempts use
    distinct unknown emails and the deployment's user; an instance with limits far above them
    answers, so no 429 is timed.
    """
    generous = {
        "RATELIMIT_SIGN_IN": GENEROUS_SIGN_IN,
        "RATELIMIT_SIGN_IN_ACCOUNT": GENEROUS_SIGN_IN,
    }
    service = deployment.extra_service("timing", **generous)
    account = deployment.account

    def ask(kind: str, session: requests.Session) -> str:
        email = f"nobody-{uuid.uuid4().hex}@example.com" if kind == "unknown" else account.email
        answer = sign_in(service.url, email, "wrong password", session)
        return repr(assert_json_error(answer, 401)["error"])

    assert_timed_alike(ask, ("unknown", "wrong"), record_property, "sign_in")


def timed_pairs(
    ask: Callable[[str, requests.Session], str], kinds: tuple[str, str], seed: int = PAIRS_SEED
) -> Times:
    """Time WARM_UP + TIMED_PAIRS pairs of requests, one of each of the two ``kinds``, in an
    order drawn from ``seed`` for each pair (load on the machine hits both alike, and neither
    always goes first), each sent and checked by ``ask``, which returns the answer's body; assert
    one body for all; return each kind's times after the warm-up, the n-th of each from the
    n-th pair."""
    times: Times = {kind: [] for kind in kinds}
    bodies = set()
    order = random.Random(seed)
    with requests.Session() as session:
        for attempt in range(WARM_UP + TIMED_PAIRS):
            for kind in order.sample(kinds, len(kinds)):
                start = time.perf_counter()
                bodies.add(ask(kind, session))
                took = time.perf_counter() - start
                if attempt >= WARM_UP:
                    times[kind].append(took)
    assert len(bodies) == 1, bodies
    return times


def assert_similar_medians(times: Times, record_property, name: str) -> None:
    """Assert the two kinds' median times differ by at most the larger of TIMING_RATIO x the
    slower and TIMING_FLOOR; record and print them as ``name``."""
    medians = {kind: statistics.median(taken) for kind, taken in times.items()}
    record_property(f"{name}_median_ms", {kind: m * 1000 for kind, m in medians.items()})
    print(f"median {name}: " + ", ".join(f"{kind} {m * 1e3:.1f} ms" for kind, m in medians.items()))
    first, second = medians.values()
    assert abs(first - second) <= max(TIMING_RATIO * max(first, second), TIMING_FLOOR), medians


def assert_timed_alike(
    ask: Callable[[str, requests.Session], str], kinds: tuple[str, str], record_property, name: str
) -> None:
    """Time pairs of the two ``kinds`` (timed_pairs) and assert their medians similar and
    ``kinds[1]`` the slower in neither too many nor too few pairs for chance.

    When the first TIMED_PAIRS pairs show a signal, as many again are timed and the test judges
    all of them together: a difference the server makes holds in both rounds and stays a signal
    (37 of 40 measured before the mail jobs is 74 of 80 then), while a burst of load from the
    machine's other work, which at the sign test's level still flags one run in a few hundred,
    does not land on the same kind twice."""
    times = timed_pairs(ask, kinds)
    low, high = sign_test_bounds(len(times[kinds[1]]))
    if not low < slower_pairs(times, kinds[1]) < high:
        more = timed_pairs(ask, kinds, seed=PAIRS_SEED + 1)
        times = {kind: times[kind] + more[kind] for kind in kinds}
    assert_no_signal(times, kinds[1], record_property, name)
    assert_similar_medians(times, record_property, name)


def sign_test_bounds(pairs: int, level: float = SIGN_TEST_LEVEL) -> tuple[int, int]:
    """Return the counts (low, high) of pairs, out of ``pairs``, where one kind is the slower,
    at or past which that is a signal: with none the count is Binomial(pairs, 1/2), and each
    tail, at or above high or at or below low, has a probability of at most ``level``."""
    tail = 0
    for high in range(pairs, -1, -1):
        tail += math.comb(pairs, high)
        if tail > level * 2**pairs:
            return pairs - (high + 1), high + 1
    raise ValueError(f"no count of {pairs} pairs is as unlikely as {level}")


def slower_pairs(times: Times, kind: str) -> int:
    """Return the number of pairs in which ``kind`` took longer than the other kind."""
    (other,) = (name for name in times if name != kind)
    return sum(mine > theirs for mine, theirs in zip(times[kind], times[other], strict=True))


def assert_no_signal(times: Times, kind: str, record_property, name: str) -> None:
    """Assert ``kind`` was the slower in neither too many nor too few pairs for chance (the
    sign test at SIGN_TEST_LEVEL, each direction); record and print the count as ``name``."""
    pairs = len(times[kind])
    low, high = sign_test_bounds(pairs)
    slower = slower_pairs(times, kind)
    record_property(f"{name}_slower_pairs", {kind: slower, "pairs": pairs})
    print(f"{name}: {kind} slower in {slower} of {pairs} pairs (a signal: <= {low} or >= {high})")
    assert low < slower < high, f"{kind} slower in {slower} of {pairs} pairs: {times}"


# The item form's request, sent again from the page by fetch: with the fields it sent signed in
# (its CSRF token included), or with the page's current CSRF token as HTMX sends it. Resolves to
# the answer's status (a redirect is not followed: 0).
REPLAY = """
const [fields, fresh, done] = arguments;
const form = new URLSearchParams(fields);
const headers = fresh ? {"HX-Request": "true", "X-CSRFToken": fresh} : {};
if (fresh) form.set("csrf_token", fresh);
fetch("/items", {method: "POST", body: form, headers: headers, redirect: "manual"})
  .then((answer) => done(answer.status), (error) => done(String(error)));
"""


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_a_browser_signs_in_adds_an_item_signs_out_and_cannot_post_any_more(
    deployment, tmp_path, record_property
):
    """It signs in through the form, adds an item (the section says so; the name field is as
    wide as the description), signs out (the page says so): the form is gone, and the form's
    request sent again from the page (as it was, or with the page's new CSRF token) adds nothing.
    """
    name = f"signed-{uuid.uuid4().hex[:8]}"
    with browser(tmp_path / "artefacts") as session:
        session.open(f"{deployment.entry}/")
        assert not session.driver.find_elements(By.ID, "name"), "a form for the signed out"
        session.driver.find_element(By.ID, "sign-in-link").click()
        sign_in_browser(session, None, deployment.account)
        session.open(f"{deployment.entry}/")
        session.wait(lambda d: d.execute_script("return !!window.htmx"), "htmx loaded")
        session.driver.find_element(By.ID, "name").send_keys(name)
        session.driver.find_element(By.CSS_SELECTOR, "form[hx-post] button[type=submit]").click()
        session.wait(lambda d: name in d.find_element(By.ID, "items").text, "the new item listed")
        notice = session.driver.find_element(By.CSS_SELECTOR, "#items-section .notice").text
        assert notice == f"Added “{name}”.", notice
        widths = session.driver.execute_script(FIELD_WIDTHS, "#name, #description")
        assert len(set(widths)) == 1, widths  # the name as wide as the description
        fields = session.driver.execute_script(
            "return Object.fromEntries(new FormData(document.querySelector('form[hx-post]')))"
        )
        record_property(ARTEFACT_PROPERTY, str(session.screenshot("signed-in-item-added")))
        assert session.console_errors() == [] and session.csp_violations() == []

        session.driver.find_element(By.CSS_SELECTOR, "#sign-out-form button").click()
        session.wait(lambda d: d.find_elements(By.ID, "sign-in-link"), "signed out")
        assert not session.driver.find_elements(By.ID, "name"), "the form is still shown"
        notice = session.driver.find_element(By.CSS_SELECTOR, ".notice").text
        assert notice == "You are signed out.", notice
        record_property(ARTEFACT_PROPERTY, str(session.screenshot("signed-out")))
        fresh = session.driver.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]')
        token = fresh.get_attribute("content")
        replayed = {**fields, "name": f"{name}-again"}
        as_sent = session.driver.execute_async_script(REPLAY, replayed, None)
        as_htmx = session.driver.execute_async_script(REPLAY, replayed, token)
        assert session.csp_violations() == []
    assert as_sent in (0, 400), as_sent  # its CSRF token went with its session (0: redirected)
    assert as_htmx == 403, as_htmx  # the CSRF check passes; only a signed-in user may post
    assert deployment.query("SELECT count(*) FROM items WHERE name = ?", name)[0][0] == 1
    assert deployment.query("SELECT count(*) FROM items WHERE name = ?", f"{name}-again") == [(0,)]
