"""Single sign-on (auth/sso.py, auth/sso_pages.py): the Authorization Code flow with PKCE, state
and nonce against a provider played by ``responses`` (its discovery document, its keys, and a
token endpoint answering ID tokens signed here with joserfc, the JOSE library Authlib verifies
them with). Each refusal the issue names gets its token or answer, and each is refused with one
log line and no account changed."""

import base64
import hashlib
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import RSAKey
from markupsafe import escape
from sqlalchemy import func, select

from {{ cookiecutter.package_name }}.auth import sso
from {{ cookiecutter.package_name }}.auth.accounts import User
from {{ cookiecutter.package_name }}.auth.passkeys import Passkey
from {{ cookiecutter.package_name }}.auth.sso import CANCELLED, FAILED, UNREACHABLE, Identity
from {{ cookiecutter.package_name }}.auth.sso_pages import WRONG_PASSWORD
from {{ cookiecutter.package_name }}.extensions import db
from tests.auth.test_api import EMAIL, PASSWORD, add_user
from tests.auth.test_pages import form_token, shows_the_form, sign_in
from tests.auth.test_passkeys import ORIGIN, store_passkey

ISSUER = "https://id.example.com/realms/staff"
CLIENT_ID = "my-service"
SUBJECT = "248289761001"
SETTINGS = {
    "oidc_issuer": ISSUER,
    "oidc_client_id": CLIENT_ID,
    "oidc_client_secret": "a-client-secret",
    "oidc_name": "Staff ID",
    "public_url": "https://app.example.com",
}
ENVIRONMENT = {name.upper(): str(value) for name, value in SETTINGS.items()}
KEY = RSAKey.generate_key(2048, parameters={"kid": "provider-key"}, private=True)
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "provider-key"}, private=True)
REFUSED = "single sign-on refused"


class Provider:
    """The provider the app speaks to: discovery, keys and a token endpoint on ``responses``,
    whose next ID token's claims a test may change (``claims``), or whose key (``key``)."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        """Serve discovery and keys; the token endpoint answers what the test asks."""
        self.claims: dict[str, object] = {}
        self.key = KEY
        self.id_token: str | None = None  # a whole ID token, or None: made from claims
        self.issuer = ISSUER
        self.verifiers: list[str] = []
        mock.add_callback(
            responses.GET, ISSUER + "/.well-known/openid-configuration", callback=self.discovery
        )
        mock.add(responses.GET, ISSUER + "/keys", json={"keys": [KEY.as_dict(private=False)]})
        mock.add_callback(responses.POST, ISSUER + "/token", callback=self.token)
        self.nonce = ""

    def discovery(self, request):
        """Answer the discovery document (its issuer may be changed by a test)."""
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": ISSUER + "/authorize",
            "token_endpoint": ISSUER + "/token",
            "jwks_uri": ISSUER + "/keys",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(document)

    def token(self, request):
        """Answer the code's tokens, keeping the PKCE verifier sent."""
        form = parse_qs(request.body)
        self.verifiers.extend(form.get("code_verifier", []))
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": SUBJECT,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce,
            "email": EMAIL,
            "email_verified": True,
            **self.claims,
        }
        claims = {name: value for name, value in claims.items() if value is not None}
        id_token = self.id_token or jwt.encode(
            {"alg": "RS256", "kid": "provider-key"}, claims, self.key
        )
        body = {"access_token": "an-access-token", "token_type": "Bearer", "id_token": id_token}
        if self.claims.get("no_id_token"):
            del body["id_token"]
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


@pytest.fixture
def provider():
    """Return the provider, serving while the test runs."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield Provider(mock)


@pytest.fixture
def sso_app(make_app):
    """Return a function building an app offering single sign-on with the provider."""

    def make(**overrides):
        return make_app(**{**SETTINGS, **overrides})

    return make


def begin(client, provider: Provider) -> dict[str, str]:
    """Start the flow; return the authorization request's parameters (the nonce kept)."""
    answer = client.get("/sign-in/sso")
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == ISSUER + "/authorize"
    params = {name: values[0] for name, values in parse_qs(location.query).items()}
    provider.nonce = params["nonce"]
    return params


