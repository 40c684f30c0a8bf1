"""A real headless browser for tier 2: Debian's Chromium driven by Selenium, loopback only.

No driver or browser is downloaded: Selenium talks to /usr/bin/chromedriver, which starts
/usr/bin/chromium (.ci/run installs both). Every host name resolves to nothing, except names a
session maps to 127.0.0.1 itself, and no proxy is used, so the page can only reach 127.0.0.1.
A name serves a page Chromium must treat as any site's: it trusts 127.0.0.1 as if it were HTTPS
(a Secure cookie is kept there over plain HTTP). A session may trust CA roots of its own (a
test's private CA): Chromium then runs with a HOME whose NSS database holds them, as a user's
added roots; a page whose certificate chains to neither those nor the system's fails to load.

The harness keeps the console (``goog:loggingPrefs``) and every Content-Security-Policy
violation (a ``securitypolicyviolation`` listener installed before the page's own scripts, plus
the console's entries: "... violates the following Content Security Policy directive ..." in
Chromium 156, "Refused to ..." in older ones), waits only within bounds, and saves screenshots as
test artefacts. ``serve_pages`` serves fixed pages on loopback: the harness's own test pages, or
another site's form posting to the service.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_LOAD_TIMEOUT = 60.0
WAIT_TIMEOUT = 30.0
DETACHED = "does not belong to the document"  # Chrome: the element's node left the page
WINDOW = "1280,900"
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in CI; the page comes from the service under test only
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
)
# Only IP literals and the session's own names connect: any other name (a CDN, a font host)
# fails, so the test sees it.
NO_OTHER_NAMES = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE ::1"
# Runs in every new document before its own scripts; CSP never applies to it.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push({directive: event.violatedDirective, blocked: event.blockedURI,
                               source: event.sourceFile, line: event.lineNumber});
});
"""


class BrowserError(RuntimeError):
    """The browser could not start or did not reach a state in time."""


def trusting_home(folder: Path, roots: tuple[str, ...]) -> Path:
    """Make ``folder`` a HOME whose NSS database (``.pki/nssdb``, where Chromium on Linux reads
    the roots a user added) trusts each PEM of ``roots`` as a CA for websites; return it. With
    no roots, the HOME is empty and Chromium trusts the system's roots only."""
    folder.mkdir(parents=True)
    if not roots:
        return folder
    nssdb = folder / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = ["certutil", "-d", f"sql:{nssdb}"]
    commands = [[*certutil, "-N", "--empty-password"]]
    commands += [[*certutil, "-A", "-n", f"root-{i}", "-t", "C,,"] for i in range(len(roots))]
    inputs = [b"", *(pem.encode() for pem in roots)]
    try:
        for command, pem in zip(commands, inputs, strict=True):
            subprocess.run(command, input=pem, check=True, capture_output=True, timeout=30)
    except FileNotFoundError as exc:
        raise BrowserError("certutil is missing: apt-get install libnss3-tools") from exc
    return folder


