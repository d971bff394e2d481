"""``hfed devnet``: create, start, stop and check a local test network."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from federation.cli.connect import DEVNET_ENV
from federation.cli.output import print_table
from federation.devnet.manifest import ManifestError, MemberEntry

if TYPE_CHECKING:  # the processes module loads gRPC and the migrations
    from federation.devnet.processes import NodeState

DIR = click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
#: DIRECTORY for commands that take no other arguments: it may come from
#: HFED_DEVNET as --devnet does (up and down take NODES after it, so they
#: could not tell a node's name from a directory's).
NETWORK = click.argument(
    "directory", type=click.Path(file_okay=False, path_type=Path), envvar=DEVNET_ENV
)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def devnet() -> None:
    """A complete HFP test network on loopback (keys, CA, roster, nodes)."""


@devnet.command()
@DIR
@click.option(
    "--service-hosts",
    is_flag=True,
    help="For containers: endpoints are <member-id>:7100 and nodes bind 0.0.0.0.",
)
def init(directory: Path, service_hosts: bool) -> None:
    """Create a new test network in DIRECTORY (free loopback ports are chosen)."""
    from federation.devnet.create import NetworkExistsError, init_network

    try:
        manifest = init_network(directory, service_hosts=service_hosts)
    except NetworkExistsError as exc:
        raise _fail(exc) from exc
    click.echo(f"test network created in {directory}")
    _print_members(manifest.members)
    click.echo(f"\nnext: hfed devnet up {directory}")


def _print_members(members: dict[str, MemberEntry]) -> None:
    rows = [
        (
            member_id,
            entry.role.removeprefix("ROLE_").lower(),
            ",".join(entry.jurisdictions),
            entry.endpoint,
            "yes" if entry.runs_node else "no",
        )
        for member_id, entry in members.items()
    ]
    print_table(("MEMBER", "ROLE", "JURISDICTIONS", "ENDPOINT", "NODE"), rows)


NODES = click.argument("nodes", nargs=-1)


@devnet.command()
@DIR
@NODES
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for health.")
def up(directory: Path, nodes: tuple[str, ...], timeout: float) -> None:
    """Start the network's nodes (all, or the NODES named) and wait until they serve.

    Idempotent: nodes already running are left alone.
    """
    from federation.devnet.processes import DevnetError
    from federation.devnet.processes import up as start

    click.echo(f"starting nodes of {directory} ...")
    try:
        states = start(directory, timeout=timeout, only=nodes)
    except (DevnetError, ManifestError) as exc:
        raise _fail(exc) from exc
    _print_states(states)


@devnet.command()
@DIR
@NODES
def down(directory: Path, nodes: tuple[str, ...]) -> None:
    """Stop the network's nodes (all, or the NODES named) and, when all stop,
    its console; data stays under DIRECTORY."""
    from federation.devnet.console_process import stop as stop_console
    from federation.devnet.processes import DevnetError
    from federation.devnet.processes import down as stop

    try:
        if not nodes and stop_console(directory):
            click.echo("stopped the console")
        stopped = stop(directory, only=nodes)
    except (ManifestError, DevnetError) as exc:
        raise _fail(exc) from exc
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@devnet.command()
@NETWORK
def status(directory: Path) -> None:
    """Show which nodes run and answer their health check (DIRECTORY, or set
    HFED_DEVNET). Exits 1 when any node is down."""
    from federation.devnet.processes import status as read

    try:
        states = read(directory)
    except ManifestError as exc:
        raise _fail(exc) from exc
    _print_states(states)
    down = [s.member_id for s in states if not s.serving]
    if down:
        raise click.ClickException(f"{len(down)} of {len(states)} nodes down: {', '.join(down)}")


def _print_states(states: list[NodeState]) -> None:
    rows = [(s.member_id, s.endpoint, s.pid, "SERVING" if s.serving else "down") for s in states]
    print_table(("NODE", "ENDPOINT", "PID", "HEALTH"), rows)


@devnet.command()
@NETWORK
@click.option("--from", "sender", default="hotline-dk", show_default=True)
@click.option("--to", "receiver", default="hotline-nl", show_default=True)
def smoke(directory: Path, sender: str, receiver: str) -> None:
    """Deliver one synthetic signed report between two nodes and check the receipt
    (DIRECTORY, or set HFED_DEVNET)."""
    import grpc

    from federation.devnet.smoke import SmokeError, run_smoke

    try:
        result = run_smoke(directory, sender, receiver)
    except (SmokeError, ManifestError, KeyError) as exc:
        raise _fail(exc) from exc
    except grpc.RpcError as exc:
        raise click.ClickException(f"delivery failed: {exc.code().name}: {exc.details()}") from exc
    r = result.receipt
    click.echo(f"report {result.report_id}: {sender} -> {receiver}")
    click.echo(
        f"  receipt outcome   {r.outcome.name}"
        + (f" ({r.reject_reason.name}: {r.detail})" if r.reject_reason else "")
    )
    click.echo(
        f"  signed by         {r.receiver_member_id} (signature verified against the roster)"
    )
    same = "same receipt, byte for byte" if result.redelivery_identical else "DIFFERENT receipt"
    click.echo(f"  redelivery        {same}")


@devnet.command()
@NETWORK
def demo(directory: Path) -> None:
    """Tell the whole story of one report on the running network (DIRECTORY,
    or set HFED_DEVNET).

    Report at one hotline, case at the responsible one, a duplicate joining
    it, police acknowledging the referral, the takedown recorded, the signed
    history back at both reporters, and the takedown time in the statistics.
    """
    import grpc

    from federation.devnet.story import StoryError, run_story

    try:
        run_story(directory, click.echo)
    except (StoryError, ManifestError) as exc:
        raise _fail(exc) from exc
    except grpc.RpcError as exc:
        raise click.ClickException(f"{exc.code().name}: {exc.details()}") from exc


@devnet.command("console")
@NETWORK
@click.option("--member", default="hotline-dk", show_default=True, help="Whose console.")
def console_command(directory: Path, member: str) -> None:
    """Start the analysts' console of one member of the running network
    (DIRECTORY, or set HFED_DEVNET) and print its address and demo login.

    The console runs in the background until `hfed devnet down`. Its demo
    account is a supervisor; the password is random, made once and kept in
    DIRECTORY/console-login.txt (mode 0600). Port 8080 when free, else any.
    """
    from federation.devnet.console_process import start
    from federation.devnet.processes import DevnetError

    try:
        info = start(directory, member)
    except (DevnetError, ManifestError) as exc:
        raise _fail(exc) from exc
    click.echo(f"console of {info.member_id}: {info.url}  (pid {info.pid})")
    click.echo(f"  log in as {info.user} / {info.password}   (kept in {info.password_file})")
