"""``flask users COMMAND EMAIL`` (``flask users --help`` lists them): manage users from a shell
(the web container's, in production). A password is read from standard input, never from the
command line (where ``ps`` and shell histories would show it).
"""

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from ..extensions import db
from ..platform.timestamps import utc_now
from . import second_factor
from .accounts import Role, User, checked_password, hasher, is_last_admin, normalised, revoke
from .audit import Action, record
{%- if cookiecutter.use_frontend == "yes" %}
from .passkeys import Passkey
{%- endif %}

users_cli = AppGroup(
    "users", help="Create, change and deactivate users; reset their second factors."
)


def read_password() -> str:
    """Read a password from standard input (prompted twice, unechoed, on a terminal)."""
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


def find_user(email: str) -> tuple[str, User | None]:
    """Return an address as stored and its user, if any; raise ClickException when invalid."""
    try:
        address = normalised(email)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return address, db.session.scalar(select(User).where(User.email == address))


def new_hash() -> str:
    """Return the hash of a password read from standard input; raise ClickException if unfit."""
    try:
        return hasher.hash(checked_password(read_password()))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@users_cli.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the user an admin.")
def create_user(email: str, admin: bool) -> None:
    """Create a user; the password is read from standard input, never from the command line."""
    address, user = find_user(email)
    if user is not None:
        raise click.ClickException(f"{address} exists (`flask users password` changes it)")
    role = Role.ADMIN if admin else Role.USER
    user = User(email=address, password_hash=new_hash(), email_verified_at=utc_now(), role=role)
    db.session.add(user)
    record(Action.USER_CREATED, user, detail=role.value)
    db.session.commit()
    click.echo(f"Created {role.value} {address} (id {user.id}).")


def existing_user(email: str) -> tuple[str, User]:
    """Return an address as stored and its user; raise ClickException when there is none."""
    address, user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user {address}")
    return address, user


def save_revoked(user: User, event: Action) -> None:
    """End the user's tokens and browser sessions, and save its change with its ``event``."""
    revoke(user)
    record(event, user)
    db.session.commit()


@users_cli.command("password")
@click.argument("email")
def change_password(email: str) -> None:
    """Set a user's password from standard input; its tokens and browser sessions end."""
    address, user = existing_user(email)
    user.password_hash = new_hash()
    save_revoked(user, Action.PASSWORD_CHANGED)
    click.echo(f"Changed the password of {address}; its tokens are revoked.")


def not_the_last_admin(address: str, user: User) -> None:
    """Raise ClickException when ``user`` is the only active admin (someone must stay one)."""
    if is_last_admin(user):
        raise click.ClickException(
            f"{address} is the last active admin: promote another user first"
        )


def save_role(address: str, user: User, role: Role, event: Action) -> None:
    """Give the user ``role``, save it with its ``event``, and say what the user is now."""
    user.role = role
    record(event, user)
    db.session.commit()
    click.echo(f"{address} is now {'an' if role is Role.ADMIN else 'a'} {role.value}.")


@users_cli.command("promote")
@click.argument("email")
def promote_user(email: str) -> None:
    """Make a user an admin; only a user whose address is confirmed (no one else may hold it)."""
    address, user = existing_user(email)
    if user.email_verified_at is None:
        raise click.ClickException(
            f"{address} is not confirmed: whoever signed it up may not own the address"
            " (its owner opens the mailed link first, or `flask users create --admin` makes a new"
            " user)"
        )
    save_role(address, user, Role.ADMIN, Action.USER_PROMOTED)


@users_cli.command("demote")
@click.argument("email")
def demote_user(email: str) -> None:
    """Make an admin a user again; never the last active admin."""
    address, user = existing_user(email)
    not_the_last_admin(address, user)
    save_role(address, user, Role.USER, Action.USER_DEMOTED)


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_user(email: str) -> None:
    """Deactivate a user: no sign-in any more, its tokens and browser sessions end; never the
    last active admin."""
    address, user = existing_user(email)
    not_the_last_admin(address, user)
    user.is_active = False
    save_revoked(user, Action.USER_DEACTIVATED)
    click.echo(f"Deactivated user {address}; its tokens are revoked.")


@users_cli.command("reactivate")
@click.argument("email")
def reactivate_user(email: str) -> None:
    """Let a deactivated user sign in again (its ended tokens and sessions stay ended)."""
    address, user = existing_user(email)
    if user.is_active:
        raise click.ClickException(f"{address} is active")
    user.is_active = True
    record(Action.USER_REACTIVATED, user)
    db.session.commit()
    click.echo(f"Reactivated user {address}: it may sign in again.")


@users_cli.command("mfa-reset")
@click.argument("email")
def reset_second_factor(email: str) -> None:
    """Turn a user's second factor off (a lost phone, no recovery code left): its recovery codes
    go and its tokens and browser sessions end; it signs in with its password alone until it
    sets the factor up again."""
    address, user = existing_user(email)
    if not second_factor.turn_off(user, detail="reset"):
        raise click.ClickException(f"{address} has no second factor")
    click.echo(f"Turned off the second factor of {address}; its tokens are revoked.")


@users_cli.command("mfa-rekey")
def rekey_second_factors() -> None:
    """Encrypt every second factor's secret again with SECRET_KEY's key, after a rotation
    (docs/auth.md): then the old key can leave SECRET_KEY_FALLBACKS."""
    rekeyed, unreadable = second_factor.rekey()
    click.echo(f"Encrypted {rekeyed} second factors with SECRET_KEY; {unreadable} no key reads.")
{%- if cookiecutter.use_frontend == "yes" %}


@users_cli.command("passkeys")
@click.argument("email")
def list_passkeys(email: str) -> None:
    """List a user's passkeys: id, name, when added and last used."""
    address, user = existing_user(email)
    passkeys = db.session.scalars(select(Passkey).where(Passkey.user_id == user.id)).all()
    for passkey in passkeys:
        used = f"{passkey.last_used_at:%Y-%m-%d %H:%M} UTC" if passkey.last_used_at else "never"
        added = f"{passkey.created_at:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{passkey.id}\t{passkey.name}\tadded {added}\tlast used {used}")
    if not passkeys:
        click.echo(f"{address} has no passkey.")


@users_cli.command("remove-passkey")
@click.argument("email")
@click.argument("passkey_id", type=int)
def remove_passkey(email: str, passkey_id: int) -> None:
    """Remove one of a user's passkeys (an id `flask users passkeys` lists): it signs in no more."""
    address, user = existing_user(email)
    passkey = db.session.get(Passkey, passkey_id)
    if passkey is None or passkey.user_id != user.id:
        raise click.ClickException(f"{address} has no passkey {passkey_id}")
    db.session.delete(passkey)
    record(Action.PASSKEY_REMOVED, user)
    db.session.commit()
    click.echo(f"Removed passkey {passkey_id} of {address}.")
{%- endif %}


def init_app(app: Flask) -> None:
    """Register the ``flask users`` commands."""
    app.cli.add_command(users_cli)
