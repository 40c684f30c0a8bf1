"""The pages list items and add one from a form, with and without HTMX."""

import re

import pytest
from markupsafe import escape

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.items.pages import LISTED, poll
from {{ cookiecutter.package_name }}.web.pages import DESCRIPTION

HTMX = {"HX-Request": "true"}
POLL = re.compile(r'<div id="pending-poll" hx-get="([^"]+)" hx-trigger="load delay:(\d+)s, retry"')


def add_items(app, *statuses: str) -> list[int]:
    """Add one item of each status; return their ids, in order."""
    with app.app_context():
        items = [Item(name=f"item {n}", status=status) for n, status in enumerate(statuses)]
        db.session.add_all(items)
        db.session.commit()
        return [item.id for item in items]


def polled(text: str) -> tuple[str, ...]:
    """Return the URL and the wait of the check a page or fragment schedules."""
    match = POLL.search(text)
    assert match, text
    return match.groups()


def set_processed(app, item_id: int) -> None:
    """Mark one item processed, as its background task does."""
    with app.app_context():
        db.session.get_one(Item, item_id).status = "processed"
        db.session.commit()


def csrf_token(client) -> str:
    """Open the page and return the CSRF token of its form."""
    page = client.get("/").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def test_page_lists_items_with_a_form(writer):
    """It renders the whole page: the form with a CSRF token, and the items, newest first."""
    writer.post("/api/items", json={"name": "older"})
    writer.post("/api/items", json={"name": "newer"})
    response = writer.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.text
    assert page.startswith("<!doctype html>")
    assert '<form method="post" action="/items"' in page
    assert 'name="csrf_token"' in page
    assert '<p id="request-error" class="errors" role="alert" hidden></p>' in page
    assert page.index("newer") < page.index("older")
    assert "(2)" in page
    assert "HX-Request" in response.vary


def test_page_has_what_search_engines_and_audits_read(client):
    """It declares the language, a viewport, a title and the project's description."""
    page = client.get("/").text
    assert '<html lang="en">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert DESCRIPTION and f'<meta name="description" content="{escape(DESCRIPTION)}">' in page
    assert re.search(r"<title>[^<]+</title>", page)


def test_pages_stay_out_of_the_api_document(client):
    """It leaves the HTML pages out of the OpenAPI document of the JSON API."""
    paths = client.get("/openapi.json").json["paths"]
    assert {"/", "/items", "/items/pending"}.isdisjoint(paths)
    assert "/api/items" in paths


def test_page_without_items_says_so(client):
    """It says there are no items yet instead of an empty list."""
    assert "No items yet." in client.get("/").text


