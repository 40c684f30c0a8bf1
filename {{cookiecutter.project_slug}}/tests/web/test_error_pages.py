"""A browser's page request that fails gets a page with the same words and status; the API, HTMX
and clients that prefer JSON keep the JSON error body."""

import pytest
from werkzeug.exceptions import TooManyRequests

from {{ cookiecutter.package_name }}.platform.routes import Access, access
from {{ cookiecutter.package_name }}.web.error_pages import wait_in_words
from tests.items.test_pages import HTMX

# What Chromium asks for when it opens a page (a navigation, a form's post).
BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "*/*;q=0.8"
}


def assert_is_an_error_page(answer, status: int, *words: str) -> str:
    """Assert an HTML page with ``status``, the strict policy, no caching nor Referer, a way back
    and ``words``; return its text."""
    assert answer.status_code == status
    assert answer.mimetype == "text/html"
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    page = answer.text
    assert f"Error {status}." in page and 'href="/">Back to the home page</a>' in page
    for text in words:
        assert text in page
    return page


def test_a_bad_link_gets_a_page(client):
    """A browser following a link to no page gets 404 as a page, saying so."""
    assert_is_an_error_page(client.get("/no-such-page", headers=BROWSER), 404, "Not Found")


@pytest.mark.parametrize(
    "headers", [{}, {"Accept": "application/json"}, {**BROWSER, **HTMX}, {"Accept": "*/*"}]
)
def test_json_stays_for_clients_that_do_not_ask_for_a_page(client, headers):
    """No Accept, JSON preferred, HTMX or a script's fetch (*/*): the JSON error body."""
    answer = client.get("/no-such-page", headers=headers)
    assert answer.status_code == 404
    assert answer.json["error"]["status"] == 404


def test_the_api_answers_json_even_to_a_browser(client):
    """A route of the API answers JSON whatever the request asks for, also to a method it does
    not allow; a page's route answers that with a page."""
    answer = client.get("/api/items/999999", headers=BROWSER)
    assert answer.status_code == 404
    assert answer.json["error"]["detail"] == "No item with id 999999."
    refused = client.patch("/api/items/1", headers=BROWSER)
    assert refused.status_code == 405 and refused.json["error"]["status"] == 405
    assert_is_an_error_page(client.put("/", headers=BROWSER), 405, "Method Not Allowed")


def test_a_form_sent_without_its_token_gets_a_page_that_says_what_to_do(writer):
    """A form posted with no CSRF token (its session ended, say) gets 400 as a page with the
    words of the JSON answer, and stores nothing."""
    writer.get("/")
    answer = writer.post("/items", data={"name": "late"}, headers=BROWSER)
    assert_is_an_error_page(answer, 400, "The CSRF token is missing. Reload the page and retry.")
    assert writer.get("/api/items").json["total"] == 0


def test_a_limit_says_the_wait_in_words(make_app):
    """A page refused by a limit keeps 429 and Retry-After, and says how long to wait."""
    app = make_app()

    @access(Access.PAGE)
    def busy() -> str:
        raise TooManyRequests("3 per 1 minute", retry_after=90)

    app.add_url_rule("/busy", view_func=busy)
    answer = app.test_client().get("/busy", headers=BROWSER)
    assert_is_an_error_page(answer, 429, "3 per 1 minute", "Try again in 2 minutes.")
    assert answer.headers["Retry-After"] == "90"


def test_what_the_page_shows_is_escaped(make_app):
    """Words of an error that came from input are shown as text, never as markup."""
    app = make_app()

    @access(Access.PAGE)
    def echo() -> str:
        raise TooManyRequests("<script>alert(1)</script>")

    app.add_url_rule("/echo", view_func=echo)
    page = app.test_client().get("/echo", headers=BROWSER).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("seconds", "words"),
    [("1", "1 second"), ("59", "59 seconds"), ("60", "1 minute"), ("61", "2 minutes"),
     ("3600", "60 minutes"), ("soon", None), ("\u00b2", None), (None, None)],
)  # fmt: skip
def test_wait_in_words(seconds, words):
    """Seconds become words, minutes rounded up; anything else is not guessed at."""
    assert wait_in_words(seconds) == words
