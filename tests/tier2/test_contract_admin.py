"""Tier 2: schemathesis fuzzes the admins' routes (/api/admin/) with an admin's token, so their
views are reached, as the other routes' are with a user's (test_contract.py): zero server errors
and zero conformance failures there too. The fuzzing may deactivate, demote or end the sessions
of any user, so this module has a deployment of its own (it shares none).
"""

from __future__ import annotations

from types import SimpleNamespace

from .test_admin import new_user
from .test_contract import fuzz, service_env, statuses
from .test_served import each

__all__ = ["service_env"]  # the mail server's settings: a reset link is mailed, never a 503


@each("use_auth")
def test_the_admins_routes_keep_their_contract_under_an_admins_fuzzing(deployment):
    """`make contract` as an admin made by `flask users create --admin`, on /api/admin/ only:
    the views answer (200), refuse ids no user has (404) and malformed queries (422)."""
    email, password, _ = new_user(deployment, admin=True)
    since = deployment.service.mark()
    options = "--include-path-regex ^/api/admin/"
    admin = SimpleNamespace(email=email, password=password)
    run = fuzz(deployment, deployment.service.url, options=options, account=admin)
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    seen = statuses(deployment, deployment.service, since)
    assert {200, 404, 422} <= seen.keys(), seen
    assert not any(status >= 500 for status in seen), seen
