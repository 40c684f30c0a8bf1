"""Tier 2: the pages and their digested assets, served natively (nginx in front when selected).

The bake's assets are built by its Dockerfile's own steps (tests/tier2/frontend.py); nginx
serves them from the app's tree as its image does from its copy. A real headless Chromium then
uses the page through the entry point: no console error, no CSP violation, and an item created
through the form with HTMX appears in the list without a full page load. A page of pending items
(their worker down) checks them within the rate limits the service really has. A form another
site's page posts is told that SameSite withheld the session cookie; with AUTH_PRIVATE_READS a
browser sees no item until it signs in.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from selenium.webdriver.common.by import By

from . import frontend
from .auth import sign_in_browser
from .browser import ARTEFACT_PROPERTY, WIDTHS, Browser, browser, layout_seen, serve_pages
from .servers import Service
from .test_served import each

# Its limited instances are its own, its pending rows processed after it, its sign-ins few
# (a later module's fit in the same per-address count), its log lines read since its marks: the
# combination's shared deployment serves it (conftest.py).
SHARE_DEPLOYMENT = True
TIMEOUT = 10
IMMUTABLE = "public, max-age=31536000, immutable"
ASSET_URL = re.compile(r'(?:href|src)="(/static/[^"]+)"')
DIGESTED = re.compile(r"-[0-9a-f]{32}\.(js|css)$")
# A name the browser resolves to 127.0.0.1: a site it does not trust as it trusts 127.0.0.1.
SITE = "pages.example.test"
PENDING_ITEMS = 50  # a full page of items (pages.py LISTED), all pending: their worker is down
POLL_FOR = 14  # PENDING_POLL_SECONDS here: the page checks after 2, 6 and 14 s, then stops
CHECKS = 3
STOPPED = "this page stopped checking"
PLAIN_HTTP = "This page came over plain HTTP"  # web/security.py's first words
CROSS_SITE = "This form was sent from another site"  # and for a post from another site
# Another site's name, whose page posts a form to the service.
OTHER_SITE = "elsewhere.example.test"
# Fetches a path of the page's origin as HTMX would (HX-Request); answers its status and body.
FETCH_AS_HTMX = """
const [path, done] = arguments;
fetch(path, {headers: {"HX-Request": "true"}}).then(
  async (answer) => done({status: answer.status, body: await answer.text()}),
  (error) => done({status: 0, body: String(error)}),
);
"""
# The item form's button (with use_auth a sign-out button comes first on the page).
ITEM_FORM_SUBMIT = "form[hx-post] button[type=submit]"


def page_assets(entry: str) -> list[str]:
    """Return the asset URLs the page at ``/`` references."""
    page = requests.get(f"{entry}/", timeout=TIMEOUT)
    assert page.status_code == 200, page.text[:500]
    assert page.headers["Content-Type"].startswith("text/html")
    return ASSET_URL.findall(page.text)


def access_lines(deployment, service: Service, since: int, prefix: str) -> list[dict]:
    """Return the access lines of ``service`` since ``since`` for paths starting with ``prefix``."""
    lines = [json.loads(line) for line in service.lines(since) if line.startswith("{")]
    return [
        line
        for line in lines
        if line.get("logger") == deployment.access_logger
        and str(line.get("path", "")).startswith(prefix)
    ]


def static_requests(deployment, since: int) -> list[str]:
    """Return the paths under /static/ the app server logged since ``since``."""
    lines = access_lines(deployment, deployment.service, since, "/static/")
    return [line["path"] for line in lines]


@pytest.fixture(scope="module")
def pending_items(deployment) -> Iterator[list[int]]:
    """Add a page of pending items straight to the store (no task sent); processed at the end."""
    values = ", ".join(["(?, '', 'pending')"] * PENDING_ITEMS)
    names = [f"waiting-{uuid.uuid4().hex[:8]}" for _ in range(PENDING_ITEMS)]
    sql = f"INSERT INTO items (name, description, status) VALUES {values} RETURNING id"
    ids = [row[0] for row in deployment.query(sql, *names)]
    yield ids
    marks = ", ".join("?" * len(ids))
    done = f"UPDATE items SET status = 'processed' WHERE id IN ({marks}) RETURNING id"
    assert len(deployment.query(done, *ids)) == len(ids)


def watch_pending_page(session: Browser, service: Service, seconds: float) -> None:
    """Open the page of ``service`` and leave it running ``seconds``, checking on its own."""
    session.open(f"{service.url}/")
    assert session.driver.find_element(By.ID, "items").text.count("pending") == PENDING_ITEMS
    time.sleep(seconds)


def stopped_quietly(session: Browser) -> None:
    """Assert the page ended its checks with its note and button, and showed no request error."""
    note = session.driver.find_element(By.ID, "pending-poll")
    assert STOPPED in note.text and "Check again" in note.text, note.text
    assert not session.driver.find_element(By.ID, "request-error").is_displayed()


@each("use_frontend")
def test_the_page_references_only_digested_assets_that_exist(deployment):
    """It links every asset by its digested name, as the digest manifest lists it."""
    assets = page_assets(deployment.entry)
    static = frontend.static_dir(deployment.bake)
    digested = set(frontend.digested_files(static).values())
    assert assets and all(DIGESTED.search(url) for url in assets), assets
    assert {url.removeprefix("/static/") for url in assets} <= digested


@each("use_frontend", "use_nginx")
def test_nginx_serves_each_asset_immutable_and_gzipped_without_the_app(deployment):
    """It serves every asset itself with the year-long cache and its .gz variant, app untouched."""
    since = deployment.service.mark()
    static = frontend.static_dir(deployment.bake)
    for url in page_assets(deployment.entry):
        plain = requests.get(
            deployment.entry + url, headers={"Accept-Encoding": "identity"}, timeout=TIMEOUT
        )
        assert plain.status_code == 200, url
        assert plain.headers["Cache-Control"] == IMMUTABLE, plain.headers
        assert plain.content == (static / url.removeprefix("/static/")).read_bytes()
        zipped = requests.get(
            deployment.entry + url,
            headers={"Accept-Encoding": "gzip"},
            stream=True,
            timeout=TIMEOUT,
        )
        assert zipped.headers.get("Content-Encoding") == "gzip", zipped.headers
        assert zipped.headers["Cache-Control"] == IMMUTABLE
        assert gzip.decompress(zipped.raw.read()) == plain.content
        assert "Content-Security-Policy" in plain.headers  # the default one, nginx's only
    assert static_requests(deployment, since) == []


@each("use_frontend", "use_nginx")
def test_an_unknown_hashed_file_is_a_404_from_nginx(deployment):
    """It answers 404 itself for a digested name that does not exist, not cached, app untouched."""
    since = deployment.service.mark()
    url = f"{deployment.entry}/static/app-{uuid.uuid4().hex}.js"
    missing = requests.get(url, timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == 404
    assert "immutable" not in missing.headers.get("Cache-Control", "")
    assert static_requests(deployment, since) == []


@each("use_frontend")
def test_no_compressed_variant_is_sent_as_the_asset_itself(deployment):
    """It never answers an asset's .br or .gz name typed as the asset (CSS, JavaScript): none is
    written for brotli, and the app refuses both names; nginx sends the .gz as the bytes it is."""
    for url in page_assets(deployment.entry):
        brotli = requests.get(f"{deployment.entry}{url}.br", timeout=TIMEOUT)
        assert brotli.status_code == 404, brotli.headers
        assert brotli.json()["error"]["status"] == 404
        zipped = requests.get(f"{deployment.entry}{url}.gz", stream=True, timeout=TIMEOUT)
        if deployment.nginx is None:
            assert zipped.status_code == 404, zipped.headers
            continue
        assert zipped.status_code == 200
        assert zipped.headers["Content-Type"] == "application/octet-stream", zipped.headers
        assert "Content-Encoding" not in zipped.headers
        plain = requests.get(deployment.entry + url, timeout=TIMEOUT)
        assert gzip.decompress(zipped.raw.read()) == plain.content


@each("use_frontend", "use_nginx")
def test_the_page_carries_one_content_security_policy(deployment):
    """It passes the app's policy on the page and adds no second one (the API keeps nginx's)."""
    page = requests.get(f"{deployment.entry}/", timeout=TIMEOUT)
    policies = page.raw.headers.getlist("Content-Security-Policy")
    assert len(policies) == 1 and "script-src 'self'" in policies[0], policies
    api = requests.get(f"{deployment.entry}/api/items", timeout=TIMEOUT)
    assert api.raw.headers.getlist("Content-Security-Policy") == [
        "default-src 'none'; frame-ancestors 'none'"
    ]


@pytest.mark.timeout(300)
@each("use_frontend")
def test_a_browser_creates_an_item_with_htmx_without_a_page_load(
    deployment, tmp_path, record_property
):
    """It loads the page, adds an item through the form in place, with no error or CSP report
    (with use_auth, signed in first: the form is for signed-in users)."""
    name = f"browser-{uuid.uuid4().hex[:8]}"
    with browser(tmp_path / "artefacts") as session:
        if deployment.account is not None:
            sign_in_browser(session, deployment.entry, deployment.account)
        session.open(f"{deployment.entry}/")
        session.wait(lambda d: d.execute_script("return !!window.htmx"), "htmx loaded")
        session.driver.execute_script("window.__sameDocument = true")
        session.driver.find_element(By.ID, "name").send_keys(name)
        session.driver.find_element(By.ID, "description").send_keys("made in a browser")
        session.driver.find_element(By.CSS_SELECTOR, ITEM_FORM_SUBMIT).click()
        session.wait(lambda d: name in d.find_element(By.ID, "items").text, "the new item listed")
        shot = session.screenshot("page-after-htmx-create")
        record_property(ARTEFACT_PROPERTY, str(shot))
        assert session.driver.execute_script("return window.__sameDocument === true")
        assert session.csp_violations() == []
        assert session.console_errors() == []
    assert deployment.query("SELECT count(*) FROM items WHERE name = ?", name)[0][0] == 1


# Each page a person opens without a link from a mail, by who may see it (an account signs in
# first): its path, and a name for its screenshots.
PUBLIC_PAGES = {"/": "home", "/no-such-page": "not-found"}
AUTH_PAGES = {"/sign-in": "sign-in", "/password-reset": "password-reset"}


@pytest.mark.timeout(300)
@each("use_frontend")
def test_every_page_fits_a_phone_and_its_fields_line_up(deployment, tmp_path, record_property):
    """It shows each page at a desktop's and a phone's width (a screenshot of each): nothing
    wider than the screen, and the text fields of a form as wide as each other (with use_auth,
    the forms of the signed out, then the items page signed in, its item form shown)."""
    pages = {**PUBLIC_PAGES, **(AUTH_PAGES if deployment.account is not None else {})}
    seen = {}
    with browser(tmp_path / "artefacts") as session:
        for width, size in WIDTHS.items():
            session.driver.set_window_size(*size)
            for path, name in pages.items():
                session.open(f"{deployment.entry}{path}")
                seen[f"{name} ({width})"] = layout_seen(session, f"{name}-{width}", record_property)
        if deployment.account is not None:
            sign_in_browser(session, deployment.entry, deployment.account)
            for width, size in WIDTHS.items():
                session.driver.set_window_size(*size)
                session.open(f"{deployment.entry}/")
                assert session.driver.find_elements(By.ID, "name"), "no item form signed in"
                shot = f"signed-in-home-{width}"
                seen[f"signed-in home ({width})"] = layout_seen(session, shot, record_property)
        assert session.csp_violations() == []
    wrong = {page: found for page, found in seen.items() if found["overflow"] or found["uneven"]}
    assert wrong == {}, wrong


@pytest.mark.timeout(300)
@each("use_frontend")
def test_a_browser_following_a_bad_link_gets_a_page_with_a_way_back(
    deployment, tmp_path, record_property
):
    """It shows a 404 as a page of the site, in its style and under its policy (nothing refused),
    and its link back opens the home page."""
    with browser(tmp_path / "artefacts") as session:
        session.open(f"{deployment.entry}/no-such-page")
        heading = session.wait(lambda d: d.find_element(By.TAG_NAME, "h1").text, "a page")
        record_property(ARTEFACT_PROPERTY, str(session.screenshot("bad-link")))
        assert heading == "Not Found"
        assert "Error 404." in session.driver.page_source
        styled = session.driver.execute_script(
            "return document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 0"
        )
        assert styled, "the site's stylesheet did not load"
        assert session.csp_violations() == []
        # Chromium logs the page's own 404; anything else would be the page's fault.
        others = [line for line in session.console_errors() if "status of 404" not in line]
        assert others == []
        session.driver.find_element(By.LINK_TEXT, "Back to the home page").click()
        home = f"{deployment.entry}/"
        session.wait(lambda d: d.current_url == home and "Error 404." not in d.page_source, "/")


@pytest.mark.timeout(300)
@each("use_frontend")
def test_a_browser_on_plain_http_is_told_the_session_cookie_needs_https(
    deployment, tmp_path, record_property
):
    """It says on the page, and in the log, why a production post over plain HTTP fails: the
    session cookie holding the CSRF token is HTTPS-only, and SESSION_COOKIE_SECURE changes it.

    The page is opened by a name: over plain HTTP Chromium keeps no Secure cookie from a site,
    but it trusts 127.0.0.1 as if it were HTTPS.
    """
    since = deployment.service.mark()
    entry = deployment.entry.replace("//127.0.0.1:", f"//{SITE}:")
    with browser(tmp_path / "artefacts", names=(SITE,)) as session:
        if deployment.account is not None:  # the item form needs a sign-in: its form fails first
            session.open(f"{entry}/sign-in")
            session.driver.find_element(By.ID, "email").send_keys(deployment.account.email)
            session.driver.find_element(By.ID, "password").send_keys(deployment.account.password)
            session.driver.find_element(
                By.CSS_SELECTOR, "#sign-in-form button[type=submit]"
            ).click()
            shown = session.wait(lambda d: PLAIN_HTTP in d.page_source and d.page_source, "error")
        else:
            session.open(f"{entry}/")
            session.wait(lambda d: d.execute_script("return !!window.htmx"), "htmx loaded")
            session.driver.find_element(By.ID, "name").send_keys("over plain HTTP")
            session.driver.find_element(By.CSS_SELECTOR, ITEM_FORM_SUBMIT).click()
            shown = session.wait(
                lambda d: d.find_element(By.ID, "request-error").text, "the request's error shown"
            )
            assert shown.startswith(f"The request failed (400): {PLAIN_HTTP}"), shown
        record_property(ARTEFACT_PROPERTY, str(session.screenshot("secure-cookie-over-http")))
    assert "SESSION_COOKIE_SECURE=false" in shown
    warnings = [
        line
        for line in deployment.service.lines(since)
        if '"WARNING"' in line and "SESSION_COOKIE_SECURE" in line
    ]
    assert len(warnings) == 1, warnings


@pytest.mark.timeout(300)
@each("use_frontend")
def test_a_form_another_site_posts_over_plain_http_is_told_samesite_withheld_the_cookie(
    deployment, tmp_path, record_property
):
    """It answers a form another site's page posts to the pages (production, plain HTTP) by
    naming SameSite, which withheld the session cookie, not SESSION_COOKIE_SECURE, and logs no
    warning for it. Both sites are opened by names: over plain HTTP Chromium sends no Fetch
    Metadata there, only the Origin tells."""
    since = deployment.service.mark()
    target = deployment.entry.replace("//127.0.0.1:", f"//{SITE}:")
    form = (
        f'<!doctype html><title>elsewhere</title><form method="post" action="{target}/items">'
        '<input name="name" value="forged"><button id="send">Send</button></form>'
    )
    pages = serve_pages({"/": form.encode()}, "default-src 'none'")
    with pages as port, browser(tmp_path / "artefacts", names=(SITE, OTHER_SITE)) as session:
        session.open(f"http://{OTHER_SITE}:{port}/")
        session.driver.find_element(By.ID, "send").click()
        shown = session.wait(lambda d: "Error 400." in d.page_source and d.page_source, "a 400")
        record_property(ARTEFACT_PROPERTY, str(session.screenshot("cross-site-post")))
        # The error page's longest sentence, at a phone's width too: nothing wider than the screen.
        session.driver.set_window_size(*WIDTHS["phone"])
        seen = layout_seen(session, "cross-site-post-phone", record_property)
    assert not seen["overflow"], seen
    assert CROSS_SITE in shown and "SameSite" in shown and PLAIN_HTTP not in shown, shown
    warnings = [line for line in deployment.service.lines(since) if '"WARNING"' in line]
    assert not [line for line in warnings if "CSRF" in line], warnings


@pytest.mark.timeout(300)
@each("use_auth", "use_frontend")
def test_private_reads_keep_the_items_from_a_browser_until_it_signs_in(
    deployment, tmp_path, record_property
):
    """With AUTH_PRIVATE_READS=true, a browser not signed in that opens the page lands on the
    sign-in form, and the page's check of an item, fetched as HTMX sends it, gets 403: neither
    shows the item's name. Signed in through the form, it sees the item listed."""
    service = deployment.extra_service("private-reads", AUTH_PRIVATE_READS="true")
    name = f"private-{uuid.uuid4().hex[:8]}"
    sql = "INSERT INTO items (name, description, status) VALUES (?, '', 'processed') RETURNING id"
    ((item_id,),) = deployment.query(sql, name)
    with browser(tmp_path / "artefacts") as session:
        session.open(f"{service.url}/")
        session.wait(lambda d: d.find_elements(By.ID, "sign-in-form"), "the sign-in form")
        landed, first_page = session.driver.current_url, session.driver.page_source
        check = session.driver.execute_async_script(FETCH_AS_HTMX, f"/items/pending?id={item_id}")
        sign_in_browser(session, None, deployment.account)
        listed = session.driver.find_element(By.ID, "items").text
        record_property(ARTEFACT_PROPERTY, str(session.screenshot("private-reads-signed-in")))
        assert session.csp_violations() == []
    assert landed == f"{service.url}/sign-in" and name not in first_page, landed
    assert check["status"] == 403 and name not in check["body"], check
    assert name in listed, listed


