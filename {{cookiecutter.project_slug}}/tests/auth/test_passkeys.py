"""Passkeys: the two ceremonies verified on responses recorded from Chromium's virtual authenticator
(for the relying party ``localhost`` at ``http://localhost:5000``), each refused
when its challenge was used, expired or never given, its origin or relying party differs, its
signature was tampered with or its credential is unknown; the passkey page, and the commands."""

import copy
import json
import re
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
{% if cookiecutter.use_postgres == "yes" %}from flask_migrate import downgrade, upgrade
{% endif %}from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from {{ cookiecutter.package_name }}.auth.accounts import User
from {{ cookiecutter.package_name }}.auth.passkey_pages import FAILED
from {{ cookiecutter.package_name }}.auth.passkeys import (
    DEFAULT_NAME,
    MAX_NAME_LENGTH,
    SESSION_KEY,
    Passkey,
    PasskeyChallenge,
    digest,
    distinct_name,
)
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.platform.timestamps import utc_now
from tests.auth.test_pages import add_user, shows_the_form
from tests.conftest import TESTER, client_signed_in, token_of_tester

ORIGIN = "http://localhost:5000"  # where the recorded responses were made, for rp id localhost
# A registration ("none" attestation, a resident ES256 key, user verified) and a sign-in with it
# (user verified, with the user handle a discoverable credential gives), as Chromium's virtual
# authenticator answered them, with the challenges they signed.
RECORDED = json.loads((Path(__file__).parent / "webauthn_responses.json").read_text())
REGISTRATION_CHALLENGE = RECORDED["registration"]["challenge"]
REGISTRATION = RECORDED["registration"]["credential"]
SIGN_IN_CHALLENGE = RECORDED["sign_in"]["challenge"]
SIGN_IN_PUBLIC_KEY = RECORDED["sign_in"]["public_key"]
SIGN_IN = RECORDED["sign_in"]["credential"]
COUNT_BEFORE = RECORDED["sign_in"]["sign_count_before"]  # the authenticator's counter
COUNT_AFTER = RECORDED["sign_in"]["sign_count_after"]


@pytest.fixture
def passkey_app(shared_app):
    """Return the app the tests share offering passkeys to the recorded responses' origin, its
    test user stored."""
    app = shared_app(passkey_origins=ORIGIN)
    token_of_tester(app)
    return app


def csrf_header(client) -> dict[str, str]:
    """Return the header carrying the CSRF token of the client's session, as passkeys.js sends."""
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/sign-in").text)
    assert match
    return {"X-CSRFToken": match.group(1)}


def hold_challenge(app, client, kind: str, challenge: str, expires_in: float = 60, **extra):
    """Give the client's session a ceremony's challenge, stored as the options endpoint does,
    with the recorded response's value (the endpoint would make a random one)."""
    with app.app_context():
        expires_at = utc_now() + timedelta(seconds=expires_in)
        row = PasskeyChallenge(digest=digest(base64url_to_bytes(challenge)), expires_at=expires_at)
        db.session.add(row)
        db.session.commit()
    with client.session_transaction() as session:
        session[SESSION_KEY] = {"kind": kind, "challenge": challenge, **extra}


def store_passkey(app, email: str = TESTER, handle: str = SIGN_IN["response"]["userHandle"]) -> int:
    """Store the recorded sign-in's passkey as the user's; return its id."""
    with app.app_context():
        user = db.session.scalars(select(User).where(User.email == email)).one()
        passkey = Passkey(
            user_id=user.id,
            credential_id=base64url_to_bytes(SIGN_IN["rawId"]),
            user_handle=base64url_to_bytes(handle),
            public_key=base64url_to_bytes(SIGN_IN_PUBLIC_KEY),
            sign_count=COUNT_BEFORE,
            backup_eligible=False,
            backed_up=False,
            name="Recorded key",
        )
        db.session.add(passkey)
        db.session.commit()
        return int(passkey.id)


def sign_in_with_passkey(app, client, response: dict | None = None, **challenge):
    """Hold the recorded sign-in's challenge in the client's session, then post the response."""
    headers = csrf_header(client)
    hold_challenge(app, client, "sign-in", SIGN_IN_CHALLENGE, **challenge)
    return client.post("/passkeys/sign-in", json=response or SIGN_IN, headers=headers)


