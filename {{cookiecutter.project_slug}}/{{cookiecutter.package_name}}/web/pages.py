"""Pages of no feature (an /about page, say), and what every page's template may use: the
site's title and description, and the gate before a form that changes something.

A page of no feature goes here, its template in web/templates/ extending base.html:

    @bp.get("/about")
    @access(Access.PAGE)
    def about() -> str:
        return render_template("about.html")
"""

from flask import Blueprint, Flask

from .security import send_policy

bp = Blueprint("web", __name__)
bp.after_request(send_policy)  # every answer of the pages carries the Content-Security-Policy
TITLE = "{{ cookiecutter.project_name | replace('"', '\\"') }}"
DESCRIPTION = "{{ cookiecutter.description | replace('"', '\\"') }}"


def init_app(app: Flask) -> None:
    """Serve these pages; give every template the title, the description and an open gate (a
    feature that signs users in replaces it), reloaded on change in development."""
    app.jinja_env.globals.update(title=TITLE, description=DESCRIPTION)
    app.jinja_env.globals.setdefault("gate", "gate.html")
    app.jinja_env.auto_reload = app.extensions["settings"].app_env == "development"
    app.register_blueprint(bp)
