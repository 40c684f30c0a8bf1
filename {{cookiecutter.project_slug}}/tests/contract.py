"""``make contract`` with an account: schemathesis fuzzes a running service with a token made
for the run, so the writes are fuzzed too, and the token is revoked after, whatever the run's
outcome. CONTRACT_URL names the service, CONTRACT_EMAIL and CONTRACT_PASSWORD an account of
its own (``flask users create``); the arguments are the schemathesis command to run. Without an
account it runs the command as it is: the writes then answer 401.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

TIMEOUT = 10  # seconds for each of the two requests
REVOCATION = "/api/auth/tokens/current"  # DELETE: revokes the token it is sent with
REVOKED = 401  # the token's own revocation was among the fuzzed operations
LIMITED = 429  # the fuzzing spent the write limit: the revocation waits for it
PATIENCE = 60.0  # seconds waited at most in all for one request, whatever its limits say


def call(method: str, url: str, body: dict[str, str] | None = None, token: str = "") -> dict:
    """Send one JSON request; return the JSON answer; raise HTTPError for an error status."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, headers, method=method)  # noqa: S310  (the service's URL)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310
        found: dict = json.loads(answer.read() or b"{}")
        return found


def main(command: list[str]) -> int:
    """Run the command with a token made for it, when an account is named; return its status."""
    url = os.environ["CONTRACT_URL"].rstrip("/")
    email, password = os.environ.get("CONTRACT_EMAIL", ""), os.environ.get("CONTRACT_PASSWORD", "")
    if not (email and password):
        print("make contract: anonymous, so writes answer 401 (CONTRACT_EMAIL, CONTRACT_PASSWORD")
        print("name an account to fuzz them with a token made for the run)", flush=True)
        return subprocess.call(command)  # noqa: S603  (the Makefile's command)
    try:
        token = sign_in(url, email, password)
    except urllib.error.HTTPError as error:
        print(f"make contract: {email} cannot sign in at {url}: {error.code} {error.reason}")
        return 2
    print(f"make contract: fuzzing as {email}, with a token made for this run", flush=True)
    # The token's own revocation is left to an anonymous run: fuzzed with the token, it would
    # end it, and every write after it would answer 401.
    own = ["--header", f"Authorization: Bearer {token}", "--exclude-path", REVOCATION]
    try:
        return subprocess.call([*command, *own])  # noqa: S603  (the Makefile's command)
    finally:
        revoke(url, token)
        print("make contract: the run's token is revoked", flush=True)


def sign_in(url: str, email: str, password: str) -> str:
    """Return a new token of the account (an earlier run's fuzzing may have spent the sign-in
    limit: see ``patiently``)."""
    body = {"email": email, "password": password}
    return str(patiently("the sign-in limit", "POST", f"{url}/api/auth/tokens", body)["token"])


def revoke(url: str, token: str) -> None:
    """Revoke the token; one the fuzzing revoked already counts as revoked."""
    try:
        patiently("the write limit", "DELETE", f"{url}{REVOCATION}", token=token)
    except urllib.error.HTTPError as error:
        if error.code != REVOKED:
            raise


def patiently(
    limit: str, method: str, url: str, body: dict[str, str] | None = None, token: str = ""
) -> dict:
    """Send the request with ``call``; refused by a spent limit (429), try again after its
    Retry-After, until PATIENCE seconds were waited in all. Another limit, or another worker's
    count, may refuse the next attempt: each refusal names its own wait."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return call(method, url, body, token)
        except urllib.error.HTTPError as error:
            if error.code != LIMITED or time.monotonic() >= deadline:
                raise
            wait_out(error, limit, deadline - time.monotonic())


def wait_out(refusal: urllib.error.HTTPError, limit: str, at_most: float) -> None:
    """Sleep the seconds a 429's Retry-After names (at least 1, at most ``at_most``), saying so."""
    seconds = min(max(float(refusal.headers.get("Retry-After") or 1), 1.0), max(at_most, 0.0))
    print(f"make contract: {limit} is spent; trying again in {seconds:.0f} s", flush=True)
    time.sleep(seconds)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
