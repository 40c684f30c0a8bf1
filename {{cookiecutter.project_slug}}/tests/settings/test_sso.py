"""Single sign-on's settings: off unless an issuer is named; an issuer needs the client's id and
secret and PUBLIC_URL; https only (but for a provider on this machine); scopes with openid."""

import pytest

from {{ cookiecutter.package_name }}.settings import Settings, SettingsError, load_settings

REAL_SECRET = "a-real-secret-value-of-good-length"
ISSUER = "https://id.example.com/realms/staff"
CLIENT = {
    "oidc_client_id": "my-service",
    "oidc_client_secret": "a-client-secret",
    "public_url": "https://app.example.com",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Start each test from an empty environment in an empty directory."""
    for name in ("APP_ENV", "SECRET_KEY", "DATABASE_URL", "PUBLIC_URL", "OIDC_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def production(**overrides: object) -> Settings:
    """Load the settings as production would, with ``overrides``."""
    base = {"secret_key": REAL_SECRET, "database_url": "sqlite:////data/app.db"}
    return load_settings(Settings, {**base, **overrides})


def test_single_sign_on_is_off_until_an_issuer_is_named():
    """No issuer: nothing else is needed; the scopes ask for an ID token and an address."""
    settings = production()
    assert settings.oidc_issuer == ""
    assert settings.oidc_scopes == "openid email profile"
    assert settings.oidc_sign_up is False


def test_an_issuer_is_kept_as_given():
    """The issuer is compared with each ID token's, so a trailing slash stays."""
    assert production(oidc_issuer=ISSUER + "/", **CLIENT).oidc_issuer == ISSUER + "/"
    local = production(oidc_issuer="http://localhost:9400", **CLIENT)
    assert local.oidc_issuer == "http://localhost:9400"


@pytest.mark.parametrize(
    "issuer",
    [
        "http://id.example.com",  # plain HTTP to another machine: a token could be swapped
        "id.example.com",
        "https://",
        "https://id.example.com/?tenant=a",
        "ftp://id.example.com",
    ],
)
def test_an_issuer_that_is_not_an_https_url_is_refused(issuer):
    """Each is refused in one line naming OIDC_ISSUER and what an issuer looks like."""
    with pytest.raises(SettingsError, match=r"OIDC_ISSUER=.*an issuer is the provider's https://"):
        production(oidc_issuer=issuer, **CLIENT)


@pytest.mark.parametrize("missing", ["oidc_client_id", "oidc_client_secret", "public_url"])
def test_an_issuer_needs_the_client_and_the_public_url(missing):
    """Without the client's id, its secret or PUBLIC_URL, start is refused naming it."""
    given = {**CLIENT, missing: ""}
    with pytest.raises(SettingsError, match=f"{missing.upper()} not set; OIDC_ISSUER needs"):
        production(oidc_issuer=ISSUER, **given)


def test_scopes_without_openid_are_refused():
    """An OAuth sign-in without an ID token would say nothing of who signed in."""
    with pytest.raises(SettingsError, match=r"OIDC_SCOPES=.*must include openid"):
        production(oidc_scopes="email profile")
    assert production(oidc_scopes="  openid   email ").oidc_scopes == "openid email"


def test_the_client_secret_is_never_shown():
    """A refusal hides the client secret."""
    with pytest.raises(SettingsError) as refused:
        production(oidc_issuer="http://id.example.com", **{**CLIENT, "oidc_name": ""})
    assert "a-client-secret" not in str(refused.value)
    assert "OIDC_NAME" in str(refused.value)