def stored(app) -> list[Passkey]:
    """Return every stored passkey."""
    with app.app_context():
        return list(db.session.scalars(select(Passkey).order_by(Passkey.id)))


def register_recorded(app, client, name: str):
    """Add the recorded credential under a name, as the passkeys page does for the signed-in
    client; return the answer and the CSRF header the client used."""
    headers = csrf_header(client)
    handle = RECORDED["registration"]["user_handle"]
    hold_challenge(app, client, "register", REGISTRATION_CHALLENGE, handle=handle)
    body = {"credential": REGISTRATION, "name": name}
    return client.post("/passkeys/new", json=body, headers=headers), headers


def test_registration_stores_the_verified_passkey_under_its_name(passkey_app):
    """It verifies the recorded credential against the session's challenge and stores its id,
    public key, counter and the session's user handle, under the name given; the page says so."""
    client = client_signed_in(passkey_app)
    answer, _ = register_recorded(passkey_app, client, "My laptop")
    assert answer.status_code == 201, answer.json
    (passkey,) = stored(passkey_app)
    assert passkey.name == "My laptop"
    assert "Passkey “My laptop” added." in client.get("/passkeys").text  # the page JS reloads
    assert passkey.credential_id == base64url_to_bytes(REGISTRATION["rawId"])
    assert passkey.sign_count == RECORDED["registration"]["sign_count"]
    assert passkey.user_handle == base64url_to_bytes(RECORDED["registration"]["user_handle"])
    assert "My laptop" in client.get("/passkeys").text


def test_registration_options_ask_for_a_discoverable_verified_passkey(passkey_app):
    """It answers WebAuthn's creation options for the user: a new challenge, the relying party
    localhost, a resident key and user verification required."""
    client = client_signed_in(passkey_app)
    options = client.post("/passkeys/new/options", json={}, headers=csrf_header(client)).json
    assert options["rp"]["id"] == "localhost"
    assert options["user"]["name"] == TESTER
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert len(base64url_to_bytes(options["challenge"])) == 32


@pytest.mark.parametrize(
    ("overrides", "response"),
    [
        ({"passkey_origins": "http://localhost:5001"}, REGISTRATION),  # another origin
        ({}, {**REGISTRATION, "response": {**REGISTRATION["response"], "clientDataJSON": "e30"}}),
    ],
    ids=["wrong origin", "tampered client data"],
)
def test_registration_refuses_a_credential_made_elsewhere(make_app, overrides, response):
    """It answers 422 and stores nothing for a credential made for another origin, or whose
    client data was changed."""
    app = make_app(**{"passkey_origins": ORIGIN, **overrides})
    token_of_tester(app)
    client = client_signed_in(app)
    headers = csrf_header(client)
    hold_challenge(app, client, "register", REGISTRATION_CHALLENGE, handle="AA")
    answer = client.post("/passkeys/new", json={"credential": response}, headers=headers)
    assert answer.status_code == 422
    assert not stored(app)


def test_registration_needs_a_signed_in_user(passkey_app):
    """It answers a ceremony's request from no signed-in user 403 and stores nothing."""
    client = passkey_app.test_client()
    answer = client.post("/passkeys/new/options", json={}, headers=csrf_header(client))
    assert answer.status_code == 403
    assert client.get("/passkeys").status_code == 303


def test_sign_in_with_a_passkey_starts_a_signed_in_session_without_an_email(passkey_app):
    """It verifies the recorded assertion, signs its user in in a new session (nothing set
    before survives it), and records the new counter and the time of use."""
    store_passkey(passkey_app)
    client = passkey_app.test_client()
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
    answer = sign_in_with_passkey(passkey_app, client)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"next": "/"}
    with client.session_transaction() as session:
        assert "planted" not in session
    assert shows_the_form(client)
    (passkey,) = stored(passkey_app)
    assert passkey.sign_count == COUNT_AFTER
    assert passkey.last_used_at is not None