def _check_installed() -> None:
    """Fail clearly when Chromium or its driver is not installed (never download one)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        needed = "apt-get install chromium chromium-driver"
        raise BrowserError(f"missing {', '.join(missing)}: {needed}")


def _options(
    profile: Path,
    names: tuple[str, ...],
    flags: tuple[str, ...] = (),
    https: dict[str, int] | None = None,
) -> webdriver.ChromeOptions:
    """Return Chromium's options: headless, loopback only (``names`` too, port 443 of each name
    in ``https`` going to its loopback port), console kept, own profile, and ``flags``."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    ports = [f"MAP {name}:443 127.0.0.1:{port}" for name, port in (https or {}).items()]
    rules = ", ".join([*ports, *(f"MAP {name} 127.0.0.1" for name in names), NO_OTHER_NAMES])
    own = (
        f"--host-resolver-rules={rules}",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW}",
    )
    for flag in (*FLAGS, *own, *flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Selenium's own connection to chromedriver stays off any proxy the environment names. The
    # replacement it suggests (a ClientConfig) is not accepted by webdriver.Chrome in 4.50.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        options.ignore_local_proxy_environment_variables()
    return options


def _is_csp_message(entry: dict) -> bool:
    """Say whether a console entry reports a CSP violation (wording varies across versions)."""
    message = entry["message"]
    return "Content Security Policy" in message or message.startswith("Refused to")


class Browser:
    """One headless Chromium session; console entries accumulate across reads."""

    def __init__(
        self,
        artefacts: Path,
        names: tuple[str, ...] = (),
        flags: tuple[str, ...] = (),
        https: dict[str, int] | None = None,
        roots: tuple[str, ...] = (),
    ) -> None:
        """Prepare a session that saves its screenshots under ``artefacts``, resolves each of
        ``names`` to 127.0.0.1 (and https://NAME/ of ``https`` to its loopback port), trusts the
        CA certificates ``roots`` (PEM) besides the system's, and adds ``flags`` to Chromium's."""
        self.artefacts = artefacts
        self.names = (*names, *(https or {}))
        self.flags = flags
        self.https = https or {}
        self.roots = roots
        self.console: list[dict] = []
        self.driver: webdriver.Chrome | None = None
        self._profile: Path | None = None

    def start(self) -> Browser:
        """Start chromedriver and Chromium, with the CSP listener registered for every page."""
        _check_installed()
        self._profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        self.artefacts.mkdir(parents=True, exist_ok=True)
        # Chromium, started by chromedriver, inherits its environment: a HOME of the profile's.
        home = trusting_home(self._profile / "home", self.roots)
        service = DriverService(
            executable_path=str(CHROMEDRIVER),
            log_output=str(self.artefacts / "chromedriver.log"),
            env={**os.environ, "HOME": str(home)},
        )
        try:
            options = _options(self._profile / "data", self.names, self.flags, self.https)
            self.driver = webdriver.Chrome(service=service, options=options)
        except WebDriverException as exc:
            self.quit()
            raise BrowserError(f"Chromium did not start: {exc.msg}") from exc
        self.driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        self.driver.set_script_timeout(WAIT_TIMEOUT)
        self.driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": CSP_LISTENER}
        )
        return self

    def quit(self) -> None:
        """Stop Chromium and its driver, and remove the profile."""
        if self.driver is not None:
            with contextlib.suppress(WebDriverException):
                self.driver.quit()
            self.driver = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)

    def open(self, url: str) -> None:
        """Load ``url`` (a loopback address, or a name mapped to one) and wait for the document
        to finish loading."""
        hosts = ("127.0.0.1", "[::1]", *self.names)
        allowed = [f"{scheme}://{host}:" for scheme in ("http", "https") for host in hosts]
        allowed += [f"https://{name}/" for name in self.https]
        if not url.startswith(tuple(allowed)):
            raise BrowserError(f"the browser only visits loopback addresses, not {url}")
        self.driver.get(url)
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete", "load")

    def wait(self, condition: Callable[[webdriver.Chrome], object], what: str) -> object:
        """Wait at most WAIT_TIMEOUT seconds for ``condition``; raise naming ``what``. An element
        missing, or replaced by HTMX between finding and reading it, is looked for again."""
        retried = (NoSuchElementException, StaleElementReferenceException)

        def looked_again(driver: webdriver.Chrome) -> object:
            try:
                return condition(driver)
            except WebDriverException as exc:
                # Chrome's word for an element a navigation replaced while it was read (not
                # always reported as stale): look again, as for a stale one.
                if DETACHED not in (exc.msg or ""):
                    raise
                return False

        try:
            wait = WebDriverWait(
                self.driver, WAIT_TIMEOUT, poll_frequency=0.1, ignored_exceptions=retried
            )
            return wait.until(looked_again)
        except TimeoutException:
            shot = self.screenshot("timeout")
            raise BrowserError(
                f"{what} not reached within {WAIT_TIMEOUT}s (screenshot {shot})"
            ) from None

    def read_console(self) -> list[dict]:
        """Collect the console entries logged since the last read; return all of them."""
        self.console += self.driver.get_log("browser")
        return self.console

    def console_errors(self) -> list[str]:
        """Return every console message at SEVERE level (errors, refused loads, CSP)."""
        return [e["message"] for e in self.read_console() if e["level"] == "SEVERE"]

    def csp_violations(self) -> list[str]:
        """Return the page's CSP violations: listener events and the console's CSP entries."""
        events = self.driver.execute_script("return window.__cspViolations || []")
        found = [
            f"{e['directive']} blocked {e['blocked']} ({e['source']}:{e['line']})" for e in events
        ]
        found += [e["message"] for e in self.read_console() if _is_csp_message(e)]
        return found

    def screenshot(self, name: str) -> Path:
        """Save the current page as ``<artefacts>/<name>.png``; return its path."""
        path = self.artefacts / f"{name}.png"
        if not self.driver.save_screenshot(str(path)):
            raise BrowserError(f"Chromium did not save a screenshot to {path}")
        return path


