"""``hfed console``: the analysts' web console beside this node, and its accounts."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from federation.cli.connect import F, config_file, config_for, node_options, target_of
from federation.cli.output import print_table

#: The console's account file, beside the node's configuration unless --users says otherwise.
USERS_FILE = "console-users.sqlite"
ROLES = ("analyst", "supervisor", "admin")


def users_path(
    users: Path | None, config_path: Path | None, devnet_dir: Path | None, member: str | None
) -> Path:
    """Where the console's accounts are kept."""
    if users is not None:
        return users
    return config_file(config_path, devnet_dir, member).resolve().parent / USERS_FILE


def users_option(command: F) -> F:
    """Add --users FILE (the console's account file)."""
    return click.option(
        "--users",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"The console's account file (default: {USERS_FILE} beside the node's config).",
    )(command)


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter("must be host:port", param_hint="--listen")
    return host.strip("[]"), int(port)


@click.group(invoke_without_command=True)
@node_options
@users_option
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    help="Address to serve on (keep it on loopback; put TLS in front, see docs/console.md).",
)
@click.option(
    "--secure-cookies/--no-secure-cookies",
    default=False,
    help="Mark cookies Secure: required when served behind a TLS proxy (docs/console.md).",
)
@click.pass_context
def console(
    ctx: click.Context,
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    users: Path | None,
    listen: str,
    secure_cookies: bool,
) -> None:
    """Serve the analysts' web console for this hotline's node.

    The console calls the node's HotlineService as the node's own operator
    identity, naming the logged-in analyst on every call. Create accounts
    first with `hfed console user add NAME --role ...`.
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from federation.console.app import build_app
    from federation.console.node_client import NodeClient
    from federation.console.signatures import HistoryChecker
    from federation.console.users import UserStore
    from federation.console.web import Console
    from federation.node.compose import trust_anchor

    host, port = _listen(listen)
    config = config_for(config_path, devnet_dir, member)
    target = target_of(config)
    store = UserStore(users_path(users, config_path, devnet_dir, member))
    node = NodeClient(target)
    # The root keys come from the node's configuration, never from the node's answers.
    history = HistoryChecker(trust_anchor(config), node.signed_roster)
    app = build_app(Console(node, store, history, secure_cookies=secure_cookies))
    click.echo(f"console of {target.member_id} on http://{listen}/ (node at {target.endpoint})")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)


@console.group()
def user() -> None:
    """Manage the console's accounts (analyst, supervisor, admin)."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    text: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return text


@user.command("add")
@node_options
@users_option
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
def add(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    users: Path | None,
    name: str,
    role: str,
    password_stdin: bool,
) -> None:
    """Create an account (the password is asked for, or read with --password-stdin)."""
    from federation.console.users import Role, UserError, UserStore

    store = UserStore(users_path(users, config_path, devnet_dir, member))
    try:
        store.add(name, Role.parse(role), _password(password_stdin))
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    click.echo(f"added {name} ({role})")


@user.command("list")
@node_options
@users_option
def list_users(
    config_path: Path | None, devnet_dir: Path | None, member: str | None, users: Path | None
) -> None:
    """List the accounts."""
    from federation.console.users import UserStore

    store = UserStore(users_path(users, config_path, devnet_dir, member))
    try:
        rows = [
            (u.name, u.role.label, "disabled" if u.disabled else "active", u.created_at.date())
            for u in store.users()
        ]
    finally:
        store.close()
    print_table(("NAME", "ROLE", "STATE", "CREATED"), rows)


@user.command("disable")
@node_options
@users_option
@click.argument("name")
def disable(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    users: Path | None,
    name: str,
) -> None:
    """Disable an account: it can no longer log in, and its sessions end."""
    from federation.console.users import UserError, UserStore

    store = UserStore(users_path(users, config_path, devnet_dir, member))
    try:
        store.disable(name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    click.echo(f"disabled {name}")