def test_sign_in_options_list_no_credential(passkey_app):
    """It answers request options with a new challenge and no allowed credentials: the browser
    offers the passkeys it holds for the site, so no email is asked."""
    client = passkey_app.test_client()
    answer = client.post("/passkeys/sign-in/options", json={}, headers=csrf_header(client))
    assert answer.json["rpId"] == "localhost"
    assert answer.json["userVerification"] == "required"
    assert not answer.json.get("allowCredentials")


def test_a_replayed_challenge_is_refused(passkey_app):
    """It refuses the same response posted again: with the session that sent it, and with a
    copy of that session's cookie from before (the stored challenge served once)."""
    store_passkey(passkey_app)
    client = passkey_app.test_client()
    headers = csrf_header(client)
    hold_challenge(passkey_app, client, "sign-in", SIGN_IN_CHALLENGE)
    cookie_name = passkey_app.config["SESSION_COOKIE_NAME"]
    before = client.get_cookie(cookie_name).value
    assert client.post("/passkeys/sign-in", json=SIGN_IN, headers=headers).status_code == 200
    reset_counter(passkey_app)  # so that only the challenge can refuse, not the counter
    again = client.post("/passkeys/sign-in", json=SIGN_IN, headers=csrf_header(client))
    assert again.status_code == 422
    replay = passkey_app.test_client()
    replay.set_cookie(cookie_name, before)
    answer = replay.post("/passkeys/sign-in", json=SIGN_IN, headers=headers)
    assert answer.status_code == 422
    assert answer.json["error"]["detail"] == FAILED
    assert not shows_the_form(replay)


def reset_counter(app) -> None:
    """Set every stored passkey's counter back to its value before the recorded sign-in."""
    with app.app_context():
        for passkey in db.session.scalars(select(Passkey)):
            passkey.sign_count = COUNT_BEFORE
        db.session.commit()


def tampered_signature() -> dict:
    """Return the recorded response with one byte of its signature changed."""
    response = copy.deepcopy(SIGN_IN)
    signature = bytearray(base64url_to_bytes(response["response"]["signature"]))
    signature[10] ^= 1
    response["response"]["signature"] = bytes_to_base64url(bytes(signature))
    return response


@pytest.mark.parametrize(
    ("setup", "challenge", "response"),
    [
        ("stored", {"expires_in": -1}, SIGN_IN),  # expired challenge
        ("stored", {}, tampered_signature()),
        ("none", {}, SIGN_IN),  # unknown credential
        ("other handle", {}, SIGN_IN),  # the passkey names another user
        ("deactivated", {}, SIGN_IN),
        ("counter ahead", {}, SIGN_IN),  # a cloned authenticator's counter lags the original's
    ],
    ids=[
        "expired challenge",
        "tampered signature",
        "unknown credential",
        "other user",
        "inactive",
        "counter not ahead",
    ],
)
def test_a_failed_passkey_sign_in_gets_one_answer(passkey_app, setup, challenge, response):
    """It answers 422 with the one message, and signs no one in."""
    if setup != "none":
        handle = "b3RoZXI" if setup == "other handle" else SIGN_IN["response"]["userHandle"]
        store_passkey(passkey_app, handle=handle)
    with passkey_app.app_context():
        if setup == "deactivated":
            db.session.scalars(select(User).where(User.email == TESTER)).one().is_active = False
        if setup == "counter ahead":
            db.session.scalars(select(Passkey)).one().sign_count = COUNT_AFTER
        db.session.commit()
    client = passkey_app.test_client()
    answer = sign_in_with_passkey(passkey_app, client, response, **challenge)
    assert answer.status_code == 422
    assert answer.json["error"]["detail"] == FAILED
    assert not shows_the_form(client)


@pytest.mark.parametrize(
    "settings",
    [{"passkey_origins": "http://localhost:5001"}, {"passkey_rp_id": "example.com"}],
    ids=["wrong origin", "wrong rp id"],
)
def test_a_response_for_another_site_is_refused(passkey_app, settings, monkeypatch):
    """It refuses the recorded response when the service expects another origin, or another
    relying party (the authenticator signed localhost's id hash)."""
    store_passkey(passkey_app)
    for name, value in settings.items():
        monkeypatch.setattr(passkey_app.extensions["settings"], name, value)
    client = passkey_app.test_client()
    answer = sign_in_with_passkey(passkey_app, client)
    assert answer.status_code == 422
    assert not shows_the_form(client)


