"""Rotating SECRET_KEY (docs/auth.md#rotating-secret_key): with the old key in
SECRET_KEY_FALLBACKS, what it signed (mailed links, and the pages' session cookie where there
are pages) and encrypted (the second factors' secrets) is still read, the new key signs and
encrypts, and `flask users mfa-rekey` moves every stored secret to the new key; without the
fallback, nothing old is read."""

import pytest
from itsdangerous import BadSignature
from sqlalchemy import select

from {{ cookiecutter.package_name }}.auth import recovery, second_factor, sign_up
{%- if cookiecutter.use_frontend == "yes" %}
from {{ cookiecutter.package_name }}.auth.pages import SIGN_IN_AS
{%- endif %}
from {{ cookiecutter.package_name }}.auth.second_factor import SecondFactor
from {{ cookiecutter.package_name }}.extensions import db
from tests.auth.test_accounts import add_user
from tests.auth.test_cli import users
from tests.auth.test_second_factor import NOW, STEP, code_at, enabled_user, readable

NEW_KEY = "a-new-secret-key-after-the-rotation-0123456789"


@pytest.mark.parametrize("signer", [recovery.serializer, sign_up.serializer])
def test_a_link_signed_before_the_rotation_is_still_read(app, make_app, signer):
    """A link's token the old key signed verifies with the old key in SECRET_KEY_FALLBACKS, and
    with only the new key it does not; the new key signs new tokens."""
    with app.app_context():
        old_token = signer().dumps(["before"])
    old_key = app.extensions["settings"].secret_key.get_secret_value()
    rotated = make_app(secret_key=NEW_KEY, secret_key_fallbacks=old_key)
    with rotated.app_context():
        assert signer().loads(old_token) == ["before"]
        new_token = signer().dumps(["after"])
    with make_app(secret_key=NEW_KEY).app_context():
        with pytest.raises(BadSignature):
            signer().loads(old_token)
        assert signer().loads(new_token) == ["after"]


def test_mfa_rekey_moves_the_secrets_to_the_new_key(app, make_app):
    """With the old key a fallback, a secret it encrypted is read and takes codes; `flask users
    mfa-rekey` encrypts it with the new key alone, and counts what no key reads."""
    old_key = app.extensions["settings"].secret_key.get_secret_value()
    with app.app_context():
        _, secret, _ = enabled_user(NOW - 10 * STEP)
        stored = db.session.scalars(select(SecondFactor)).one().secret
        db.session.remove()
    rotated = make_app(secret_key=NEW_KEY, secret_key_fallbacks=old_key)
    with rotated.app_context():  # make_app empties the tables: the row again, as deployed
        user = add_user()
        db.session.add(SecondFactor(user_id=user.id, secret=stored, enabled_at=NOW))
        other = add_user("grace@example.com")
        db.session.add(SecondFactor(user_id=other.id, secret="not a Fernet token", enabled_at=NOW))
        db.session.commit()
        assert readable(user) == secret
        assert second_factor.take_code(user, code_at(secret, NOW), NOW)
        user_id = user.id
        db.session.remove()
    result = users(rotated, "mfa-rekey")
    assert result.exit_code == 0, result.output
    assert "Encrypted 1 second factors with SECRET_KEY; 1 no key reads." in result.output
    with rotated.app_context():
        rekeyed = db.session.get(SecondFactor, user_id)
        assert rekeyed is not None and rekeyed.secret != stored
        assert second_factor.fernet(NEW_KEY).decrypt(rekeyed.secret.encode()).decode() == secret
        db.session.remove()
{%- if cookiecutter.use_frontend == "yes" %}


def test_a_session_signed_before_the_rotation_is_still_read(app, make_app):
    """A session cookie the old key signed is read with the old key in SECRET_KEY_FALLBACKS (the
    sign-in form shows the address it holds), and not with only the new key."""
    signer = app.session_interface.get_signing_serializer(app)
    assert signer is not None
    cookie = signer.dumps({SIGN_IN_AS: "kept@example.com"})
    old_key = app.extensions["settings"].secret_key.get_secret_value()
    for fallbacks, kept in ((old_key, True), ("", False)):
        client = make_app(secret_key=NEW_KEY, secret_key_fallbacks=fallbacks).test_client()
        client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
        assert ('value="kept@example.com"' in client.get("/sign-in").text) is kept
{%- endif %}