@contextlib.contextmanager
def browser(
    artefacts: Path,
    names: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    https: dict[str, int] | None = None,
    roots: tuple[str, ...] = (),
) -> Iterator[Browser]:
    """Run one browser session (see Browser: ``names`` resolved to 127.0.0.1, ``https`` names
    to their ports, ``roots`` trusted, ``flags`` added), stopped at the end whatever happens."""
    session = Browser(artefacts, names, flags, https, roots)
    try:
        yield session.start()
    finally:
        session.quit()


class _Pages(BaseHTTPRequestHandler):
    """Serve the server's ``pages`` with its ``policy`` as Content-Security-Policy, else 404."""

    server: _PagesServer

    def do_GET(self) -> None:
        """Answer one page, or 404."""
        body = self.server.pages.get(self.path)
        self.send_response(404 if body is None else 200)
        kind = "text/javascript" if self.path.endswith(".js") else "text/html"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Security-Policy", self.server.policy)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args) -> None:
        """Keep the test's output quiet."""


class _PagesServer(ThreadingHTTPServer):
    """A loopback server of fixed pages (path -> body), each sent with one policy."""

    def __init__(self, pages: dict[str, bytes], policy: str) -> None:
        """Listen on a free loopback port."""
        super().__init__(("127.0.0.1", 0), _Pages)
        self.pages, self.policy = pages, policy


@contextlib.contextmanager
def serve_pages(pages: dict[str, bytes], policy: str) -> Iterator[int]:
    """Serve ``pages`` (path -> body) on a free loopback port, with the Content-Security-Policy
    ``policy``, until the block ends; yield the port (a session may reach it by a name)."""
    server = _PagesServer(pages, policy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


ARTEFACT_PROPERTY = "artefact"  # listed after the run by tests/conftest.py
WIDTHS = {"desktop": (1280, 900), "phone": (375, 812)}  # CSS pixels: a small phone's viewport
# What overflows the viewport's width, and the text fields of each form whose widths differ.
LAYOUT = """
const overflow = document.documentElement.scrollWidth - document.documentElement.clientWidth;
const uneven = [...document.querySelectorAll("form")].map((form) => [...form.querySelectorAll(
  "input:not([type=hidden]):not([type=checkbox]):not([type=radio]), textarea, select"
)].filter((field) => field.offsetParent !== null).map((field) => field.offsetWidth)
).filter((widths) => new Set(widths).size > 1);
return {overflow, uneven};
"""


def layout_problems(session: Browser, url: str, name: str, record) -> dict[str, dict]:
    """Show ``url`` at a desktop's and a phone's width, ``record`` the screenshot of each (as
    ``name-width``); return what overflows the screen or which form's text fields differ in
    width, by width (empty: the page fits both). The window is left at the desktop's size."""
    found = {}
    for width, size in WIDTHS.items():
        session.driver.set_window_size(*size)
        session.open(url)
        seen = layout_seen(session, f"{name}-{width}", record)
        if seen["overflow"] or seen["uneven"]:
            found[width] = seen
    session.driver.set_window_size(*WIDTHS["desktop"])
    return found


def layout_seen(session: Browser, shot: str, record) -> dict:
    """Return what LAYOUT finds on the page shown (overflow, uneven fields); ``record`` its
    screenshot, named ``shot``."""
    seen: dict = session.driver.execute_script(LAYOUT)
    record(ARTEFACT_PROPERTY, str(session.screenshot(shot)))
    return seen
