"""Tier 2: passkeys in a real Chromium, with Chrome's virtual authenticator (CTAP2, internal
transport, resident keys, user verification), against the service as its image runs it.

A passkey belongs to a domain name, never to an address: the browser opens the service at
http://localhost:PORT (a secure context to browsers), an instance of its own whose
PASSKEY_ORIGINS names that origin. A user adds a passkey on the page, signs out, signs in with it
without typing an email, removes it, and is refused with it after. A second authenticator, holding
a credential forged to carry the first user's handle, is refused too: only the key the user
registered signs them in. In the HTTPS row, the same at https://DOMAIN/ through the row's own
path, the generated Caddyfile (with a certificate Pebble issued, tests/tier2/acme.py) before the
served nginx before the service, PASSKEY_ORIGINS set as compose sets it; the browser trusts
Pebble's root through its own certificate store (NSS's, in the HOME it runs with), nothing else.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import uuid
from pathlib import Path

import project_files
import pytest
import requests
from loopback import free_port
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import (
    Credential,
    Protocol,
    Transport,
    VirtualAuthenticatorOptions,
)

from .acme import DOMAIN, https_edge
from .auth import ANONYMOUS, at_once, sign_in_browser, sign_up
from .browser import ARTEFACT_PROPERTY, Browser, browser, layout_problems
from .deployment import GENEROUS_LIMIT
from .servers import whole_lines
from .test_served import each

# Its users and its instance are its own, its passkeys removed or theirs, its sign-ins few: the
# combination's shared deployment serves it (conftest.py; the HTTPS row's its own environment).
SHARE_DEPLOYMENT = True
HOST = "localhost"  # the relying party: mapped to 127.0.0.1 for the browser
REFUSED = "That passkey did not sign you in"  # auth/passkey_pages.py's one answer
# A new P-256 key, then that key as PKCS#8 DER, what chromedriver takes.
NEW_KEY = ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
AS_PKCS8 = ["openssl", "pkcs8", "-topk8", "-nocrypt", "-outform", "DER"]


@pytest.fixture(scope="module")
def service_env(combo) -> dict[str, str]:
    """In the HTTPS row, give the service compose's PASSKEY_ORIGINS (https://${DOMAIN}) for the
    DOMAIN the test's Caddy serves; nothing more in the others."""
    return {"PASSKEY_ORIGINS": f"https://{DOMAIN}"} if combo.selected("use_https") else {}


def authenticator() -> VirtualAuthenticatorOptions:
    """Return the options of a platform authenticator that keeps passkeys and verifies its user."""
    return VirtualAuthenticatorOptions(
        protocol=Protocol.CTAP2,
        transport=Transport.INTERNAL,
        has_resident_key=True,
        has_user_verification=True,
        is_user_verified=True,
    )


def forged_credential(user_handle: bytes) -> Credential:
    """Return a discoverable credential for HOST carrying ``user_handle``, with a new P-256 key
    the service never registered."""
    key = subprocess.run(NEW_KEY, capture_output=True, check=True, timeout=30).stdout
    key = subprocess.run(AS_PKCS8, input=key, capture_output=True, check=True, timeout=30).stdout
    return Credential.create_resident_credential(uuid.uuid4().bytes, HOST, user_handle, key, 0)


def signed_in_as(session: Browser) -> str:
    """Return the email the page says is signed in ("" when none)."""
    found = session.driver.find_elements(By.ID, "signed-in-email")
    return found[0].text if found else ""


def sign_out(session: Browser, origin: str) -> None:
    """Sign out with the page's button; wait for the sign-in link."""
    session.open(f"{origin}/")
    session.driver.find_element(By.CSS_SELECTOR, "#sign-out-form button").click()
    session.wait(lambda d: d.find_elements(By.ID, "sign-in-link"), "signed out")


def passkey_sign_in(session: Browser, origin: str) -> str:
    """Press "Sign in with a passkey" on the sign-in page, typing nothing; return the email
    signed in, or the page's error."""
    session.open(f"{origin}/sign-in")
    assert session.driver.find_element(By.ID, "email").get_attribute("value") == ""
    session.driver.find_element(By.ID, "passkey-sign-in-button").click()

    def outcome(driver) -> str:
        error = driver.find_elements(By.ID, "passkey-error")
        if error and error[0].is_displayed():
            return f"error: {error[0].text}"
        return signed_in_as(session)

    return str(session.wait(outcome, "a passkey sign-in's outcome"))