def come_back(client, params: dict[str, str], **extra: str):
    """Come back from the provider with a code and the request's state; return the answer."""
    query = {"code": "a-code", "state": params["state"], **extra}
    return client.get("/sign-in/sso/callback", query_string=query)


def sign_in_with_provider(client, provider: Provider):
    """Go through the whole flow; return the callback's answer."""
    return come_back(client, begin(client, provider))


def counts(app) -> tuple[int, int]:
    """Return how many users and identities are stored."""
    with app.app_context():
        users = db.session.execute(select(func.count()).select_from(User)).scalar_one()
        identities = db.session.execute(select(func.count()).select_from(Identity)).scalar_one()
        return users, identities


def lands_on_sign_in(client, answer, sentence: str) -> None:
    """Check that ``answer`` sends the browser to the sign-in page, which shows ``sentence``."""
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/sign-in")
    assert str(escape(sentence)) in client.get("/sign-in").text
    assert not shows_the_form(client)


def log_lines(capsys) -> list[dict[str, object]]:
    """Return the JSON log lines written since the last call (the app was built after capsys
    began capturing, so its log handler writes into the capture)."""
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def refusals(capsys) -> list[object]:
    """Return the reasons of the refusals logged since the last call."""
    return [line["reason"] for line in log_lines(capsys) if line["message"] == REFUSED]


def test_nothing_of_it_is_served_without_an_issuer(app):
    """Unset: no button, no route."""
    client = app.test_client()
    assert "Sign in with" not in client.get("/sign-in").text
    assert client.get("/sign-in/sso").status_code == 404
    assert client.get("/sign-in/sso/callback").status_code == 404


def test_a_process_without_a_provider_never_loads_authlib(run_python):
    """A process with no OIDC_ISSUER (a command, a background one) pays nothing for it: an app
    built without one loads neither library, one built after the provider is set loads both."""
    code = (
        "import json, os, sys; from {{ cookiecutter.package_name }} import create_app\n"
        "for environment in (dict(), json.loads(sys.argv[1])):\n"
        "    os.environ.update(environment); create_app()\n"
        "    print(sorted(m for m in ('authlib', 'joserfc') if m in sys.modules))"
    )
    ran = run_python("-c", code, json.dumps(ENVIRONMENT), APP_ENV="test")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    printed = [line for line in ran.stdout.splitlines() if not line.startswith("{")]  # no log
    assert printed == ["[]", "['authlib', 'joserfc']"], ran.stdout


def test_the_button_starts_the_code_flow_with_pkce_state_and_nonce(sso_app, provider):
    """The sign-in page links to the flow; the provider is asked for a code, with a PKCE
    challenge (S256), a state and a nonce, and the redirect URI made of PUBLIC_URL."""
    client = sso_app().test_client()
    page = client.get("/sign-in").text
    assert 'id="sso-sign-in" href="/sign-in/sso">Sign in with Staff ID</a>' in page
    params = begin(client, provider)
    assert params["response_type"] == "code" and params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == "https://app.example.com/sign-in/sso/callback"
    assert params["scope"] == "openid email profile"
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 20 and len(params["nonce"]) >= 20
    assert come_back(client, params).status_code == 303
    verifier = provider.verifiers[-1]  # the token request proves the challenge was its own
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert challenge.rstrip(b"=").decode() == params["code_challenge"]


