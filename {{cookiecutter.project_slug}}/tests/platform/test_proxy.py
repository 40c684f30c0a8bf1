"""Behind nginx the app trusts exactly TRUSTED_PROXIES proxy hops (one by default)."""

import pytest
from flask import request

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.settings import SettingsError

FORWARDED = {
    "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "api.example.com",
}


def _seen(app) -> dict:
    """Return the scheme, host and client address the app sees for a forwarded request."""

    @app.get("/whoami")
    def whoami():
        return {"scheme": request.scheme, "host": request.host, "remote": request.remote_addr}

    return app.test_client().get("/whoami", headers=FORWARDED).json


def test_one_forwarded_hop_is_trusted_by_default(make_app):
    """It takes scheme, host and client address from the nearest proxy only."""
    seen = _seen(make_app())
    assert seen == {"scheme": "https", "host": "api.example.com", "remote": "198.51.100.7"}


def test_two_hops_take_the_address_the_outer_proxy_saw(make_app):
    """It takes the client address one hop further out with TRUSTED_PROXIES=2."""
    assert _seen(make_app(trusted_proxies=2))["remote"] == "203.0.113.9"


def test_no_trusted_proxy_ignores_forwarded_headers(make_app):
    """It ignores every X-Forwarded-* header with TRUSTED_PROXIES=0."""
    seen = _seen(make_app(trusted_proxies=0))
    assert seen == {"scheme": "http", "host": "localhost", "remote": "127.0.0.1"}


@pytest.mark.parametrize("value", [-1, 11])
def test_trusted_proxies_out_of_range_is_refused(settings_overrides, value):
    """It refuses a negative or absurd number of hops."""
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        create_app({**settings_overrides, "trusted_proxies": value})
