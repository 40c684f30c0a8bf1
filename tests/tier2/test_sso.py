"""Tier 2: single sign-on against a real OpenID Connect provider on loopback and the service as
its image runs it (two workers). The provider is oidc-provider-mock, served here by werkzeug: its
discovery document, its keys (JWKS), its authorization form and its token endpoint, with RS256 ID
tokens. A real Chromium presses "Sign in with", signs in at the provider's form and lands signed
in, a new account; a provider's user whose address has a confirmed account here is linked to it;
one whose account here is not confirmed is refused, saying why. Without a browser, one new
identity's answers sent 8 times at once (8 flows of their own) through the two workers make one
account, and every one of them signs in.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import oidc_provider_mock
import pytest
import requests
import werkzeug.serving
from loopback import free_port
from selenium.webdriver.common.by import By

from .auth import TIMEOUT, at_once, create_user, with_two_workers
from .browser import Browser, browser
from .deployment import GENEROUS_LIMIT
from .test_served import each

# Its users are its own, on an instance of its own: the combination's shared deployment serves it.
SHARE_DEPLOYMENT = True
AT_ONCE = 8
NAME = "Test provider"
UNCONFIRMED = "An account here has this address"  # the start of auth/sso.py's LINK_FROM_SECURITY
# Run in the service's environment: the users and identities of one address, as JSON.
COUNT = """
import json, sys
from sqlalchemy import func, select
from {package} import create_app
from {package}.auth.accounts import User
from {package}.auth.sso import Identity
from {package}.extensions import db

with create_app().app_context():
    users = db.session.scalars(select(User.id).where(User.email == sys.argv[1])).all()
    linked = select(func.count()).select_from(Identity).where(Identity.user_id.in_(users))
    print(json.dumps({{"users": len(users), "identities": db.session.scalar(linked)}}))
"""
UNCONFIRM = """
import sys
from sqlalchemy import update
from {package} import create_app
from {package}.auth.accounts import User
from {package}.extensions import db

with create_app().app_context():
    db.session.execute(update(User).where(User.email == sys.argv[1]).values(email_verified_at=None))
    db.session.commit()
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """Serve the provider on a loopback port of its own; return its issuer URL."""
    server = werkzeug.serving.make_server(
        "127.0.0.1", free_port(), oidc_provider_mock.app(), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="module")
def service(deployment, provider):
    """An instance of two workers offering single sign-on with the provider, new accounts
    allowed, with sign-in limits no test here reaches."""
    port = free_port()
    started = deployment.extra_service(
        "sso",
        PORT=str(port),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        OIDC_ISSUER=provider,
        OIDC_CLIENT_ID="my-service",
        OIDC_CLIENT_SECRET="a-client-secret",
        OIDC_NAME=NAME,
        OIDC_SIGN_UP="true",
        RATELIMIT_SIGN_IN=GENEROUS_LIMIT,
    )
    return with_two_workers(started)


def at_provider(provider: str, subject: str, email: str, verified: bool = True) -> None:
    """Give the provider's user ``subject`` an address, confirmed there (``verified``) or not."""
    claims = {"email": email, "email_verified": verified}
    answer = requests.put(f"{provider}/users/{quote(subject)}", json=claims, timeout=TIMEOUT)
    assert answer.status_code == 204, answer.text


def in_service(deployment, service, script: str, email: str) -> str:
    """Run ``script`` with ``email`` in the service's environment; return what it printed."""
    python = str(deployment.bin / "python")
    ran = service.run_once([python, "-c", script.format(package=deployment.package), email])
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout.strip().splitlines()[-1] if ran.stdout.strip() else ""


def stored(deployment, service, email: str) -> dict[str, int]:
    """Return how many accounts have ``email``, and how many identities are linked to them."""
    return json.loads(in_service(deployment, service, COUNT, email))