@pytest.mark.timeout(300)
@each("use_frontend")
def test_a_page_of_pending_items_checks_them_in_one_request_and_stops(
    deployment, pending_items, tmp_path, record_property
):
    """It checks every pending row in one request after 2, 4 and 8 s, then stops with a button:
    far within the service's real limit (600 per minute per client and route), no 429."""
    service = deployment.extra_service(
        f"pending-{uuid.uuid4().hex[:8]}",
        RATELIMIT_DEFAULT="600 per minute",
        PENDING_POLL_SECONDS=str(POLL_FOR),
    )
    since = service.mark()
    with browser(tmp_path / "artefacts") as session:
        watch_pending_page(session, service, POLL_FOR + 4)
        checks = access_lines(deployment, service, since, "/items/")
        assert len(checks) == CHECKS, [(c["path"], c["status"]) for c in checks][:20]
        assert {(c["method"], c["path"], c["status"]) for c in checks} == {
            ("GET", "/items/pending", 200)
        }
        stopped_quietly(session)
        record_property(ARTEFACT_PROPERTY, str(session.screenshot("pending-checks-stopped")))
        time.sleep(3)
        assert len(access_lines(deployment, service, since, "/items/")) == CHECKS
        session.driver.find_element(By.CSS_SELECTOR, "#pending-poll button").click()
        session.wait(lambda d: STOPPED not in d.find_element(By.ID, "items-section").text, "again")
        assert session.csp_violations() == []
        assert session.console_errors() == []


@pytest.mark.timeout(300)
@each("use_frontend")
def test_a_refused_check_is_tried_again_later_without_an_error(
    deployment, pending_items, tmp_path, record_property
):
    """It answers a check refused with 429 by asking again after Retry-After, saying nothing."""
    service = deployment.extra_service(
        f"refusing-{uuid.uuid4().hex[:8]}",
        RATELIMIT_DEFAULT="1 per 5 seconds",  # the check after 6 s lands in the first's window
        PENDING_POLL_SECONDS=str(POLL_FOR),
        WEB_CONCURRENCY="1",  # one count of the limit without Redis too
    )
    since = service.mark()
    with browser(tmp_path / "artefacts") as session:
        watch_pending_page(session, service, POLL_FOR + 8)
        checks = access_lines(deployment, service, since, "/items/")
        statuses = [check["status"] for check in checks]
        assert 429 in statuses, statuses
        refused = statuses.index(429)
        assert 200 in statuses[refused:], statuses  # the next try was answered
        assert statuses.count(200) == CHECKS and len(statuses) <= 2 * CHECKS, statuses
        stopped_quietly(session)
        record_property(ARTEFACT_PROPERTY, str(session.screenshot("refused-check-retried")))
