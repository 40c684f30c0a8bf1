"""Tier 2: the second factor against the service as its image runs it (two workers). A real
Chromium turns it on from the security page, reading the key from the page's text and computing
the code with pyotp as an authenticator app does; signs out; signs in with the password and a
code, then with a recovery code, and is refused that recovery code again. The API does the same
with tokens; one code, and one recovery code, each sent 8 times at once through the two workers,
sign in once.
"""

from __future__ import annotations

import time
import uuid

import pyotp
import pytest
import requests
from selenium.webdriver.common.by import By

from .auth import ANONYMOUS, TIMEOUT, Account, at_once, sign_in_browser, sign_up, with_two_workers
from .browser import ARTEFACT_PROPERTY, Browser, browser, layout_problems
from .deployment import GENEROUS_LIMIT
from .test_served import each

# Its users are its own, on an instance of its own: the combination's shared deployment serves it.
SHARE_DEPLOYMENT = True
AT_ONCE = 8
CODE_NEEDED = "This account has a second factor"  # the start of auth/api.py's CODE_NEEDED


@pytest.fixture(scope="module")
def service(deployment):
    """An instance of two workers whose sign-in limits no test here reaches: the codes' rules,
    not the limits, answer (tests/tier2/test_auth.py proves the limits)."""
    started = deployment.extra_service(
        "second-factor",
        RATELIMIT_SIGN_IN=GENEROUS_LIMIT,
        RATELIMIT_SIGN_IN_ACCOUNT=GENEROUS_LIMIT,
    )
    return with_two_workers(started)


def code_at(secret: str, seconds: float = 0) -> str:
    """Return the code an authenticator app shows ``seconds`` from now (30 s ahead: the next
    step's, which the service takes after the current one)."""
    return pyotp.TOTP(secret).at(time.time() + seconds)


def click(session: Browser, selector: str) -> None:
    """Click the element ``selector`` names."""
    session.driver.find_element(By.CSS_SELECTOR, selector).click()


def type_into(session: Browser, field: str, text: str) -> None:
    """Type ``text`` into the field with the id ``field``."""
    session.driver.find_element(By.ID, field).send_keys(text)


def sign_in_with_code(session: Browser, url: str, account: Account, code: str) -> str:
    """Sign in through the form with the password, then ``code`` on the code form; return the
    address shown signed in, or the code form's error."""
    session.open(f"{url}/sign-in")
    type_into(session, "email", account.email)
    type_into(session, "password", account.password)
    click(session, "#sign-in-form button[type=submit]")
    session.wait(lambda d: d.find_elements(By.ID, "code-form"), "the code form")
    type_into(session, "code", code)
    click(session, "#code-form button[type=submit]")

    def outcome(driver) -> str | None:
        for found in ("signed-in-email", "code-error"):
            shown = driver.find_elements(By.ID, found)
            if shown:
                return f"{found}: {shown[0].text}"
        return None

    return str(session.wait(outcome, "the code's outcome"))


def sign_out(session: Browser, url: str) -> None:
    """Sign out from the items page."""
    session.open(f"{url}/")
    click(session, "#sign-out-form button")
    session.wait(lambda d: d.find_elements(By.ID, "sign-in-link"), "signed out")


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_a_browser_turns_the_factor_on_and_signs_in_with_its_codes(
    deployment, service, tmp_path, record_property
):
    """From the security page: the key as a QR code and as text, the password and the app's code
    turn it on, ten recovery codes are shown once. Then the password alone leads to the code
    form, a code signs in, a recovery code signs in once and is refused the second time. The page
    fits a phone's width; no CSP violation or console error on the way."""
    account = sign_up(deployment, f"totp-{uuid.uuid4().hex[:8]}@example.com", service)
    url = service.url
    with browser(tmp_path / "artefacts") as session:
        sign_in_browser(session, url, account)
        click(session, "#security-link")
        session.wait(lambda d: d.find_elements(By.ID, "second-factor-off"), "the factor off")
        click(session, "#start-form button")
        key = session.wait(lambda d: d.find_elements(By.ID, "secret"), "the key shown")
        secret = key[0].text.replace(" ", "")
        assert session.driver.find_elements(By.CSS_SELECTOR, ".qr-code svg path")
        problems = layout_problems(session, f"{url}/security", "enable-form", record_property)
        assert problems == {}
        type_into(session, "on-password", account.password)
        type_into(session, "on-code", code_at(secret))
        click(session, "#enable-form button")
        shown = session.wait(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#recovery-codes code"), "the codes"
        )
        codes = [element.text for element in shown]
        assert len(set(codes)) == 10, codes
        record_property(ARTEFACT_PROPERTY, str(session.screenshot("second-factor-on")))
        assert session.driver.find_elements(By.ID, "second-factor-on")
        sign_out(session, url)

        assert (
            sign_in_with_code(session, url, account, code_at(secret, 30))
            == f"signed-in-email: {account.email}"
        )
        sign_out(session, url)
        assert (
            sign_in_with_code(session, url, account, codes[0])
            == f"signed-in-email: {account.email}"
        )
        sign_out(session, url)
        refused = sign_in_with_code(session, url, account, codes[0])
        assert refused.startswith("code-error: Wrong code"), refused
        assert session.csp_violations() == []
        # The refused code's 422, which Chromium logs as a failed load, is the only error.
        others = [line for line in session.console_errors() if "status of 422" not in line]
        assert others == []


def post(url: str, path: str, body: dict, token: str | None = None) -> requests.Response:
    """POST ``body`` as JSON to ``path``, with ``token`` if any (else no Authorization)."""
    headers = {"Authorization": f"Bearer {token}"} if token else ANONYMOUS
    return requests.post(f"{url}{path}", json=body, headers=headers, timeout=TIMEOUT)


@pytest.mark.timeout(300)
@each("use_auth")
def test_the_api_turns_the_factor_on_and_each_code_sent_at_once_signs_in_once(deployment, service):
    """With a token: a new secret, then on with the password and a code (ten recovery codes, a
    new token, the old one ended). A password alone then gets 401 asking for a code; one code,
    and then one recovery code, each sent 8 times at once through the two workers, get one token
    each and 401 for the rest; that recovery code is refused after."""
    account = sign_up(deployment, f"totp-api-{uuid.uuid4().hex[:8]}@example.com", service)
    url = service.url
    started = post(url, "/api/auth/second-factor", {}, account.token)
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    body = {"password": account.password, "code": code_at(secret)}
    on = post(url, "/api/auth/second-factor/enable", body, account.token)
    assert on.status_code == 201, on.text
    codes = on.json()["recovery_codes"]
    assert post(url, "/api/auth/second-factor", {}, account.token).status_code == 401  # ended

    password_only = {"email": account.email, "password": account.password}
    asked = post(url, "/api/auth/tokens", password_only)
    assert asked.status_code == 401 and asked.json()["error"]["detail"].startswith(CODE_NEEDED)
    for code in (code_at(secret, 30), codes[0]):
        with_code = {**password_only, "code": code}
        answers = sorted(
            at_once(
                lambda body: post(url, "/api/auth/tokens", body).status_code, [with_code] * AT_ONCE
            )
        )
        assert answers == [201] + [401] * (AT_ONCE - 1), (code, answers)
    again = post(url, "/api/auth/tokens", {**password_only, "code": codes[0]})
    assert again.status_code == 401