def test_a_first_sign_in_makes_an_account_when_the_providers_users_may_sign_up(
    sso_app, provider, capsys
):
    """With OIDC_SIGN_UP: a new account of the address, confirmed, with no password, signed in
    in a renewed session; the identity stored holds no token, and no log line does."""
    app = sso_app(oidc_sign_up=True)
    client = app.test_client()
    with client.session_transaction() as session:
        session["before"] = "kept?"
    # A "next" the answer carries is no way out of the site: the items page follows, always.
    answer = come_back(client, begin(client, provider), next="https://evil.example/")
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    assert shows_the_form(client)
    with client.session_transaction() as session:
        assert "before" not in session  # a new session
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        identity = db.session.scalars(select(Identity)).one()
        assert user.email == EMAIL and user.email_verified_at is not None
        assert user.password_hash is None
        assert (identity.user_id, identity.issuer, identity.subject) == (user.id, ISSUER, SUBJECT)
    logged = json.dumps(log_lines(capsys))
    assert '"signed_in"' in logged
    assert "an-access-token" not in logged and "eyJ" not in logged and "a-code" not in logged


def test_no_secret_of_the_flow_is_logged_even_at_debug(sso_app, provider, capsys):
    """With LOG_LEVEL=DEBUG (make dev): neither the PKCE verifier, the code, nor a token."""
    client = sso_app(log_level="DEBUG", oidc_sign_up=True).test_client()
    assert sign_in_with_provider(client, provider).status_code == 303
    logged = capsys.readouterr().out + capsys.readouterr().err
    assert '"signed_in"' in logged
    for secret in (provider.verifiers[-1], "a-code", "an-access-token", "eyJ"):
        assert secret not in logged


def test_no_account_is_made_unless_the_providers_users_may_sign_up(sso_app, provider, capsys):
    """Without OIDC_SIGN_UP, an unknown address is refused with a sentence."""
    app = sso_app()
    client = app.test_client()
    answer = sign_in_with_provider(client, provider)
    lands_on_sign_in(client, answer, sso.NO_ACCOUNT)
    assert counts(app) == (0, 0)
    assert refusals(capsys) == ["no_account"]


def test_a_confirmed_account_is_linked_when_the_provider_confirmed_the_address(sso_app, provider):
    """The account of the address, confirmed here and there, is linked and signed in; the
    identity, not the address, signs it in from then on."""
    app = sso_app()
    user_id = add_user(app)
    client = app.test_client()
    assert sign_in_with_provider(client, provider).status_code == 303
    assert shows_the_form(client)
    provider.claims = {"email": "renamed@example.com"}
    other = app.test_client()
    assert sign_in_with_provider(other, provider).status_code == 303
    assert shows_the_form(other)
    with app.app_context():
        assert db.session.scalar(select(Identity.user_id)) == user_id


def test_an_unconfirmed_account_is_not_taken_through_the_provider(sso_app, provider, capsys):
    """An account whose address is not confirmed here (anyone may have made it) is refused,
    with the way to link it; nothing is linked."""
    app = sso_app(oidc_sign_up=True)
    add_user(app)
    with app.app_context():
        db.session.scalars(select(User)).one().email_verified_at = None
        db.session.commit()
    client = app.test_client()
    lands_on_sign_in(client, sign_in_with_provider(client, provider), sso.LINK_FROM_SECURITY)
    assert counts(app) == (1, 0)
    assert refusals(capsys) == ["unconfirmed_account"]


@pytest.mark.parametrize("verified", [False, None, "false"])
def test_an_address_the_provider_did_not_confirm_takes_nothing(sso_app, provider, verified):
    """Neither an existing account nor a new one is had with an unconfirmed address."""
    app = sso_app(oidc_sign_up=True)
    provider.claims = {"email_verified": verified}
    client = app.test_client()
    lands_on_sign_in(client, sign_in_with_provider(client, provider), sso.UNVERIFIED_THERE)
    add_user(app)
    client = app.test_client()
    lands_on_sign_in(client, sign_in_with_provider(client, provider), sso.UNVERIFIED_THERE)
    assert counts(app) == (1, 0)


