"""API tokens: POST /api/auth/tokens trades an email and password for a token, with one answer
for every failure (no account enumeration); the token opens the items API's writes (its reads
too with AUTH_PRIVATE_READS) and records the owner; it ends when deleted, expired, or when its
user's password changes or the user is deactivated. Sign-ins are limited per client address and,
failures only, per account. No password, token or hash is logged. The OpenAPI document asks for
the token on exactly the operations that need it, and the answers match it.
"""

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from limits import parse
from openapi_spec_validator import validate
from sqlalchemy import event, select, update

from {{ cookiecutter.package_name }}.auth import accounts, sign_in_limits
from {{ cookiecutter.package_name }}.auth.accounts import Role, Token, User, account_key, token_digest
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.platform import routes
from {{ cookiecutter.package_name }}.platform.routes import Access
from {{ cookiecutter.package_name }}.platform.timestamps import utc_now
from tests.conftest import hash_of, send_token
from tests.platform.test_openapi import PATH_PARAMETER, assert_conforms, document

EMAIL, PASSWORD = "ada@example.com", "correct horse battery staple"
CALLS_APART = 4  # Python calls by which a failed sign-in's two kinds may differ (see its test)
ITEM = {"name": "an item"}


def add_user(app, email=EMAIL, password=PASSWORD, active=True, role=Role.USER) -> int:
    """Store a user and return their id."""
    with app.app_context():
        user = User(
            email=email,
            password_hash=hash_of(password),
            is_active=active,
            email_verified_at=utc_now(),
            role=role,
        )
        db.session.add(user)
        db.session.commit()
        return user.id


def sign_in(client, email=EMAIL, password=PASSWORD, **kwargs):
    """POST the email and password to the token endpoint; return the answer."""
    return client.post("/api/auth/tokens", json={"email": email, "password": password}, **kwargs)


def token_of(client, **kwargs) -> str:
    """Sign in as EMAIL and return the new token."""
    answer = sign_in(client, **kwargs)
    assert answer.status_code == 201, answer.json
    return answer.json["token"]


def bearer(token: str) -> dict[str, str]:
    """Return the header sending ``token``."""
    return {"Authorization": f"Bearer {token}"}


def assert_asks_for_a_token(answer, invalid_token: bool) -> None:
    """Assert a 401 JSON answer whose WWW-Authenticate asks for a bearer token."""
    assert answer.status_code == 401, answer.data
    assert answer.json["error"]["status"] == 401
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert ("invalid_token" in challenge) == invalid_token, challenge


def test_a_sign_in_answers_a_token_to_store_nowhere(app, client):
    """It answers 201 with the token and its expiry (AUTH_TOKEN_LIFETIME away), never to be
    cached, and stores only the token's SHA-256."""
    add_user(app)
    before = datetime.now(UTC)
    answer = sign_in(client, email=" Ada@Example.COM ")
    assert answer.status_code == 201
    assert answer.headers["Cache-Control"] == "no-store"
    assert set(answer.json) == {"token", "expires_at"}
    expires_at = datetime.fromisoformat(answer.json["expires_at"])
    assert timedelta(seconds=86400) <= expires_at - before <= timedelta(seconds=86460)
    token = answer.json["token"]
    with app.app_context():
        stored = db.session.scalars(select(Token.token_hash)).all()
    assert token_digest(token) in stored
    assert token not in stored


def test_the_token_lifetime_is_a_setting(make_app):
    """It gives tokens the AUTH_TOKEN_LIFETIME setting's lifetime."""
    app = make_app(auth_token_lifetime=600)
    add_user(app)
    answer = sign_in(app.test_client())
    left = datetime.fromisoformat(answer.json["expires_at"]) - datetime.now(UTC)
    assert timedelta(seconds=590) <= left <= timedelta(seconds=600)


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("nobody@example.com", PASSWORD),  # an unknown email
        (EMAIL, PASSWORD + "!"),  # a wrong password
        ("inactive@example.com", PASSWORD),  # an inactive user
        ("not an email", PASSWORD),  # a malformed email
        ("ada\x00@example.com", PASSWORD),  # a NUL, which a database may refuse in a query
    ],
)
def test_every_failed_sign_in_gets_the_same_answer(app, client, email, password):
    """It answers 401 with one body whatever failed, so no answer tells which emails exist."""
    add_user(app)
    add_user(app, "inactive@example.com", active=False)
    answer = sign_in(client, email, password)
    assert_asks_for_a_token(answer, invalid_token=False)
    assert answer.json["error"]["detail"] == "Wrong email or password."
    assert answer.json == sign_in(client, "nobody@example.com").json


