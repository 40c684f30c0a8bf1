"""The example pages: the items and a form to add one, enhanced by HTMX, working without it.

Without JavaScript the form posts, and a valid item is followed by a redirect to the list. With
HTMX (the request says ``HX-Request: true``) the answer is the section holding the form and the
list, swapped in place. While items of the list are pending, the page asks about all of them in
one request, less and less often, and stops after PENDING_POLL_SECONDS with a button to ask again.
"""

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, url_for
from pydantic import ValidationError
from sqlalchemy import func, select

from .api import MAX_ID, ItemIn, add_item
from .extensions import db
from .models import PENDING, Item
from .rate_limits import limit_writes

bp = Blueprint("pages", __name__)
TITLE = "{{ cookiecutter.project_name | replace('"', '\\"') }}"
DESCRIPTION = "{{ cookiecutter.description | replace('"', '\\"') }}"
LISTED = 50  # the newest items the page shows
# Seconds a page waits before it asks about its pending items again, doubled after each answer up
# to the longest: one request every 2 s at most, whatever the number of pending items.
FIRST_WAIT, LONGEST_WAIT = 2, 30


def _is_htmx() -> bool:
    """Say whether HTMX sent this request (it then wants a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def next_wait(check: int) -> int | None:
    """Return the seconds a page waits after its check number ``check`` (0: the page itself) of
    its pending items; None once its waits would add up to more than PENDING_POLL_SECONDS."""
    poll_for = current_app.extensions["settings"].pending_poll_seconds
    wait = waited = FIRST_WAIT
    for _ in range(check):
        if waited > poll_for:
            break
        wait = min(wait * 2, LONGEST_WAIT)
        waited += wait
    return wait if waited <= poll_for else None


def _poll(pending: list[int], check: int) -> dict:
    """Return what the pending rows' poll needs: the ids, this check's number, the next wait."""
    return {"pending": pending, "check": check, "wait": next_wait(check)}


def _render(form: dict, errors: dict, status: int = 200):
    """Render the whole page, or only its items section for HTMX, with the form's state."""
    items = db.session.scalars(select(Item).order_by(Item.id.desc()).limit(LISTED)).all()
    total = db.session.scalar(select(func.count()).select_from(Item))
    template = "pages/_items.html" if _is_htmx() else "pages/index.html"
    pending = [item.id for item in items if item.status == PENDING]
    page = render_template(
        template,
        title=TITLE,
        description=DESCRIPTION,
        items=items,
        total=total,
        form=form,
        errors=errors,
        poll=_poll(pending, 0),
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


@bp.get("/items/pending")
def pending_rows():
    """Answer a page's check of its pending items (``id``, repeated) number ``check``: the rows
    processed since, each swapped in place by its id, then the poll again or the note it ended."""
    ids = request.args.getlist("id", type=int)
    if not 1 <= len(ids) <= LISTED or not all(1 <= item_id <= MAX_ID for item_id in ids):
        abort(400, description=f"id: expected 1 to {LISTED} item ids.")
    check = max(0, request.args.get("check", 0, type=int))
    items = db.session.scalars(select(Item).where(Item.id.in_(ids)).order_by(Item.id.desc())).all()
    done = [item for item in items if item.status != PENDING]
    pending = [item.id for item in items if item.status == PENDING]
    return render_template("pages/_pending.html", done=done, poll=_poll(pending, check))


def init_app(app: Flask) -> None:
    """Serve the pages at /, templates reloaded on change in development."""
    reload = app.extensions["settings"].app_env == "development"
    app.config["TEMPLATES_AUTO_RELOAD"] = reload
    app.jinja_env.auto_reload = reload  # the environment may exist already (CSRF's globals)
    app.register_blueprint(bp)