@pytest.mark.parametrize(
    "email",
    [f" {EMAIL}", f"{EMAIL}\n", "\uff45" + EMAIL[1:], f"Me <{EMAIL}>", f"{EMAIL}, x@example.com"],
)
def test_an_address_in_another_form_than_its_own_takes_nothing(sso_app, provider, email):
    """An address normalised() would change (blanks, a compatibility character) or refuse (a
    name, a list) names no account here: the provider confirmed that string, not another."""
    app = sso_app(oidc_sign_up=True)
    add_user(app)
    provider.claims = {"email": email}
    client = app.test_client()
    lands_on_sign_in(client, sign_in_with_provider(client, provider), sso.NO_ADDRESS)
    assert counts(app) == (1, 0)


@pytest.mark.parametrize("subject", ["", "  ", "s\u00fcb", "x" * 256, "line\nbreak"])
def test_a_subject_unfit_to_store_is_refused(sso_app, provider, subject):
    """OpenID Connect's subject is up to 255 ASCII characters: anything else is refused."""
    app = sso_app(oidc_sign_up=True)
    provider.claims = {"sub": subject}
    client = app.test_client()
    lands_on_sign_in(client, sign_in_with_provider(client, provider), sso.NO_ADDRESS)
    assert counts(app) == (0, 0)


def test_a_second_identity_of_an_accounts_address_is_not_linked(sso_app, provider, capsys):
    """An account linked to one identity at the provider is not taken by another identity of
    the same address (one the provider gave anew to someone else, say)."""
    app = sso_app()
    add_user(app)
    assert sign_in_with_provider(app.test_client(), provider).status_code == 303
    provider.claims = {"sub": "another-subject"}
    client = app.test_client()
    capsys.readouterr()
    lands_on_sign_in(client, sign_in_with_provider(client, provider), sso.ALREADY_THERE)
    assert refusals(capsys) == ["another_identity"]
    assert counts(app) == (1, 1)


def test_a_deactivated_account_is_not_signed_in(sso_app, provider, capsys):
    """Deactivated, linked or not: refused."""
    app = sso_app()
    add_user(app, active=False)
    client = app.test_client()
    lands_on_sign_in(client, sign_in_with_provider(client, provider), sso.INACTIVE)
    assert refusals(capsys) == ["inactive"]


def forged_state(client, provider):
    """A state this session never sent."""
    params = begin(client, provider)
    return come_back(client, {**params, "state": "forged-state-value-0123456789"})


def replayed_state(client, provider):
    """The same answer twice (the first signs in; the second finds its state spent)."""
    params = begin(client, provider)
    assert come_back(client, params).status_code == 303
    client.post("/sign-out", data={"csrf_token": form_token(client.get("/").text)})
    return come_back(client, params)


def token_with(**claims):
    """An ID token with these claims changed (None: left out)."""

    def answer(client, provider):
        provider.claims = claims
        return sign_in_with_provider(client, provider)

    return answer


def signed_by_another_key(client, provider):
    """An ID token signed by a key the provider's JWKS does not hold."""
    provider.key = OTHER_KEY
    return sign_in_with_provider(client, provider)


def discovery_of_another_issuer(client, provider):
    """A discovery document and a token naming an issuer other than OIDC_ISSUER."""
    provider.issuer = "https://attacker.example"
    provider.claims = {"iss": "https://attacker.example"}
    return sign_in_with_provider(client, provider)