@pytest.mark.parametrize("body", [None, "not json", {"id": 1}, {"rawId": "***", "id": "x"}])
def test_a_malformed_sign_in_gets_the_one_answer(passkey_app, body):
    """It answers 422, never a 500, whatever the body."""
    client = passkey_app.test_client()
    headers = csrf_header(client)
    hold_challenge(passkey_app, client, "sign-in", SIGN_IN_CHALLENGE)
    answer = client.post("/passkeys/sign-in", json=body, headers=headers)
    assert answer.status_code == 422


def test_removed_passkey_signs_in_no_more(passkey_app):
    """It removes the signed-in user's passkey from the page, which says so; the same response
    then fails."""
    passkey_id = store_passkey(passkey_app)
    client = client_signed_in(passkey_app)
    page = client.get("/passkeys").text
    assert "Recorded key" in page
    token = csrf_header(client)["X-CSRFToken"]
    answer = client.post(f"/passkeys/{passkey_id}/remove", data={"csrf_token": token})
    assert answer.status_code == 303
    assert not stored(passkey_app)
    assert "Passkey removed: it signs in no more." in client.get("/passkeys").text
    assert sign_in_with_passkey(passkey_app, passkey_app.test_client()).status_code == 422


def test_a_passkey_is_renamed_by_its_user_only(passkey_app):
    """It renames the signed-in user's passkey from the page, keeps another user's, and keeps
    the name for a blank one."""
    mine = store_passkey(passkey_app)
    client = client_signed_in(passkey_app)
    token = csrf_header(client)["X-CSRFToken"]
    for name in ("Work phone", "   "):
        answer = client.post(f"/passkeys/{mine}/rename", data={"name": name, "csrf_token": token})
        assert answer.status_code == 303
    assert [p.name for p in stored(passkey_app)] == ["Work phone"]
    page = client.get("/passkeys").text
    assert page.count("Passkey renamed") == 1 and "Passkey renamed “Work phone”." in page
    assert '<strong class="passkey-name">Work phone</strong>' in page
    add_user(passkey_app, "other@example.com", "another long password")
    with passkey_app.app_context():
        db.session.execute(delete(Passkey))
        db.session.commit()
    theirs = store_passkey(passkey_app, email="other@example.com")
    client.post(f"/passkeys/{theirs}/rename", data={"name": "Mine now", "csrf_token": token})
    assert [p.name for p in stored(passkey_app)] == ["Recorded key"]


def test_two_passkeys_of_a_user_never_share_a_name(passkey_app):
    """It numbers a new passkey named as one the user has ("Recorded key 2"), and refuses a
    rename to the name of another of their passkeys, saying so; each keeps its name."""
    store_passkey(passkey_app)  # "Recorded key"
    with passkey_app.app_context():  # another authenticator's: the recorded one is added below
        db.session.execute(update(Passkey).values(credential_id=b"another authenticator"))
        db.session.commit()
    client = client_signed_in(passkey_app)
    added, headers = register_recorded(passkey_app, client, "Recorded key")
    assert added.status_code == 201, added.json
    assert added.json["name"] == "Recorded key 2"
    form = {"name": " Recorded  key ", "csrf_token": headers["X-CSRFToken"]}  # the same, cleaned
    assert client.post(f"/passkeys/{added.json['id']}/rename", data=form).status_code == 303
    assert [p.name for p in stored(passkey_app)] == ["Recorded key", "Recorded key 2"]
    assert "Another passkey is named “Recorded key”: choose" in client.get("/passkeys").text


def copy_of_passkey(passkey_id: int, **changes) -> Passkey:
    """Return a new passkey like a stored one, with another credential id and the changes."""
    passkey = db.session.get_one(Passkey, passkey_id)
    columns = ("user_id", "user_handle", "public_key", "sign_count", "backup_eligible", "backed_up")
    values = {column: getattr(passkey, column) for column in columns} | {"name": passkey.name}
    return Passkey(**values | {"credential_id": secrets.token_bytes(16)} | changes)


