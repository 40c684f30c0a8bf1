"""The example pages: the items and a form to add one, enhanced by HTMX, working without it.

Without JavaScript the form posts, and a valid item is followed by a redirect to the list. With
HTMX (the request says ``HX-Request: true``) the answer is the section holding the form and the
list, swapped in place; a pending item's row asks for itself again until it is processed.
"""

from flask import Blueprint, Flask, abort, redirect, render_template, request, url_for
from pydantic import ValidationError
from sqlalchemy import func, select

from .api import MAX_ID, ItemIn, add_item
from .extensions import db
from .models import Item
from .rate_limits import limit_writes

bp = Blueprint("pages", __name__)
TITLE = "{{ cookiecutter.project_name | replace('"', '\\"') }}"
LISTED = 50  # the newest items the page shows


def _is_htmx() -> bool:
    """Say whether HTMX sent this request (it then wants a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def _render(form: dict, errors: dict, status: int = 200):
    """Render the whole page, or only its items section for HTMX, with the form's state."""
    items = db.session.scalars(select(Item).order_by(Item.id.desc()).limit(LISTED)).all()
    total = db.session.scalar(select(func.count()).select_from(Item))
    template = "pages/_items.html" if _is_htmx() else "pages/index.html"
    page = render_template(
        template, title=TITLE, items=items, total=total, form=form, errors=errors
    )
    return page, status, {"Vary": "HX-Request"}


@bp.get("/")
def index():
    """Show the items, newest first, and the form to add one."""
    return _render({}, {})


@bp.post("/items")
@limit_writes
def create_item():
    """Add an item from the form; on invalid input answer 422 with the form kept as sent."""
    form = {field: request.form.get(field, "") for field in ("name", "description")}
    try:
        add_item(ItemIn.model_validate(form))
    except ValidationError as exc:
        errors = {str(error["loc"][0]): error["msg"] for error in exc.errors(include_url=False)}
        return _render(form, errors, 422)
    if _is_htmx():
        return _render({}, {}, 201)
    return redirect(url_for("pages.index"), 303)


@bp.get("/items/<id:item_id>/row")
def item_row(item_id: int):
    """Return one item's row of the list (HTMX asks again while the item is pending)."""
    item = db.session.get(Item, item_id) if 1 <= item_id <= MAX_ID else None
    if item is None:
        abort(404, description=f"No item with id {item_id}.")
    return render_template("pages/_item.html", item=item), 200, {"Vary": "HX-Request"}


def init_app(app: Flask) -> None:
    """Serve the pages at /, templates reloaded on change in development."""
    app.config["TEMPLATES_AUTO_RELOAD"] = app.extensions["settings"].app_env == "development"
    app.register_blueprint(bp)
