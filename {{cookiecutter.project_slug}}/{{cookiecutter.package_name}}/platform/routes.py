"""Who may call each route, declared where the route is defined, under its route decorator:

    @bp.post("/orders")
    @access(Access.SIGNED_IN_TO_WRITE)
    def create_order(): ...

Every feature may import this; the lower layers and the features read a route's declaration,
never its blueprint's or endpoint's name. A route that declares nothing gets the safe default,
SIGNED_IN_TO_WRITE, and the generated tests fail on it (tests/platform/test_routes.py). A feature
that checks a credential registers its guard here; init_app wraps each route's view with the
guards once every feature registered its routes, so the order of the features does not matter.
"""

from collections.abc import Callable
from enum import Enum

from flask import Flask
from flask.typing import RouteCallable

ATTRIBUTE = "route_access"  # set on a view by access()


class Access(Enum):
    """Who may call a route."""

    ANYONE = "anyone, with no credential"
    SIGNED_IN_TO_WRITE = "writes need a signed-in caller; reads too where reads are private"
    SIGNED_IN = "every request needs a signed-in caller"
{%- if cookiecutter.use_auth == "yes" %}
    ADMIN = "every request needs a signed-in admin"
{%- endif %}
    PAGE = "a page: it checks a signed-in session itself where it needs one, never a token"


DEFAULT = Access.SIGNED_IN_TO_WRITE
Guard = Callable[[RouteCallable, Access], RouteCallable]  # (view, its access) -> guarded view


def access(rule: Access) -> Callable[[RouteCallable], RouteCallable]:
    """Declare who may call the view below (put it right under the route decorator)."""

    def declare(view: RouteCallable) -> RouteCallable:
        setattr(view, ATTRIBUTE, rule)
        return view

    return declare


def declare(app: Flask, endpoints: set[str], rule: Access) -> None:
    """Declare who may call routes registered by a library (their views are not ours to mark)."""
    app.extensions.setdefault("route_access", {}).update(dict.fromkeys(endpoints, rule))


def declared(app: Flask, endpoint: str) -> Access | None:
    """Return what a route declared (by access() or declare()); None when it declared nothing."""
    found = app.extensions.get("route_access", {}).get(endpoint)
    view = app.view_functions.get(endpoint)
    return found or getattr(view, ATTRIBUTE, None)


def access_of(app: Flask, endpoint: str) -> Access:
    """Return who may call a route: what it declared, else the safe default."""
    return declared(app, endpoint) or DEFAULT


def guard(app: Flask, wrap: Guard) -> None:
    """Have init_app wrap every route's view with ``wrap`` (given the view and its access)."""
    app.extensions.setdefault("route_guards", []).append(wrap)


def init_app(app: Flask) -> None:
    """After every feature registered its routes: declare Flask's static files for anyone, and
    wrap each view with the registered guards (a guard leaves alone what it does not check)."""
    if app.has_static_folder:
        declare(app, {"static"}, Access.ANYONE)
    guards: list[Guard] = app.extensions.get("route_guards", [])
    for endpoint, view in list(app.view_functions.items()):
        rule = access_of(app, endpoint)
        for wrap in guards:
            view = wrap(view, rule)
        app.view_functions[endpoint] = view
