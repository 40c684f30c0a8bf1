"""Every route declares who may call it (platform/routes.py), and the declaration counts."""

{% if cookiecutter.use_auth == "yes" -%}
from datetime import timedelta

{% endif -%}
import pytest
{%- if cookiecutter.use_auth == "yes" %}
from flask import Blueprint, g
from sqlalchemy import update
{%- endif %}

{% if cookiecutter.use_auth == "yes" -%}
from {{ cookiecutter.package_name }}.auth.accounts import Role, User, issue_token
from {{ cookiecutter.package_name }}.auth.api import NOT_AN_ADMIN
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform import openapi, routes
from {{ cookiecutter.package_name }}.platform.operations import Operation
{% endif -%}
{% if cookiecutter.use_auth != "yes" -%}
from {{ cookiecutter.package_name }}.platform import routes
{% endif -%}
from {{ cookiecutter.package_name }}.platform.routes import Access
{%- if cookiecutter.use_auth == "yes" %}
from tests.auth.test_api import add_user, assert_asks_for_a_token, token_of
from tests.conftest import send_token
from tests.platform.test_openapi import assert_conforms, document
{%- endif %}

{%- if cookiecutter.use_auth == "yes" %}

# Settings that serve every optional route.
EVERY_ROUTE: dict[str, object] = {
    "auth_sign_up": True,
{%- if cookiecutter.use_frontend == "yes" %}
    "passkey_origins": "http://localhost:8000",
    # Single sign-on's routes, with a provider nothing answers at (loopback's discard port).
    "oidc_issuer": "http://127.0.0.1:9",
    "oidc_client_id": "every-route",
    "oidc_client_secret": "every-route",
    "public_url": "http://localhost:8000",
{%- endif %}
}
{%- endif %}


@pytest.mark.parametrize("app_env", ["test", "development"])
def test_every_route_declares_who_may_call_it(make_app, app_env):
    """It finds a declaration for each rule of the URL map (a route that forgot one would get
    the default silently: this test names it instead)."""
    app = make_app(app_env=app_env{% if cookiecutter.use_auth == "yes" %}, **EVERY_ROUTE{% endif %})
    undeclared = sorted(
        f"{rule.rule} ({rule.endpoint})"
        for rule in app.url_map.iter_rules()
        if routes.declared(app, rule.endpoint) is None
    )
    assert not undeclared, f"declare who may call these (platform/routes.py): {undeclared}"


def test_a_route_that_declares_nothing_gets_the_safe_default(make_app):
    """It answers SIGNED_IN_TO_WRITE for an endpoint with no declaration."""
    app = make_app()
    app.add_url_rule("/undeclared", endpoint="undeclared", view_func=lambda: "")
    assert routes.declared(app, "undeclared") is None
    assert routes.access_of(app, "undeclared") is Access.SIGNED_IN_TO_WRITE
{%- if cookiecutter.use_auth == "yes" %}


@pytest.fixture
def second_api_app(make_app, monkeypatch):
    """Return an app with a second API, built like items, that declares nothing, registered by a
    feature after every other (as late as create_app allows: right before the routes' rules are
    applied)."""
    second = Blueprint("second_api", __name__)

    @second.post("/second")
    def create_thing() -> tuple[dict[str, int], int]:
        return {"user_id": g.user.id}, 201

    @second.get("/second")
    def list_things() -> dict[str, list[int]]:
        return {"things": []}

    apply_rules = routes.init_app

    def with_second_api(app):
        app.register_blueprint(second, url_prefix="/api")
        apply_rules(app)

    monkeypatch.setattr(routes, "init_app", with_second_api)
    return make_app


def test_an_api_that_declares_nothing_takes_writes_only_with_a_token(second_api_app):
    """Its writes need a token, whatever its blueprint's name; its reads are public."""
    app = second_api_app()
    client = app.test_client()
    assert_asks_for_a_token(client.post("/api/second", json={}), invalid_token=False)
    assert client.get("/api/second").status_code == 200
    answer = send_token(app.test_client()).post("/api/second", json={})
    assert answer.status_code == 201
    assert answer.json["user_id"] >= 1


def test_an_api_that_declares_nothing_keeps_its_reads_private_with_the_setting(second_api_app):
    """With AUTH_PRIVATE_READS its reads need a token too, as the items API's do."""
    app = second_api_app(auth_private_reads=True)
    assert_asks_for_a_token(app.test_client().get("/api/second"), invalid_token=False)
    assert send_token(app.test_client()).get("/api/second").status_code == 200


@pytest.fixture
def admin_app(make_app, monkeypatch):
    """Return an app with a route that declares Access.ADMIN, registered by a feature, with its
    answers described for the OpenAPI document."""
    admin = Blueprint("admin_api", __name__)

    @admin.get("/admin-only")
    @routes.access(Access.ADMIN)
    def admin_only() -> dict[str, int]:
        """Answer the caller's id."""
        return {"user_id": g.user.id}

    apply_rules = routes.init_app

    def with_admin_route(app):
        app.register_blueprint(admin, url_prefix="/api")
        openapi.describe(app, {"admin_api.admin_only": Operation({"200": ("Its id.", None, ())})})
        apply_rules(app)

    monkeypatch.setattr(routes, "init_app", with_admin_route)
    return make_app()


def token_of_new(app, email: str, role: Role) -> str:
    """Store a confirmed user with this address and role; return a token it signed in for."""
    add_user(app, email=email, role=role)
    return token_of(app.test_client(), email=email)


def set_user(app, email: str, **values: object) -> None:
    """Change stored columns of the user with this address."""
    with app.app_context():
        db.session.execute(update(User).where(User.email == email).values(**values))
        db.session.commit()