def test_form_post_redirects_to_the_list(writer):
    """It adds a valid item from a plain form post and redirects (303) to the list showing it
    and saying it was added, once."""
    token = csrf_token(writer)
    response = writer.post("/items", data={"name": " plain ", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = writer.get("/").text
    assert "<strong>plain</strong>" in page
    assert 'class="notice" role="status">Added “plain”.' in page
    assert "Added “plain”." not in writer.get("/").text  # said once


def test_invalid_form_post_keeps_the_input_and_names_the_problem(writer):
    """It answers 422 with the whole page, the form filled as sent and the error shown."""
    token = csrf_token(writer)
    description = "kept <as> sent"
    response = writer.post(
        "/items", data={"name": "   ", "description": description, "csrf_token": token}
    )
    assert response.status_code == 422
    page = response.text
    assert page.startswith("<!doctype html>")
    assert 'id="name-error">Required: type something.<' in page  # not pydantic's words
    assert "kept &lt;as&gt; sent" in page
    assert writer.get("/api/items").json["total"] == 0


def test_too_long_name_is_refused(writer):
    """It refuses a name longer than the API allows, saying so."""
    token = csrf_token(writer)
    response = writer.post("/items", data={"name": "x" * 101, "csrf_token": token})
    assert response.status_code == 422
    assert "at most 100 characters" in response.text


def test_htmx_post_answers_the_section_in_place(writer):
    """It answers an HTMX post with the items section alone (201), the new item in it, saying
    it was added."""
    token = csrf_token(writer)
    response = writer.post("/items", data={"name": "swapped", "csrf_token": token}, headers=HTMX)
    assert response.status_code == 201
    fragment = response.text
    assert fragment.lstrip().startswith('<section id="items-section">')
    assert "<html" not in fragment
    assert "<strong>swapped</strong>" in fragment
    assert 'class="notice" role="status">Added “swapped”.' in fragment
    assert 'value=""' in fragment  # the form is empty again
    assert "Added “swapped”." not in writer.get("/").text  # said in the section only


def test_invalid_htmx_post_answers_the_section_with_the_error(writer):
    """It answers an invalid HTMX post with 422 and the section, the input kept."""
    token = csrf_token(writer)
    response = writer.post(
        "/items", data={"name": "", "description": "mine", "csrf_token": token}, headers=HTMX
    )
    assert response.status_code == 422
    assert "<html" not in response.text
    assert 'id="name-error"' in response.text
    assert ">mine</textarea>" in response.text


def test_page_checks_all_its_pending_items_in_one_request(app, client):
    """It gives the page one check of every pending item it lists, 2 s later; rows poll nothing."""
    waiting, done, later = add_items(app, "pending", "processed", "pending")
    page = client.get("/").text
    assert page.count("hx-get=") == 1
    url, wait = polled(page)
    assert url == f"/items/pending?id={later}&amp;id={waiting}&amp;check=1"
    assert wait == "2"
    assert f'<li id="item-{done}">' in page


def test_page_without_pending_items_checks_nothing(app, client):
    """It renders no check when every item listed is processed."""
    add_items(app, "processed")
    assert "pending-poll" not in client.get("/").text


def test_check_answers_the_rows_processed_since_and_the_next_check(app, client):
    """It answers each processed row, to be swapped in by its id, and checks the rest later."""
    first, second = add_items(app, "pending", "pending")
    set_processed(app, first)
    answer = client.get(f"/items/pending?id={second}&id={first}&check=1", headers=HTMX)
    assert answer.status_code == 200
    assert f'<li id="item-{first}" hx-swap-oob="true">' in answer.text
    assert ">processed<" in answer.text
    assert f'id="item-{second}"' not in answer.text
    url, wait = polled(answer.text)
    assert (url, wait) == (f"/items/pending?id={second}&amp;check=2", "4")


def test_check_of_items_all_processed_ends_the_checks(app, client):
    """It answers the processed rows and no further check once nothing is pending."""
    (item_id,) = add_items(app, "pending")
    set_processed(app, item_id)
    answer = client.get(f"/items/pending?id={item_id}&check=1").text
    assert f'<li id="item-{item_id}" hx-swap-oob="true">' in answer
    assert "pending-poll" not in answer


def test_checks_wait_longer_each_time_and_stop_after_the_setting(make_app):
    """It doubles the wait from 2 s up to 30 s, and stops once the waits pass the setting."""
    with make_app().app_context():  # PENDING_POLL_SECONDS=300 by default
        waits = [poll([], check)["wait"] for check in range(14)]
    assert waits == [2, 4, 8, 16, *[30] * 9, None]
    assert sum(wait or 0 for wait in waits[:-1]) == 300
    with make_app(pending_poll_seconds=14).app_context():
        assert [poll([], check)["wait"] for check in range(4)] == [2, 4, 8, None]
        assert poll([], 10**9)["wait"] is None


def test_last_check_offers_a_button_to_check_again(make_app):
    """It ends the checks with a note and a button that starts them again, no timer left."""
    app = make_app(pending_poll_seconds=14)
    (item_id,) = add_items(app, "pending")
    answer = app.test_client().get(f"/items/pending?id={item_id}&check=3").text
    assert "hx-trigger" not in answer
    assert "1 pending: this page stopped checking." in answer
    assert f'<button type="button" hx-get="/items/pending?id={item_id}"' in answer
    again = app.test_client().get(f"/items/pending?id={item_id}").text
    assert polled(again) == (f"/items/pending?id={item_id}&amp;check=1", "2")


def test_page_never_checks_on_its_own_with_a_setting_of_zero(make_app):
    """It shows the button at once when PENDING_POLL_SECONDS is 0."""
    app = make_app(pending_poll_seconds=0)
    add_items(app, "pending")
    page = app.test_client().get("/").text
    assert "hx-trigger" not in page
    assert "this page stopped checking" in page


@pytest.mark.parametrize(
    "query",
    ["", "id=0", f"id={2**31}", "id=abc", "&".join(["id=1"] * (LISTED + 1))],
    ids=["none", "zero", "too-large", "not-a-number", "too-many"],
)
def test_check_refuses_ids_no_item_can_have(client, query):
    """It answers 400 without ids, with an id no column holds, or more than a page lists."""
    answer = client.get(f"/items/pending?{query}")
    assert answer.status_code == 400
    assert answer.json["error"]["status"] == 400


def test_check_of_unknown_items_ends_the_checks(client):
    """It stops checking items that no longer exist, without an error."""
    answer = client.get("/items/pending?id=12345&check=1")
    assert answer.status_code == 200
    assert "pending-poll" not in answer.text


def test_templates_reload_in_development_only(make_app):
    """It reloads changed templates with APP_ENV=development, and caches them otherwise."""
    assert make_app(app_env="development").jinja_env.auto_reload
    assert not make_app(app_env="test").jinja_env.auto_reload