def work_of(app, send: Callable[[], object]) -> tuple[int, list[tuple[str, int]]]:
    """Return what ``send()`` did on this thread: how many Python functions it called
    (sys.setprofile), and each SQL statement it ran with the count of rows the database said it
    returned (-1 where the driver does not say, as SQLite's for a SELECT)."""
    calls, statements = 0, []

    def count(_frame, what: str, _arg) -> None:
        nonlocal calls
        calls += what == "call"

    def ran(_conn, cursor, statement, *_args) -> None:
        statements.append((statement, cursor.rowcount))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", ran)
    before = sys.getprofile()
    sys.setprofile(count)
    try:
        send()
    finally:
        sys.setprofile(before)
        event.remove(engine, "after_cursor_execute", ran)
    return calls, statements


@pytest.mark.parametrize(
    ("email", "password"),
    [
        (EMAIL, PASSWORD + "!"),  # a wrong password
        ("inactive@example.com", PASSWORD),  # an inactive user
        ("no-password@example.com", PASSWORD),  # an account that signs in elsewhere only
    ],
)
def test_a_failed_sign_in_of_an_account_does_the_work_of_one_of_an_unknown_email(
    app, client, email, password
):
    """It runs as many Python calls on the request's thread, and the same SQL statements each
    returning as many rows, for a failed sign-in naming an account as for an unknown email: no
    time to answer tells which emails have accounts, however many requests are timed. (Loading
    the account as an object, or a foreign key checked when its failure is recorded, made the
    known kind slower in some 60 % of served pairs, by a fraction of a millisecond.) Each kind is
    sent alternately, after one of each to warm up, and its fewest calls compared: a call now and
    then that belongs to neither (the pool checking a connection, say) lands on either. They may
    differ by CALLS_APART: the audit row's user id is bound as a number for one, NULL for the
    other (loading the account as an object took some 30 calls more)."""
    add_user(app)
    add_user(app, "inactive@example.com", active=False)
    add_user(app, "no-password@example.com")
    with app.app_context():
        db.session.execute(
            update(User).where(User.email == "no-password@example.com").values(password_hash=None)
        )
        db.session.commit()
    assert_same_work(
        app,
        lambda: sign_in(client, email, password),
        lambda nobody: sign_in(client, nobody),
    )


def assert_same_work(app, known: Callable[[], object], unknown: Callable[[str], object]) -> None:
    """Assert that a failed sign-in ``known()`` sends does the work of one ``unknown(email)``
    sends for an email no account has (see the test above): each sent 5 times alternately, the
    first of each to warm up."""
    works: dict[str, list] = {"known": [], "unknown": []}
    for attempt in range(5):
        works["known"].append(work_of(app, known))
        works["unknown"].append(work_of(app, partial(unknown, f"nobody{attempt}@example.com")))
    statements = [[ran for _calls, ran in work[1:]] for work in works.values()]
    assert statements[0] == statements[1]
    fewest = [min(calls for calls, _ran in work[1:]) for work in works.values()]
    assert abs(fewest[0] - fewest[1]) <= CALLS_APART, fewest


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        ({"data": "{", "content_type": "application/json"}, 400),
        ({"json": ["a list"]}, 400),
        ({"data": "email=a&password=b"}, 415),
        ({"json": {"email": EMAIL}}, 422),
        ({"json": {"email": EMAIL, "password": 12345678}}, 422),
        ({"json": {"email": ["a"], "password": PASSWORD}}, 422),
        ({"json": {"email": EMAIL, "password": PASSWORD, "admin": True}}, 422),
        ({"json": {"email": "a" * 250 + "@x.io", "password": PASSWORD}}, 422),
        ({"json": {"email": EMAIL, "password": "p" * 1025}}, 422),
    ],
)
def test_a_malformed_sign_in_is_a_client_error(app, client, request_args, status):
    """It answers bad JSON 400, a body not declared JSON 415 and bad fields 422, in JSON."""
    add_user(app)
    answer = client.post("/api/auth/tokens", **request_args)
    assert answer.status_code == status, answer.json
    assert answer.json["error"]["status"] == status


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic YWRhOnB3", "Bearer", "Bearer ", "Token abc", "bearer"],
)
def test_a_write_without_a_bearer_token_is_refused(client, authorization):
    """It answers 401, asking for a bearer token, to a write without one; nothing is stored."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = client.post("/api/items", json=ITEM, headers=headers)
    assert_asks_for_a_token(answer, invalid_token=False)
    assert client.get("/api/items").json["total"] == 0


def test_an_unknown_token_is_refused(client):
    """It answers 401 invalid_token to a token it never issued."""
    answer = client.post("/api/items", json=ITEM, headers=bearer("x" * 43))
    assert_asks_for_a_token(answer, invalid_token=True)


def test_a_write_with_a_token_records_its_owner(app, client):
    """It creates the item and records the token's user as its owner (not shown by the API)."""
    user_id = add_user(app)
    answer = client.post("/api/items", json=ITEM, headers=bearer(token_of(client)))
    assert answer.status_code == 201
    assert "owner_id" not in answer.json
    with app.app_context():
        item = db.session.get(Item, answer.json["id"])
        assert item is not None
        assert item.owner_id == user_id


