"""The browser harness itself: it sees console errors and CSP violations, and keeps screenshots.

Small pages served on loopback by this test prove the harness can fail a frontend test: a page
that breaks its Content-Security-Policy or logs an error is reported, a clean page is not.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .browser import ARTEFACT_PROPERTY, Browser, BrowserError, browser, serve_pages

CSP = "default-src 'self'; script-src 'self'; style-src 'self'"
PAGES = {
    "/clean": b"<!doctype html><title>t</title><p id=p>x</p><script src=/title.js></script>",
    "/inline": b"<!doctype html><title>t</title><script>document.title = 'ran'</script>",
    "/error": b"<!doctype html><title>t</title><script src=/error.js></script>",
    "/title.js": b"document.title = 'clean';",
    "/error.js": b"console.error('boom from the page');",
    "/favicon.ico": b"",
}


@pytest.fixture(scope="module")
def pages() -> Iterator[str]:
    """Serve the test pages on a free loopback port; return its base URL."""
    with serve_pages(PAGES, CSP) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def session(tmp_path) -> Iterator[Browser]:
    """Run one browser whose screenshots go under this test's temporary folder."""
    with browser(tmp_path / "artefacts") as running:
        yield running


def test_a_clean_page_has_no_console_errors_and_no_csp_violations(session, pages, record_property):
    """It loads a page that follows its CSP, runs its script, reports nothing, keeps a shot."""
    session.open(f"{pages}/clean")
    session.wait(lambda d: d.title == "clean", "the page's own script ran")
    assert session.console_errors() == []
    assert session.csp_violations() == []
    shot = session.screenshot("clean")
    record_property(ARTEFACT_PROPERTY, str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_an_inline_script_is_reported_as_a_csp_violation(session, pages):
    """It reports the blocked inline script both from the listener and from the console."""
    session.open(f"{pages}/inline")
    violations = session.csp_violations()
    assert session.driver.title == "t"  # the inline script was blocked
    assert any(v.startswith("script-src") for v in violations), violations
    assert any("inline script violates" in v for v in violations), violations


def test_a_console_error_is_reported(session, pages):
    """It reports an error the page logs to the console."""
    session.open(f"{pages}/error")
    assert any("boom from the page" in e for e in session.console_errors())


def test_it_refuses_to_visit_a_non_loopback_address(session):
    """It refuses any URL outside 127.0.0.1 and ::1 before the browser is asked."""
    with pytest.raises(BrowserError, match="loopback"):
        session.open("http://example.com/")