def unsigned_token(client, provider):
    """An ID token with no signature (alg none)."""
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(b'{"iss":"x"}').rstrip(b"=").decode()
    provider.id_token = f"{header}.{body}."
    return sign_in_with_provider(client, provider)


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        pytest.param(forged_state, "MismatchingStateError", id="forged-state"),
        pytest.param(replayed_state, "MismatchingStateError", id="replayed-state"),
        pytest.param(token_with(nonce=None), "MissingClaimError", id="no-nonce"),
        pytest.param(token_with(nonce="another"), "InvalidClaimError", id="wrong-nonce"),
        pytest.param(token_with(aud="another-client"), "MissingClaimError", id="other-audience"),
        pytest.param(
            token_with(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
            "ExpiredTokenError",
            id="expired",
        ),
        pytest.param(token_with(iss="https://attacker.example"), "InvalidClaimError", id="iss"),
        pytest.param(signed_by_another_key, "BadSignatureError", id="unknown-key"),
        pytest.param(discovery_of_another_issuer, "InvalidClaimError", id="discovered-iss"),
        pytest.param(unsigned_token, None, id="unsigned"),
        pytest.param(token_with(no_id_token=True), "no_id_token", id="no-id-token"),
    ],
)
def test_a_forged_or_stale_answer_is_refused(sso_app, provider, capsys, attack, reason):
    """Each is refused with one log line naming why, lands on the sign-in page with a
    sentence, and makes, links and signs in nothing."""
    app = sso_app(oidc_sign_up=True)
    client = app.test_client()
    before = counts(app)
    capsys.readouterr()
    answer = attack(client, provider)
    lands_on_sign_in(client, answer, FAILED)
    logged = refusals(capsys)
    assert len(logged) == 1 and (reason is None or logged == [reason]), logged
    assert counts(app) == (before if attack is not replayed_state else (1, 1))


@pytest.mark.parametrize(
    "query",
    [
        {"error": "access_denied", "error_description": "The user said no"},
        {"error": "x" * 5000},
        {},
        {"code": "a-code"},
        {"state": "only-a-state"},
    ],
)
def test_an_error_or_a_bare_answer_lands_on_the_sign_in_page(sso_app, provider, query):
    """The provider's error, or an answer without a code or a state: a sentence, never a 500."""
    client = sso_app().test_client()
    begin(client, provider)
    answer = client.get("/sign-in/sso/callback", query_string=query)
    sentence = CANCELLED if "error" in query else FAILED
    lands_on_sign_in(client, answer, sentence)


def test_an_unreachable_provider_is_said_so(sso_app):
    """Discovery failing (nothing answers): the sign-in page says so."""
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, ISSUER + "/.well-known/openid-configuration", status=503)
        client = sso_app().test_client()
        lands_on_sign_in(client, client.get("/sign-in/sso"), UNREACHABLE)


def test_the_callback_is_limited_as_sign_in_is(sso_app, provider, limited_app):
    """Past RATELIMIT_SIGN_IN from one address, the answer is 429 (the sign-in form's count)."""
    app = limited_app(**SETTINGS, ratelimit_sign_in="2 per minute")
    client = app.test_client()
    statuses = [client.get("/sign-in/sso/callback").status_code for _ in range(3)]
    assert statuses == [303, 303, 429]


