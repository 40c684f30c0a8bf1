"""The WebAuthn side of the passkey ceremonies, through py_webauthn: the options the browser's
authenticator answers, and the checks of its answers (challenge, origin, relying party, user
verification, signature).

auth/passkey_pages.py imports this module at a process's first ceremony, so that a process that
runs none (a command, a background worker, a web worker before its first passkey request) never
loads py_webauthn and the certificate and ASN.1 libraries it brings.
"""

from typing import Any, NamedTuple

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

REQUIRED = UserVerificationRequirement.REQUIRED  # the authenticator checks who holds it


class Refused(Exception):
    """An authenticator's answer a ceremony refused; the message says why."""


class NewPasskey(NamedTuple):
    """What a verified registration gives to store."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    backup_eligible: bool
    backed_up: bool


def creation_options(
    rp_id: str, user_name: str, handle: bytes, challenge: bytes, kept: list[bytes]
) -> str:
    """Return, as the JSON the browser's WebAuthn API takes, the options to add a passkey: a
    discoverable credential, user verified, none of the ``kept`` credentials again."""
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=rp_id,
        user_name=user_name,
        user_id=handle,
        challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=REQUIRED
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=kept_id) for kept_id in kept],
    )
    return options_to_json(options)


def verified_registration(
    credential: dict[str, Any], challenge: bytes, rp_id: str, origins: list[str]
) -> NewPasskey:
    """Return the new passkey the authenticator's answer holds; Refused, saying why, unless it
    answers this challenge, for this relying party and origin, with the user verified."""
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise Refused(str(exc)) from exc
    return NewPasskey(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
    )


def request_options(rp_id: str, challenge: bytes) -> str:
    """Return, as the JSON the browser's WebAuthn API takes, the options to sign in: no
    credentials listed (the browser offers the passkeys it holds for this site), user verified."""
    options = generate_authentication_options(
        rp_id=rp_id, challenge=challenge, user_verification=REQUIRED
    )
    return options_to_json(options)


def parsed_assertion(body: object) -> AuthenticationCredential:
    """Return the sign-in answer a request's JSON holds; Refused if it holds none."""
    if not isinstance(body, dict):
        raise Refused("Expected a JSON object with the authenticator's answer.")
    try:
        return parse_authentication_credential_json(body)
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise Refused(str(exc)) from exc


def verified_assertion(
    credential: AuthenticationCredential,
    challenge: bytes,
    rp_id: str,
    origins: list[str],
    public_key: bytes,
    sign_count: int,
) -> tuple[int, bool]:
    """Return the passkey's new sign count and whether it is backed up; Refused unless the answer
    signs this challenge with this public key, for this relying party and origin, user verified."""
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except WebAuthnException as exc:
        raise Refused(str(exc)) from exc
    return verified.new_sign_count, verified.credential_backed_up