def test_reads_are_public_by_default(auth_client, client):
    """It answers reads without a token unless AUTH_PRIVATE_READS is set."""
    created = auth_client.post("/api/items", json=ITEM).json
    assert client.get("/api/items").status_code == 200
    assert client.get(f"/api/items/{created['id']}").status_code == 200


def test_private_reads_need_a_token(make_app):
    """It refuses reads without a token with AUTH_PRIVATE_READS, and answers them with one."""
    app = make_app(auth_private_reads=True)
    anonymous, signed_in = app.test_client(), send_token(app.test_client())
    created = signed_in.post("/api/items", json=ITEM).json
    for path in ("/api/items", f"/api/items/{created['id']}"):
        assert_asks_for_a_token(anonymous.get(path), invalid_token=False)
        assert signed_in.get(path).status_code == 200


def expire(app, token: str) -> None:
    """Move the token's expiry a second into the past."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with app.app_context():
        db.session.execute(
            update(Token).where(Token.token_hash == token_digest(token)).values(expires_at=past)
        )
        db.session.commit()


def sign_out(app, client, token: str) -> None:
    """End the token with DELETE /api/auth/tokens/current: 204, no body."""
    answer = client.delete("/api/auth/tokens/current", headers=bearer(token))
    assert answer.status_code == 204
    assert answer.data == b""


def new_password(app, client, token: str) -> None:
    """Change the user's password with `flask users password`."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "password", EMAIL], input="another password\n")
    assert result.exit_code == 0, result.output


def deactivate(app, client, token: str) -> None:
    """Deactivate the user with `flask users deactivate`."""
    result = app.test_cli_runner().invoke(args=["users", "deactivate", EMAIL])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "end",
    [
        lambda app, client, token: expire(app, token),
        sign_out,
        new_password,
        deactivate,
    ],
    ids=["expired", "signed-out", "password-changed", "deactivated"],
)
def test_an_ended_token_is_refused(app, client, end):
    """It refuses, with 401 invalid_token, a token that expired, was deleted, or whose user got
    a new password or was deactivated; signing out with it again is refused as well."""
    add_user(app)
    token = token_of(client)
    assert client.post("/api/items", json=ITEM, headers=bearer(token)).status_code == 201
    end(app, client, token)
    assert_asks_for_a_token(
        client.post("/api/items", json=ITEM, headers=bearer(token)), invalid_token=True
    )
    gone = client.delete("/api/auth/tokens/current", headers=bearer(token))
    assert_asks_for_a_token(gone, invalid_token=True)


def test_signing_out_ends_only_that_token(app, client):
    """It ends the token the request carries, not the user's other ones."""
    add_user(app)
    first, second = token_of(client), token_of(client)
    sign_out(app, client, first)
    assert client.post("/api/items", json=ITEM, headers=bearer(second)).status_code == 201


def test_signing_out_answers_an_empty_204_after_one_token_lookup(app, client, monkeypatch):
    """It answers 204 with no body and no Content-Type, having looked the token up once."""
    add_user(app)
    token = token_of(client)
    lookups = []
    look_up = accounts.user_for_token

    def counted(token: str) -> User | None:
        lookups.append(token)
        return look_up(token)

    monkeypatch.setattr(accounts, "user_for_token", counted)
    answer = client.delete("/api/auth/tokens/current", headers=bearer(token))
    assert answer.status_code == 204
    assert answer.data == b""
    assert "Content-Type" not in answer.headers
    assert lookups == [token]


