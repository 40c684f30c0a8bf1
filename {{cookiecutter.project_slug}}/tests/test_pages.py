"""The pages list items and add one from a form, with and without HTMX."""

import re

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.models import Item

HTMX = {"HX-Request": "true"}


def csrf_token(client) -> str:
    """Open the page and return the CSRF token of its form."""
    page = client.get("/").text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_page_lists_items_with_a_form(client):
    """It renders the whole page: the form with a CSRF token, and the items, newest first."""
    client.post("/api/items", json={"name": "older"})
    client.post("/api/items", json={"name": "newer"})
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.text
    assert page.startswith("<!doctype html>")
    assert '<form method="post" action="/items"' in page
    assert 'name="csrf_token"' in page
    assert page.index("newer") < page.index("older")
    assert "(2)" in page
    assert "HX-Request" in response.vary


def test_pages_stay_out_of_the_api_document(client):
    """It leaves the HTML pages out of the OpenAPI document of the JSON API."""
    paths = client.get("/openapi.json").json["paths"]
    assert {"/", "/items", "/items/{item_id}/row"}.isdisjoint(paths)
    assert "/api/items" in paths


def test_page_without_items_says_so(client):
    """It says there are no items yet instead of an empty list."""
    assert "No items yet." in client.get("/").text


def test_form_post_redirects_to_the_list(client):
    """It adds a valid item from a plain form post and redirects (303) to the list showing it."""
    token = csrf_token(client)
    response = client.post("/items", data={"name": " plain ", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = client.get("/").text
    assert "<strong>plain</strong>" in page


def test_invalid_form_post_keeps_the_input_and_names_the_problem(client):
    """It answers 422 with the whole page, the form filled as sent and the error shown."""
    token = csrf_token(client)
    description = "kept <as> sent"
    response = client.post(
        "/items", data={"name": "   ", "description": description, "csrf_token": token}
    )
    assert response.status_code == 422
    page = response.text
    assert page.startswith("<!doctype html>")
    assert 'id="name-error"' in page
    assert "kept &lt;as&gt; sent" in page
    assert client.get("/api/items").json["total"] == 0


def test_too_long_name_is_refused(client):
    """It refuses a name longer than the API allows, saying so."""
    token = csrf_token(client)
    response = client.post("/items", data={"name": "x" * 101, "csrf_token": token})
    assert response.status_code == 422
    assert "at most 100 characters" in response.text


def test_htmx_post_answers_the_section_in_place(client):
    """It answers an HTMX post with the items section alone (201), the new item in it."""
    token = csrf_token(client)
    response = client.post("/items", data={"name": "swapped", "csrf_token": token}, headers=HTMX)
    assert response.status_code == 201
    fragment = response.text
    assert fragment.lstrip().startswith('<section id="items-section">')
    assert "<html" not in fragment
    assert "<strong>swapped</strong>" in fragment
    assert 'value=""' in fragment  # the form is empty again


def test_invalid_htmx_post_answers_the_section_with_the_error(client):
    """It answers an invalid HTMX post with 422 and the section, the input kept."""
    token = csrf_token(client)
    response = client.post(
        "/items", data={"name": "", "description": "mine", "csrf_token": token}, headers=HTMX
    )
    assert response.status_code == 422
    assert "<html" not in response.text
    assert 'id="name-error"' in response.text
    assert ">mine</textarea>" in response.text


def test_pending_row_polls_and_processed_row_does_not(app, client):
    """It makes a pending item's row ask for itself again, and a processed one's stop."""
    with app.app_context():
        pending = Item(name="waiting", status="pending")
        done = Item(name="done", status="processed")
        db.session.add_all([pending, done])
        db.session.commit()
        ids = pending.id, done.id
    row = client.get(f"/items/{ids[0]}/row")
    assert row.status_code == 200
    assert f'hx-get="/items/{ids[0]}/row"' in row.text
    assert 'hx-trigger="every 2s"' in row.text
    assert ">pending<" in row.text
    row = client.get(f"/items/{ids[1]}/row")
    assert "hx-get" not in row.text
    assert ">processed<" in row.text


def test_missing_row_is_404(client):
    """It answers 404 for an item that does not exist, and for ids no column holds."""
    assert client.get("/items/12345/row").status_code == 404
    assert client.get(f"/items/{2**31}/row").status_code == 404