@pytest.mark.timeout(300)
@each("use_frontend", "use_auth")
def test_a_passkey_signs_in_without_an_email_until_removed(deployment, tmp_path, record_property):
    """It adds a passkey on the page, signs in with it after signing out (no email typed),
    removes it (once the page's question is answered yes: no, and it stays), and then refuses
    it; another authenticator's forged credential carrying the user's handle is refused. The
    passkey page fits a phone's width; no CSP violation on the way."""
    port = free_port()
    origin = f"http://{HOST}:{port}"
    service = deployment.extra_service("passkeys", PORT=str(port), PASSKEY_ORIGINS=origin)
    account = sign_up(deployment, f"passkey-{uuid.uuid4().hex[:8]}@example.com", service)
    with browser(tmp_path / "artefacts", names=(HOST,)) as session:
        session.driver.add_virtual_authenticator(authenticator())
        sign_in_browser(session, origin, account)
        session.open(f"{origin}/passkeys")
        session.driver.find_element(By.ID, "passkey-name").send_keys("Virtual laptop")
        session.driver.find_element(By.ID, "passkey-add-button").click()
        listed = session.wait(lambda d: d.find_elements(By.CLASS_NAME, "passkey-name"), "listed")
        assert [element.text for element in listed] == ["Virtual laptop"]
        (held,) = session.driver.get_credentials()
        assert held.is_resident_credential and held.rp_id == HOST
        assert layout_problems(session, f"{origin}/passkeys", "passkey-list", record_property) == {}

        sign_out(session, origin)
        assert passkey_sign_in(session, origin) == account.email

        session.open(f"{origin}/passkeys")
        session.driver.find_element(By.CLASS_NAME, "passkey-remove").click()
        asked = session.driver.switch_to.alert  # main.js asks before the form ends the passkey
        assert asked.text.startswith("Remove the passkey “Virtual laptop”?"), asked.text
        asked.dismiss()
        assert [e.text for e in session.driver.find_elements(By.CLASS_NAME, "passkey-name")] == [
            "Virtual laptop"
        ], "removed without a yes"
        session.driver.find_element(By.CLASS_NAME, "passkey-remove").click()
        session.driver.switch_to.alert.accept()
        session.wait(lambda d: d.find_elements(By.ID, "no-passkeys"), "the passkey removed")
        sign_out(session, origin)
        assert passkey_sign_in(session, origin).startswith(f"error: {REFUSED}")

        session.driver.remove_all_credentials()
        session.driver.remove_virtual_authenticator()
        session.driver.add_virtual_authenticator(authenticator())
        # get_credentials() gives the handle as chromedriver sent it: base64url text.
        handle = base64.urlsafe_b64decode(held.user_handle)
        session.driver.add_credential(forged_credential(handle))
        assert passkey_sign_in(session, origin).startswith(f"error: {REFUSED}")
        assert session.csp_violations() == []


# In the page, as assets/src/passkeys.js does it: a ceremony's options, then the authenticator's
# answer, returned unsent (the body to post) with the page's CSRF token.
CEREMONY = """
const [kind, done] = [arguments[0], arguments[arguments.length - 1]];
const bytes = (text) => Uint8Array.from(
  atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4)),
  (c) => c.charCodeAt(0));
const text = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
  .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
const token = document.querySelector('meta[name="csrf-token"]').content;
const post = (url, body) => fetch(url, {method: "POST", body: JSON.stringify(body ?? {}),
  headers: {"Content-Type": "application/json", "X-CSRFToken": token}});
(async () => {
  const adding = kind === "add";
  const start = adding ? "/passkeys/new/options" : "/passkeys/sign-in/options";
  const options = await (await post(start)).json();
  const publicKey = {...options, challenge: bytes(options.challenge)};
  for (const list of ["excludeCredentials", "allowCredentials"]) {
    if (options[list]) publicKey[list] = options[list].map((d) => ({...d, id: bytes(d.id)}));
  }
  if (adding) publicKey.user = {...options.user, id: bytes(options.user.id)};
  const made = adding ? await navigator.credentials.create({publicKey})
    : await navigator.credentials.get({publicKey});
  const r = made.response;
  const response = adding
    ? {clientDataJSON: text(r.clientDataJSON), attestationObject: text(r.attestationObject)}
    : {clientDataJSON: text(r.clientDataJSON), authenticatorData: text(r.authenticatorData),
       signature: text(r.signature), userHandle: r.userHandle ? text(r.userHandle) : null};
  const credential = {id: made.id, rawId: text(made.rawId), type: made.type, response,
    clientExtensionResults: made.getClientExtensionResults()};
  done({body: adding ? {name: "Raced", credential} : credential, token});
})().catch((error) => done(String(error)));
"""
AT_ONCE = 8