def test_signing_out_needs_a_token(client):
    """It answers 401, asking for a bearer token, to a sign-out without one."""
    assert_asks_for_a_token(client.delete("/api/auth/tokens/current"), invalid_token=False)


def test_no_password_token_or_hash_is_logged(app, client, caplog):
    """It logs sign-ins and writes by user id, never the password, the token or a hash."""
    user_id = add_user(app)
    with caplog.at_level(logging.DEBUG):
        assert sign_in(client, password="wrong password").status_code == 401
        token = token_of(client)
        assert client.post("/api/items", json=ITEM, headers=bearer(token)).status_code == 201
        sign_out(app, client, token)
    logged = " ".join(repr(record.__dict__) for record in caplog.records)
    assert "token_issued" in logged
    assert str(user_id) in logged
    for secret in (PASSWORD, "wrong password", token, token_digest(token), "$argon2"):
        assert secret not in logged


def test_sign_ins_are_limited_per_client_address(limited_client):
    """It answers 429 with Retry-After past RATELIMIT_SIGN_IN attempts from one address, whatever
    their accounts; another address starts afresh."""
    client = limited_client(ratelimit_sign_in="3 per minute")
    add_user(client.application)
    for email in ("a@example.com", "b@example.com", EMAIL):
        assert sign_in(client, email, "wrong password").status_code == 401
    refused = sign_in(client)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.json["error"]["status"] == 429
    assert sign_in(client, environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 201


@pytest.mark.parametrize("email", [EMAIL, "nobody@example.com"])
def test_failed_sign_ins_are_limited_per_account_from_any_address(limited_client, email):
    """It answers 429 past RATELIMIT_SIGN_IN_ACCOUNT failures for one account (an unknown email
    counted as a known one), from any address and in any form of the email; other accounts are
    not affected."""
    client = limited_client(ratelimit_sign_in_account="2 per minute")
    add_user(client.application)
    add_user(client.application, "grace@example.com")
    for address in ("192.0.2.1", "192.0.2.2"):
        answer = sign_in(client, email, "wrong password", environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 401
    elsewhere = {"REMOTE_ADDR": "192.0.2.3"}
    refused = sign_in(client, email.upper(), PASSWORD, environ_base=elsewhere)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert sign_in(client, "grace@example.com", environ_base=elsewhere).status_code == 201


def test_only_failed_password_checks_count_per_account(limited_client):
    """It counts an account's failed password checks only: its own sign-ins never lock it out,
    and one clears the failures counted before it."""
    client = limited_client(ratelimit_sign_in_account="2 per minute")
    add_user(client.application)
    for _ in range(3):
        assert sign_in(client).status_code == 201
    assert sign_in(client, password="wrong password").status_code == 401
    assert sign_in(client).status_code == 201
    answers = [sign_in(client, password="wrong password").status_code for _ in range(2)]
    assert answers == [401, 401]
    refused = sign_in(client)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.json["error"]["status"] == 429


@pytest.mark.parametrize(
    "body",
    [
        {"email": EMAIL, "password": 12345678},
        {"email": EMAIL, "password": None},
        {"email": EMAIL, "password": ["wrong password"]},
        {"email": EMAIL, "password": "wrong password", "admin": True},
        {"email": EMAIL},
        {"email": EMAIL, "password": ""},
    ],
)
def test_a_malformed_body_does_not_count_against_the_account_it_names(limited_client, body):
    """It refuses a body that is not an email and a password, an empty one included (422),
    without checking a password, so such bodies naming an account never lock it out."""
    client = limited_client(ratelimit_sign_in_account="2 per minute")
    add_user(client.application)
    answers = [client.post("/api/auth/tokens", json=body).status_code for _ in range(3)]
    assert answers == [422] * 3
    assert sign_in(client).status_code == 201


def test_a_write_refused_for_its_token_is_counted_by_the_write_limit(limited_client):
    """It counts a write it refuses for want of a token against RATELIMIT_WRITE, so refusals
    cannot be sent without end (the token is checked inside the limits' wrapper)."""
    client = limited_client(ratelimit_write="2 per minute")
    answers = [client.post("/api/items", json=ITEM).status_code for _ in range(3)]
    assert answers == [401, 401, 429]


def test_an_account_is_counted_before_its_password_is_checked(limited_client, monkeypatch):
    """It counts a password check before running it, so checks of one account running at once
    (in any worker: the count is in the limiter's storage) cannot all pass the limit."""
    client = limited_client(ratelimit_sign_in_account="2 per minute")
    limiter = client.application.extensions["rate_limits"]
    seen = []

    def check(email: str, password: str) -> None:
        stats = limiter.strategy.get_window_stats(parse("2 per minute"), account_key(email))
        seen.append(stats.remaining)

    monkeypatch.setattr(sign_in_limits, "check_password", check)
    answers = [sign_in(client, password="wrong password").status_code for _ in range(3)]
    assert answers == [401, 401, 429]
    assert seen == [1, 0]  # the count already taken while the check runs; none at the third


def test_the_account_key_is_a_digest_of_the_normalised_email():
    """It keys an account by a digest of its normalised email, never the email; every malformed
    email shares one key."""
    ada = account_key(EMAIL)
    assert ada == account_key(" ADA@example.com")
    assert EMAIL not in ada
    assert ada != account_key("grace@example.com")
    assert account_key("not an email") == account_key("@") == account_key("")


@pytest.mark.parametrize("private_reads", [False, True])
def test_the_document_asks_for_a_token_exactly_where_one_is_needed(make_app, private_reads):
    """It declares the bearer scheme, and a security requirement and a 401 on exactly the
    operations needing a token, as their routes declare it: writes of SIGNED_IN_TO_WRITE routes
    (the items API's among them; with AUTH_PRIVATE_READS their reads too), SIGNED_IN routes
    (sign-out) and ADMIN ones."""
    app = make_app(auth_private_reads=private_reads)
    doc = document(app.test_client())
    validate(doc)
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    operations = {
        (path, verb): op for path, ops in doc["paths"].items() for verb, op in ops.items()
    }
    needing = set()
    for rule in app.url_map.iter_rules():
        path = PATH_PARAMETER.sub(r"{\1}", rule.rule)
        declared = routes.access_of(app, rule.endpoint)
        for verb in {method.lower() for method in rule.methods or ()} - {"head", "options"}:
            write = declared is Access.SIGNED_IN_TO_WRITE and (verb != "get" or private_reads)
            signed_in = declared in (Access.SIGNED_IN, Access.ADMIN)
            if (path, verb) in operations and (write or signed_in):
                needing.add((path, verb))
    items = {("/api/items", "post"), ("/api/items", "get"), ("/api/items/{item_id}", "get")}
    reads = {("/api/items", "get"), ("/api/items/{item_id}", "get")}
    assert needing >= (items if private_reads else items - reads)
    assert needing >= {("/api/auth/tokens/current", "delete")}
    assert private_reads or not needing & reads
    assert {key for key, op in operations.items() if "security" in op} == needing
    assert all(operations[key]["security"] == [{"bearer": []}] for key in needing)
    with_401 = {key for key, op in operations.items() if "401" in op["responses"]}
    assert with_401 == needing | {("/api/auth/tokens", "post")}  # a failed sign-in


def test_the_token_answers_match_the_document(limited_client):
    """It answers sign-in (201, 400, 401, 422, 429), sign-out (204, 401) and a write without a
    token (401) as the document says, with the limiter's headers on."""
    client = limited_client(ratelimit_sign_in="5 per minute")
    add_user(client.application)
    doc = document(client)
    tokens, current = "/api/auth/tokens", "/api/auth/tokens/current"
    assert_conforms(doc, tokens, "post", created := sign_in(client))
    assert created.status_code == 201
    for answer in (
        sign_in(client, password="wrong password"),
        client.post(tokens, data="{", content_type="application/json"),
        client.post(tokens, json={"email": EMAIL}),
        sign_in(client),
        sign_in(client),
    ):
        assert_conforms(doc, tokens, "post", answer)
    assert answer.status_code == 429
    assert_conforms(doc, "/api/items", "post", client.post("/api/items", json=ITEM))
    assert_conforms(doc, current, "delete", client.delete(current))
    signed_out = client.delete(current, headers=bearer(created.json["token"]))
    assert signed_out.status_code == 204
    documented = doc["paths"][current]["delete"]["responses"]["204"]
    assert "content" not in documented
    sent = set(signed_out.headers) & set(doc["components"]["headers"])
    assert sent <= documented["headers"].keys()