def sign_in_with_provider(session: Browser, url: str, subject: str) -> str:
    """Press the sign-in page's "Sign in with", type ``subject`` into the provider's form and
    authorize; return the address the items page shows signed in, or the sign-in page's notice."""
    session.open(f"{url}/sign-in")
    button = session.driver.find_element(By.ID, "sso-sign-in")
    assert button.text == f"Sign in with {NAME}"
    button.click()
    field = session.wait(lambda d: d.find_elements(By.NAME, "sub"), "the provider's form")
    field[0].send_keys(subject)
    session.driver.find_element(By.XPATH, "//button[text()='Authorize']").click()

    def outcome(driver) -> str | None:
        signed_in = driver.find_elements(By.ID, "signed-in-email")
        if signed_in:
            return f"signed in: {signed_in[0].text}"
        notice = driver.find_elements(By.CSS_SELECTOR, ".notice")
        if notice and driver.find_elements(By.ID, "sign-in-form"):
            return f"refused: {notice[0].text}"
        return None

    return str(session.wait(outcome, "the sign-in's outcome"))


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_a_browser_signs_in_with_the_provider(deployment, service, provider, tmp_path):
    """A new provider user lands signed in, a new account; a provider user with a confirmed
    account here lands in it, linked; one whose account here is unconfirmed is refused with the
    way to link it, and nothing is linked. No CSP violation on the way."""
    tag = uuid.uuid4().hex[:8]
    new, known, unconfirmed = (f"sso-{kind}-{tag}@example.com" for kind in ("new", "known", "un"))
    at_provider(provider, f"new-{tag}", new)
    at_provider(provider, f"known-{tag}", known)
    at_provider(provider, f"un-{tag}", unconfirmed)
    create_user(deployment, known, "a-password-of-theirs", service)
    create_user(deployment, unconfirmed, "a-password-of-theirs", service)
    in_service(deployment, service, UNCONFIRM, unconfirmed)
    with browser(tmp_path / "artefacts") as session:
        assert sign_in_with_provider(session, service.url, f"new-{tag}") == f"signed in: {new}"
        session.driver.delete_all_cookies()
        assert sign_in_with_provider(session, service.url, f"known-{tag}") == f"signed in: {known}"
        session.driver.delete_all_cookies()
        refused = sign_in_with_provider(session, service.url, f"un-{tag}")
        assert refused.startswith(f"refused: {UNCONFIRMED}"), refused
        assert session.csp_violations() == []
    assert stored(deployment, service, new) == {"users": 1, "identities": 1}
    assert stored(deployment, service, known) == {"users": 1, "identities": 1}
    assert stored(deployment, service, unconfirmed) == {"users": 1, "identities": 0}


def answer_of_provider(url: str, subject: str) -> tuple[str, str]:
    """Start a flow of its own at the service and authorize ``subject`` at the provider; return
    the flow's session cookie and the callback URL the provider answered, unsent."""
    start = requests.get(f"{url}/sign-in/sso", allow_redirects=False, timeout=TIMEOUT)
    assert start.status_code == 302, start.text
    # The cookie is Secure (production), which requests keeps to itself over plain HTTP.
    cookie = start.headers["Set-Cookie"].split(";", 1)[0]
    authorized = requests.post(
        start.headers["Location"], data={"sub": subject}, allow_redirects=False, timeout=TIMEOUT
    )
    assert authorized.status_code == 302, authorized.text
    callback = authorized.headers["Location"]
    assert urlsplit(callback).path == "/sign-in/sso/callback", callback
    return cookie, callback


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_one_new_identity_at_once_through_two_workers_makes_one_account(
    deployment, service, provider
):
    """8 flows of one new provider user, their answers let go at once: one account, one
    identity, and each flow signed in to it (none refused, none a 500)."""
    tag = uuid.uuid4().hex[:8]
    email = f"sso-race-{tag}@example.com"
    at_provider(provider, f"race-{tag}", email)
    flows = [answer_of_provider(service.url, f"race-{tag}") for _ in range(AT_ONCE)]

    def come_back(flow: tuple[str, str]) -> int:
        cookie, callback = flow
        headers = {"Cookie": cookie}
        answer = requests.get(callback, headers=headers, allow_redirects=False, timeout=TIMEOUT)
        return answer.status_code if answer.headers.get("Location") == "/" else -answer.status_code

    assert at_once(come_back, flows) == [303] * AT_ONCE
    assert stored(deployment, service, email) == {"users": 1, "identities": 1}
