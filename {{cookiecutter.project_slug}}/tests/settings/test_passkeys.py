"""Passkey settings: origins and a relying party id that fit together, https in production."""

import pytest

from {{ cookiecutter.package_name }}.settings import Settings, SettingsError, load_settings

REAL_SECRET = "a-real-secret-value-of-good-length"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Start each test from an empty environment in an empty directory."""
    for name in ("APP_ENV", "SECRET_KEY", "DATABASE_URL", "PASSKEY_ORIGINS", "PASSKEY_RP_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def production(**overrides: object) -> Settings:
    """Load the settings as production would, with ``overrides``."""
    base = {"secret_key": REAL_SECRET, "database_url": "sqlite:////data/app.db"}
    return load_settings(Settings, {**base, **overrides})


def test_the_relying_party_is_the_first_origins_host_unless_named():
    """It takes the first origin's host name as the relying party id, or the one named."""
    assert production(passkey_origins="https://App.example:8443/").passkey_rp_id == "app.example"
    origins = "https://a.example,https://b.a.example"
    named = production(passkey_origins=origins, passkey_rp_id="a.example")
    assert named.passkey_rp_id == "a.example"


def test_no_origins_offer_no_passkeys():
    """It starts without origins (no passkeys), production included."""
    assert production().passkey_origins == ""


@pytest.mark.parametrize(
    ("origins", "allowed"),
    [
        ("http://app.example", False),
        ("https://app.example,http://app.example", False),
        ("http://localhost:8000", True),  # a secure context to browsers: a local trial
        ("https://app.example", True),
    ],
)
def test_production_refuses_a_plain_http_origin(origins, allowed):
    """It refuses to start in production with an origin over plain HTTP, but localhost's."""
    if allowed:
        production(passkey_origins=origins)
        return
    with pytest.raises(SettingsError, match="production serves passkeys over https:// only"):
        production(passkey_origins=origins)


def test_development_takes_a_plain_http_origin():
    """It takes any http:// origin outside production (a development server on a LAN name)."""
    overrides = {"app_env": "development", "passkey_origins": "http://dev.lan:8000"}
    settings = load_settings(Settings, overrides)
    assert settings.passkey_rp_id == "dev.lan"


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        ({"passkey_origins": "https://127.0.0.1"}, "is not an origin"),
        ({"passkey_origins": "app.example"}, "is not an origin"),
        ({"passkey_origins": "https://app.example/path"}, "is not an origin"),
        ({"passkey_rp_id": "https://app.example"}, "expected a domain name"),
        ({"passkey_origins": "https://a.example", "passkey_rp_id": "b.example"}, "PASSKEY_RP_ID"),
        ({"passkey_origins": "https://a.example", "passkey_rp_id": "p.a.example"}, "PASSKEY_RP_ID"),
    ],
)
def test_origins_and_relying_party_that_do_not_fit_are_refused(overrides, refusal):
    """It refuses an origin that is no scheme and domain name, and a relying party id the
    origins are not within, in one line."""
    with pytest.raises(SettingsError, match=refusal) as caught:
        production(**overrides)
    assert "\n" not in str(caught.value)
