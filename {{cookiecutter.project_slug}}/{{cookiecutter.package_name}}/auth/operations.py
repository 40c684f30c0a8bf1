"""What the token API answers, route by route, and how its routes are authenticated."""

from ..platform.operations import Operation, Security
from .api import NOT_AN_ADMIN, SECURITY_SCHEMES, TokenIn, TokenOut, admins_only, needs_token

OPERATIONS = {
    "auth.sign_in": Operation(
        {"201": ("A new token.", TokenOut, ("Cache-Control",))},
        ("400", "401", "413", "415", "422", "503"),
        body=TokenIn,
    ),
    "auth.sign_out": Operation({"204": ("The token is ended.", None, ())}, ("503",), media_type=""),
}
SECURITY = Security(SECURITY_SCHEMES, needs_token, admins_only, NOT_AN_ADMIN)