@pytest.mark.parametrize("path", ["/security/sso/link", "/security/sso/unlink"])
def test_linking_and_unlinking_need_a_signed_in_user(sso_app, path):
    """Anyone not signed in is sent to the sign-in form, and nothing is linked."""
    client = sso_app().test_client()
    token = form_token(client.get("/sign-in").text)
    answer = client.post(path, data={"password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/sign-in")
    with client.session_transaction() as session:
        assert "sso_linking" not in session


def test_a_signed_in_user_links_the_provider_with_the_password(sso_app, provider, capsys):
    """From the security page: a wrong password links nothing; the right one lets the next
    answer link the identity to this account, which then signs it in."""
    app = sso_app()
    user_id = add_user(app, email="me@example.com")
    client = app.test_client()
    assert sign_in(client, "me@example.com", PASSWORD).status_code == 303
    page = client.get("/security").text
    assert 'id="sso-unlinked"' in page
    token = form_token(page)
    answer = client.post(
        "/security/sso/link", data={"password": "wrong-password", "csrf_token": token}
    )
    assert answer.status_code == 303
    page = client.get("/security").text
    assert str(escape(WRONG_PASSWORD)) in page and 'id="sso-continue"' not in page
    client.post("/security/sso/link", data={"password": PASSWORD, "csrf_token": token})
    assert 'href="/sign-in/sso">continue to Staff ID</a>' in client.get("/security").text
    assert sign_in_with_provider(client, provider).headers["Location"].endswith("/security")
    assert 'id="sso-linked"' in client.get("/security").text
    with app.app_context():
        assert db.session.scalar(select(Identity.user_id)) == user_id
    other = app.test_client()
    assert sign_in_with_provider(other, provider).status_code == 303
    assert shows_the_form(other)


def test_an_identity_linked_to_another_account_is_not_linked_again(sso_app, provider):
    """The identity of another account is refused on the security page."""
    app = sso_app()
    add_user(app)  # EMAIL: the provider's address, linked at its first sign-in
    sign_in_with_provider(app.test_client(), provider)
    add_user(app, email="me@example.com")
    client = app.test_client()
    sign_in(client, "me@example.com", PASSWORD)
    token = form_token(client.get("/security").text)
    client.post("/security/sso/link", data={"password": PASSWORD, "csrf_token": token})
    assert sign_in_with_provider(client, provider).headers["Location"].endswith("/security")
    assert "linked to another account" in client.get("/security").text
    assert counts(app)[1] == 1


def test_the_last_way_in_is_not_unlinked(sso_app, provider):
    """An account the provider made has no password: unlinking is refused until it has one;
    an account with a password unlinks."""
    app = sso_app(oidc_sign_up=True)
    client = app.test_client()
    sign_in_with_provider(client, provider)
    token = form_token(client.get("/security").text)
    client.post("/security/sso/unlink", data={"csrf_token": token})
    assert "last way into your account" in client.get("/security").text
    assert counts(app) == (1, 1)
    with app.app_context():
        db.session.scalars(select(User)).one().password_hash = "$argon2id$v=19$m=19456,t=2,p=1$x$y"
        db.session.commit()
    client.post("/security/sso/unlink", data={"csrf_token": token})
    assert 'id="sso-unlinked"' in client.get("/security").text
    assert counts(app) == (1, 0)


def test_the_last_passkey_of_an_account_without_a_password_stays(sso_app, provider):
    """An account the provider made, with a passkey: the provider unlinks (the passkey signs
    in), and then the passkey, its last way in, is not removed."""
    app = sso_app(oidc_sign_up=True, passkey_origins=ORIGIN)
    client = app.test_client()
    sign_in_with_provider(client, provider)
    passkey_id = store_passkey(app, EMAIL)
    client.post(
        "/security/sso/unlink", data={"csrf_token": form_token(client.get("/security").text)}
    )
    assert counts(app) == (1, 0)
    token = form_token(client.get("/passkeys").text)
    client.post(f"/passkeys/{passkey_id}/remove", data={"csrf_token": token})
    assert "last way into your account" in client.get("/passkeys").text
    with app.app_context():
        assert db.session.get(Passkey, passkey_id) is not None


def test_an_account_without_a_password_is_not_signed_in_by_one(sso_app, provider):
    """No password matches an account the provider made (its check takes as long as a wrong
    password's); a reset link gives it one."""
    app = sso_app(oidc_sign_up=True)
    sign_in_with_provider(app.test_client(), provider)
    client = app.test_client()
    assert sign_in(client, EMAIL, "any-password-at-all").status_code == 422
    with app.app_context():
        from {{ cookiecutter.package_name }}.auth import recovery

        user = db.session.scalars(select(User).where(User.email == EMAIL)).one()
        token = recovery.reset_token(user)
        assert recovery.reset_password(token, PASSWORD) == EMAIL
    assert sign_in(client, EMAIL, PASSWORD).status_code == 303


def test_a_provider_sign_in_is_not_held_back_for_a_second_factor(sso_app, provider):
    """AUTH_REQUIRE_SECOND_FACTOR asks it of password sign-ins; the provider's own rules hold
    for its sign-ins."""
    app = sso_app(auth_require_second_factor=True)
    add_user(app)
    client = app.test_client()
    sign_in_with_provider(client, provider)
    assert client.get("/").status_code == 200