def post_at_once(session: Browser, origin: str, path: str, answer: dict | str) -> list[int]:
    """Post the ceremony's answer AT_ONCE times at once to ``path``, each with the page's cookies
    and CSRF token, from threads let go together; return the statuses, sorted.

    A page's own fetches would not all leave at once: the browser opens at most six connections
    to a host, and the later posts would carry the cookie the first answers set.
    """
    assert isinstance(answer, dict), f"the ceremony failed: {answer}"
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in session.driver.get_cookies())
    # Only the page's session: no bearer token (requests adds the deployment's on writes).
    headers = {**ANONYMOUS, "Cookie": cookies, "X-CSRFToken": answer["token"], "Origin": origin}

    def post(_: int) -> int:
        sent = requests.post(f"{origin}{path}", json=answer["body"], headers=headers, timeout=30)
        return sent.status_code

    return sorted(at_once(post, list(range(AT_ONCE))))


@pytest.mark.timeout(300)
@each("use_frontend", "use_auth")
def test_one_passkey_answer_sent_many_times_at_once_is_taken_once(deployment, tmp_path):
    """It posts one authenticator answer, made by the browser on the page, 8 times at once, to add
    a passkey and then to sign in with it: its challenge is spent by the first, so one add (one
    passkey listed) and one sign-in succeed, and the others are refused without a server error."""
    port = free_port()
    origin = f"http://{HOST}:{port}"
    service = deployment.extra_service(
        "passkey-race", PORT=str(port), PASSKEY_ORIGINS=origin, RATELIMIT_SIGN_IN=GENEROUS_LIMIT
    )
    account = sign_up(deployment, f"race-{uuid.uuid4().hex[:8]}@example.com", service)
    with browser(tmp_path / "artefacts", names=(HOST,)) as session:
        session.driver.add_virtual_authenticator(authenticator())
        sign_in_browser(session, origin, account)
        session.open(f"{origin}/passkeys")
        answer = session.driver.execute_async_script(CEREMONY, "add")
        added = post_at_once(session, origin, "/passkeys/new", answer)
        assert added == [201] + [422] * (AT_ONCE - 1), added
        session.open(f"{origin}/passkeys")
        listed = session.driver.find_elements(By.CLASS_NAME, "passkey-name")
        assert [element.text for element in listed] == ["Raced"]

        sign_out(session, origin)
        session.open(f"{origin}/sign-in")
        answer = session.driver.execute_async_script(CEREMONY, "sign-in")
        signed = post_at_once(session, origin, "/passkeys/sign-in", answer)
        assert signed == [200] + [422] * (AT_ONCE - 1), signed


@pytest.mark.timeout(300)
@each("use_frontend", "use_auth", "use_https")
def test_a_passkey_signs_in_over_https_through_caddy(deployment, tmp_path, record_property):
    """At https://DOMAIN/, through Caddy (a certificate from Pebble, whose root the browser
    trusts), nginx and the service as compose chains them, it adds a passkey and signs in with it
    after signing out, no email typed."""
    web = deployment.compose["services"][project_files.web_service(deployment.compose)]
    domain = project_files.env_file(deployment.bake / ".env")["DOMAIN"]
    # compose's https://${DOMAIN}, read with .env's DOMAIN: service_env gives it Caddy's DOMAIN.
    assert web["environment"]["PASSKEY_ORIGINS"] == f"https://{domain}"
    assert deployment.nginx is not None, "the HTTPS row serves through nginx"
    root = Path(tempfile.mkdtemp(prefix="https-passkeys-", dir=deployment.root))
    root.chmod(0o755)
    with https_edge(root, deployment.bake, f"127.0.0.1:{deployment.nginx.port}") as caddy:
        origin = f"https://{DOMAIN}"  # port 443, as compose publishes Caddy's
        account = sign_up(deployment, f"https-{uuid.uuid4().hex[:8]}@example.com")
        edge = {DOMAIN: caddy.https_port}
        roots = (caddy.pebble.root_pem(),)
        with browser(tmp_path / "artefacts", https=edge, roots=roots) as session:
            # A certificate the browser does not trust shows its error page (origin "null").
            session.open(f"{origin}/")
            seen = session.driver.execute_script("return [location.origin, isSecureContext]")
            assert seen == [origin, True], f"{origin} did not load: {session.driver.title}"
            session.driver.add_virtual_authenticator(authenticator())
            sign_in_browser(session, origin, account)
            session.open(f"{origin}/passkeys")
            session.driver.find_element(By.ID, "passkey-name").send_keys("Over HTTPS")
            session.driver.find_element(By.ID, "passkey-add-button").click()
            session.wait(lambda d: d.find_elements(By.CLASS_NAME, "passkey-name"), "listed")
            record_property(ARTEFACT_PROPERTY, str(session.screenshot("passkey-list-https")))
            sign_out(session, origin)
            assert passkey_sign_in(session, origin) == account.email
            assert session.csp_violations() == []
        # The ceremony went through Caddy, then the served nginx.
        ceremony = "/passkeys/sign-in"
        assert ceremony in [line.get("request", {}).get("uri") for line in caddy.lines()]
        nginx = [json.loads(line)["path"] for line in whole_lines(deployment.nginx.stdout)]
        assert ceremony in nginx