def test_the_database_refuses_one_name_twice_for_a_user(passkey_app):
    """It refuses, in the database itself, a second passkey of a user under a name they use:
    what two adds or renames at once would otherwise store. Another user may use the name."""
    first = store_passkey(passkey_app)
    other = add_user(passkey_app, "other@example.com", "another password")
    with passkey_app.app_context():
        db.session.add(copy_of_passkey(first))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        db.session.add(copy_of_passkey(first, user_id=other))
        db.session.commit()
    assert [p.name for p in stored(passkey_app)] == ["Recorded key", "Recorded key"]
{% if cookiecutter.use_postgres == "yes" %}

def test_the_unique_names_migration_numbers_the_shared_names(passkey_app):
    """It renames a user's later passkeys sharing a name, oldest first, to the first number
    free ("Recorded key 3" when "Recorded key 2" is used), and leaves another user's alone."""
    first = store_passkey(passkey_app)
    other = add_user(passkey_app, "other@example.com", "another password")
    with passkey_app.app_context():
        downgrade(revision="0006")
        twice = [copy_of_passkey(first), copy_of_passkey(first, name="Recorded key 2")]
        db.session.add_all([*twice, copy_of_passkey(first, user_id=other)])
        db.session.commit()
        upgrade()
    names = ["Recorded key", "Recorded key 3", "Recorded key 2", "Recorded key"]
    assert [p.name for p in stored(passkey_app)] == names
{% endif %}

def test_a_numbered_name_stays_within_the_longest_name():
    """It cuts a long name to make room for its number, and takes the first number not used."""
    long = "x" * MAX_NAME_LENGTH
    assert distinct_name(long, {long}) == "x" * (MAX_NAME_LENGTH - 2) + " 2"
    taken = {long, "x" * (MAX_NAME_LENGTH - 2) + " 2"}
    assert distinct_name(long, taken) == "x" * (MAX_NAME_LENGTH - 2) + " 3"
    assert distinct_name("Laptop", {"Phone"}) == "Laptop"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("\u202egpj.exe\u202c", "gpj.exe"),  # a right-to-left override, then its end
        ("Work\r\nphone\u2028and\u2029more\tkeys", "Work phone and more keys"),
        ("\u2066Ada\u2069\u200b \u200d\ufeff  laptop\u00ad", "Ada laptop"),  # format characters
        ("\x1b[31mred\x00\x7f", "[31mred"),  # an escape sequence, a NUL, a DEL
        ("\u202e\r\n\u200b\u2028 ", DEFAULT_NAME),  # nothing shown: as no name at all
    ],
)
def test_a_passkey_name_is_stored_without_hidden_characters(passkey_app, given, kept):
    """It drops control and format characters (bidi overrides and isolates, zero-width ones)
    from the name of a new passkey and of a renamed one, turns line breaks into spaces and
    collapses them; a name left empty gets the default when added, and is unchanged by a rename."""
    client = client_signed_in(passkey_app)
    answer, headers = register_recorded(passkey_app, client, given)
    assert answer.status_code == 201, answer.json
    assert answer.json["name"] == kept
    assert [p.name for p in stored(passkey_app)] == [kept]
    old = "Old" if kept == DEFAULT_NAME else f"Old {kept}"
    for name, now in ((f"Old {given}", old), (given, old if kept == DEFAULT_NAME else kept)):
        form = {"name": name, "csrf_token": headers["X-CSRFToken"]}
        assert client.post(f"/passkeys/{answer.json['id']}/rename", data=form).status_code == 303
        assert [p.name for p in stored(passkey_app)] == [now]


def test_another_users_passkey_cannot_be_removed(passkey_app):
    """It keeps a passkey of another user whose id the signed-in user posts."""
    add_user(passkey_app, "other@example.com", "another long password")
    passkey_id = store_passkey(passkey_app, email="other@example.com")
    client = client_signed_in(passkey_app)
    token = csrf_header(client)["X-CSRFToken"]
    answer = client.post(f"/passkeys/{passkey_id}/remove", data={"csrf_token": token})
    assert answer.status_code == 303
    assert len(stored(passkey_app)) == 1
    assert "Passkey removed" not in client.get("/passkeys").text


