"""Notices mailed to an account's owner when its way in changes: its second factor turned on or
off, one of its recovery codes used. Each says what happened and what to do if it was not them.
They go only when the service sends mail (MAIL_URL set), once the change is committed; a failed
delivery is logged (platform/mail.py) and undoes nothing.
"""

from flask import Flask, current_app

from ..platform import mail
from .accounts import User, user_by_email

# A notice's job name (platform/mail.py), its subject, and what happened, for its sentence.
NOTICES = {
    "second_factor_on": (
        "Second factor turned on",
        "A second factor (an authenticator app) was turned on for your account",
    ),
    "second_factor_off": (
        "Second factor turned off",
        "The second factor of your account was turned off",
    ),
    "recovery_code_used": (
        "A recovery code was used",
        "One of your account's recovery codes was used; your other sessions were ended",
    ),
}


def notify(user: User, kind: str) -> None:
    """Mail ``user`` the notice ``kind`` (a key of NOTICES) when the service sends mail."""
    if mail.is_on(current_app):
        mail.send_later(kind, user.email)


def notice_job(kind: str) -> mail.Job:
    """Return the mail job of the notice ``kind``: a message to the active account with the
    address, else none."""
    subject, happened = NOTICES[kind]

    def job(address: str) -> mail.Envelope | None:
        user = user_by_email(address)
        if user is None or not user.is_active:
            return None
        message = mail.message(address, subject, "security_notice", happened=happened)
        return mail.Envelope(address, message)

    return job


def init_app(app: Flask) -> None:
    """Register the notices' mail jobs."""
    for kind in NOTICES:
        mail.register(app, kind, notice_job(kind))
