"""The example pages: the items and a form to add one, enhanced by HTMX, working without it.

HTMX requests get the items section, swapped in place. A page asks about all its pending items in
one request, less and less often, and stops after PENDING_POLL_SECONDS with a button to ask again.
"""

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
{%- if cookiecutter.use_auth == "yes" %}
from flask_login import current_user, login_required
{%- endif %}
from pydantic import ValidationError
from sqlalchemy import func, select

from ..extensions import db{% if cookiecutter.use_auth == "yes" %}, login_manager{% endif %}
from ..platform.fields import MAX_ID
from ..platform.rate_limits import limit_writes
from ..platform.routes import Access, access
from ..web.htmx import is_htmx
from ..web.security import send_policy
from .api import ItemIn, add_item
from .models import PENDING, Item

bp = Blueprint("pages", __name__, template_folder="templates")  # items/templates/items/
bp.after_request(send_policy)  # every answer of the pages carries the Content-Security-Policy
LISTED = 50  # the newest items the page shows
# Seconds before a page's first check of its pending items, doubled after each check up to the
# longest: one request every 2 s at most, whatever the number of pending items.
FIRST_WAIT, LONGEST_WAIT = 2, 30


class Poll(TypedDict):
    """_poll.html's values: pending ids, the check's number, its wait in seconds (None: no more)."""

    pending: list[int]
    check: int
    wait: int | None


def poll(items: Sequence[Item], check: int) -> Poll:
    """Return the values of a page's next check of its pending items (the ``check``-th)."""
    poll_for = current_app.extensions["settings"].pending_poll_seconds
    wait = waited = FIRST_WAIT
    for _ in range(min(check, poll_for)):  # each wait is 2 s or more: past poll_for by then
        wait = min(wait * 2, LONGEST_WAIT)
        waited += wait
    pending = [item.id for item in items if item.status == PENDING]
    return {"pending": pending, "check": check, "wait": wait if waited <= poll_for else None}


def render(
    form: dict[str, str], errors: dict[str, str], status: int = 200, notice: str | None = None
) -> ResponseReturnValue:
    """Render the whole page, or only its items section for HTMX, with the form's state (and
    for HTMX what it just did: a whole page shows that as a flashed message)."""
    items = db.session.scalars(select(Item).order_by(Item.id.desc()).limit(LISTED)).all()
    total = db.session.scalar(select(func.count()).select_from(Item))
    template = "items/_items.html" if is_htmx() else "items/index.html"
    page = render_template(
        template,
        items=items,
        total=total,
        form=form,
        errors=errors,
        poll=poll(items, 0),
        notice=notice,
    )
    return page, status, {"Vary": "HX-Request"}
{%- if cookiecutter.use_auth == "yes" %}


@bp.before_request
def private_reads() -> ResponseReturnValue | None:
    """With AUTH_PRIVATE_READS, send anyone not signed in to the sign-in form (an HTMX request:
    403 with the reason) before any view of the pages shows or adds an item."""
    if current_app.extensions["settings"].auth_private_reads and not current_user.is_authenticated:
        return login_manager.unauthorized()  # type: ignore[no-any-return]  # untyped library
    return None
{%- endif %}


def in_words(error: Mapping[str, Any]) -> str:
    """Return the form's words for one of pydantic's errors: an empty field is asked for, not
    measured ("String should have at least 1 character")."""
    if error["type"] == "string_too_short" and error.get("ctx", {}).get("min_length") == 1:
        return "Required: type something."
    return str(error["msg"])


@bp.get("/")
@access(Access.PAGE)
def index() -> ResponseReturnValue:
    """Show the items, newest first, and the form to add one."""
    return render({}, {})


@bp.post("/items")
@access(Access.PAGE)
@limit_writes
{%- if cookiecutter.use_auth == "yes" %}
@login_required  # type: ignore[untyped-decorator]  # for signed-in users (auth/pages.py)
{%- endif %}
def create_item() -> ResponseReturnValue:
    """Add an item from the form; on invalid input answer 422 with the form kept as sent."""
    form = {field: request.form.get(field, "") for field in ("name", "description")}
    try:
        given = ItemIn.model_validate(form)
    except ValidationError as exc:
        errors = {str(error["loc"][0]): in_words(error) for error in exc.errors(include_url=False)}
        return render(form, errors, 422)
    add_item(given{% if cookiecutter.use_auth == "yes" %}, owner_id=current_user.id{% endif %})
    added = f"Added “{given.name}”."
    if is_htmx():
        return render({}, {}, 201, notice=added)
    flash(added)
    return redirect(url_for("pages.index"), 303)


@bp.get("/items/pending")
@access(Access.PAGE)
def pending_rows() -> str:
    """Answer check number ``check`` of a page's pending items (``id``, repeated): the rows
    processed since, each swapped in by its id, then the next check or the note they ended."""
    ids = request.args.getlist("id", type=int)
    if not 1 <= len(ids) <= LISTED or not all(1 <= item_id <= MAX_ID for item_id in ids):
        abort(400, description=f"id: expected 1 to {LISTED} item ids.")
    check = max(0, request.args.get("check", 0, type=int))
    items = db.session.scalars(select(Item).where(Item.id.in_(ids)).order_by(Item.id.desc())).all()
    done = [item for item in items if item.status != PENDING]
    return render_template("items/_pending.html", done=done, poll=poll(items, check))


def init_app(app: Flask) -> None:
    """Serve the pages at / (their templates in items/templates/items/)."""
    app.register_blueprint(bp)