@pytest.mark.parametrize(
    ("command", "stdin"), [("password", "a brand new password\n"), ("deactivate", None)]
)
def test_new_password_or_deactivation_ends_a_passkey_session(passkey_app, command, stdin):
    """It signs a user who signed in with a passkey out when `flask users password|deactivate`
    changes them, as for a password sign-in."""
    store_passkey(passkey_app)
    client = passkey_app.test_client()
    assert sign_in_with_passkey(passkey_app, client).status_code == 200
    result = passkey_app.test_cli_runner().invoke(args=["users", command, TESTER], input=stdin)
    assert result.exit_code == 0, result.output
    assert not shows_the_form(client)


def test_users_commands_list_and_remove_passkeys(passkey_app):
    """`flask users passkeys EMAIL` lists a user's passkeys; `remove-passkey EMAIL ID` removes
    one, and refuses an id that is not theirs."""
    passkey_id = store_passkey(passkey_app)
    runner = passkey_app.test_cli_runner()
    listed = runner.invoke(args=["users", "passkeys", TESTER])
    assert listed.exit_code == 0
    assert f"{passkey_id}\tRecorded key\t" in listed.output
    assert "last used never" in listed.output
    wrong = runner.invoke(args=["users", "remove-passkey", TESTER, str(passkey_id + 1)])
    assert wrong.exit_code == 1
    assert f"no passkey {passkey_id + 1}" in wrong.output
    removed = runner.invoke(args=["users", "remove-passkey", TESTER, str(passkey_id)])
    assert removed.exit_code == 0
    assert not stored(passkey_app)
    assert "has no passkey" in runner.invoke(args=["users", "passkeys", TESTER]).output


def test_no_passkeys_without_their_origins(make_app):
    """It serves no ceremony and shows no passkey button while PASSKEY_ORIGINS is empty."""
    client = client_signed_in(make_app(passkey_origins=""))
    assert client.get("/passkeys").status_code == 404
    assert "passkey" not in client.get("/sign-in").text.lower()
    assert "passkeys-link" not in client.get("/").text


def test_passkey_sign_ins_count_in_the_sign_in_limit_per_address(limited_app):
    """It answers 429 once an address spent RATELIMIT_SIGN_IN, passkey attempts counted."""
    app = limited_app(passkey_origins=ORIGIN, ratelimit_sign_in="2 per minute")
    client = app.test_client()
    headers = csrf_header(client)
    statuses = [
        client.post("/passkeys/sign-in", json=SIGN_IN, headers=headers).status_code
        for _ in range(3)
    ]
    assert statuses == [422, 422, 429]


def test_a_process_loads_py_webauthn_at_its_first_ceremony_only(run_python):
    """A process that runs no ceremony (a command, a background one, a worker serving the other
    pages) pays nothing for py_webauthn: building the app and serving the sign-in page, which
    offers passkeys, load none of it; the first ceremony, a sign-in's options, loads it."""
    code = (
        "import re, sys; from {{ cookiecutter.package_name }} import create_app\n"
        "from {{ cookiecutter.package_name }}.extensions import db\n"
        "app = create_app()\n"
        "with app.app_context(): db.create_all()\n"
        "client = app.test_client()\n"
        "page = client.get('/sign-in').text\n"
        "print('id=\"passkey-sign-in\"' in page, 'webauthn' in sys.modules)\n"
        'token = re.search(\'name="csrf-token" content="([^"]+)"\', page).group(1)\n'
        "answer = client.post('/passkeys/sign-in/options', headers={'X-CSRFToken': token})\n"
        "print(answer.status_code, 'webauthn' in sys.modules)"
    )
    ran = run_python(
        "-c", code, APP_ENV="test", DATABASE_URL="sqlite:///app.db", PASSKEY_ORIGINS=ORIGIN
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    printed = [line for line in ran.stdout.splitlines() if not line.startswith("{")]  # no log
    assert printed == ["True False", "200 True"], ran.stdout