def test_an_admin_route_answers_only_admins(admin_app):
    """Without a token 401; a user's token 403 with the JSON error body; an admin's 200. The role
    is read at each request: a demoted admin's token gets 403 at once, a deactivated one's 401."""
    client = admin_app.test_client()
    doc = document(client)
    assert_asks_for_a_token(client.get("/api/admin-only"), invalid_token=False)
    user_token = token_of_new(admin_app, "ada@example.com", Role.USER)
    user = send_token(admin_app.test_client(), user_token)
    refused = user.get("/api/admin-only")
    assert refused.status_code == 403
    assert refused.json["error"]["detail"] == NOT_AN_ADMIN
    assert_conforms(doc, "/api/admin-only", "get", refused)
    admin_token = token_of_new(admin_app, "root@example.com", Role.ADMIN)
    boss = send_token(admin_app.test_client(), admin_token)
    allowed = boss.get("/api/admin-only")
    assert allowed.status_code == 200
    assert allowed.json["user_id"] >= 1
    set_user(admin_app, "ada@example.com", role=Role.ADMIN)
    assert user.get("/api/admin-only").status_code == 200
    set_user(admin_app, "root@example.com", role=Role.USER)
    assert boss.get("/api/admin-only").status_code == 403
    set_user(admin_app, "ada@example.com", is_active=False)
    assert_asks_for_a_token(user.get("/api/admin-only"), invalid_token=True)


CALLERS = ("anonymous", "user", "admin", "deactivated admin")
NO_SUCH_ID = 999_999
PASSES = "passes"  # the guard lets the request through to the view, whatever the view answers


def expected_answers(rule: Access, method: str, private_reads: bool) -> dict[str, str]:
    """Return what the token guard answers each caller of a route declaring ``rule``."""
    asked = rule in (Access.SIGNED_IN, Access.ADMIN) or (
        rule is Access.SIGNED_IN_TO_WRITE and (method != "GET" or private_reads)
    )
    return {
        "anonymous": "401" if asked else PASSES,
        "user": "403" if rule is Access.ADMIN else PASSES,
        "admin": PASSES,
        "deactivated admin": "401" if asked else PASSES,
    }


def guard_answer(answer) -> str:
    """Return "401" or "403" when the token guard refused ``answer``'s request, else PASSES."""
    challenge = answer.headers.get("WWW-Authenticate", "")
    if answer.status_code == 401 and challenge.startswith("Bearer"):
        return "401"
    body = answer.get_json(silent=True) or {}
    if answer.status_code == 403 and body.get("error", {}).get("detail") == NOT_AN_ADMIN:
        return "403"
    return PASSES


def fresh_tokens(app, users: dict[str, int]) -> dict[str, str]:
    """Issue a new token to each caller's user, by its id (a route may end the token sent)."""
    with app.app_context():
        return {
            caller: issue_token(db.session.get_one(User, user_id), timedelta(hours=1))[0]
            for caller, user_id in users.items()
        }


def routes_of(app) -> dict[str, tuple[str, str]]:
    """Return each route of the URL map as "METHOD RULE": (endpoint, a URL of it)."""
    found = {}
    urls = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        # An id no row has: an admin's route acting on a user must not act on a caller.
        url = urls.build(rule.endpoint, dict.fromkeys(rule.arguments, NO_SUCH_ID))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found[f"{method} {rule.rule}"] = (rule.endpoint, url)
    return found


@pytest.mark.parametrize("private_reads", [False, True])
def test_the_authorization_matrix_holds_for_every_route(make_app, private_reads):
    """The matrix is the URL map (every optional route served) times four callers: anonymous, a
    user, an admin and a deactivated admin, each with a live token of their own. Each route
    answers each caller as the rule it declares says (a route declaring none fails the test
    above): 401 where a token is asked and none, or a dead one, is sent; 403 to a user on an
    admin's route. Pages answer a token the same as no token: they never read one."""
    app = make_app(auth_private_reads=private_reads, **EVERY_ROUTE)
    users = {
        "user": add_user(app, email="ada@example.com", role=Role.USER),
        "admin": add_user(app, email="root@example.com", role=Role.ADMIN),
        "deactivated admin": add_user(app, email="old@example.com", role=Role.ADMIN, active=False),
    }
    wrong: dict[str, object] = {}
    for route, (endpoint, url) in sorted(routes_of(app).items()):
        rule, method = routes.access_of(app, endpoint), route.split()[0]
        tokens = fresh_tokens(app, users)
        answers, statuses = {}, set()
        for caller in CALLERS:
            headers = {"Authorization": f"Bearer {tokens[caller]}"} if caller in tokens else {}
            body: dict[str, object] | None = None if method == "GET" else {}
            answer = app.test_client().open(url, method=method, json=body, headers=headers)
            assert answer.status_code != 500, f"{route} as {caller}: {answer.text}"
            answers[caller] = guard_answer(answer)
            statuses.add(answer.status_code)
        if answers != expected_answers(rule, method, private_reads):
            wrong[f"{route} ({rule.name})"] = answers
        if rule is Access.PAGE and len(statuses) > 1:
            wrong[route] = {"a page answered tokens differently": sorted(statuses)}
    assert not wrong, wrong


def test_an_admin_route_documents_its_refusals(admin_app):
    """The OpenAPI document lists its 401 and its 403 (with what the 403 means) and its token."""
    operation = document(admin_app.test_client())["paths"]["/api/admin-only"]["get"]
    assert {"200", "401", "403"} <= set(operation["responses"])
    assert operation["responses"]["403"]["description"] == NOT_AN_ADMIN
    assert operation["security"] == [{"bearer": []}]
{%- endif %}
