"""``hfed roster``: the secretariat's roster source, the signing ceremony, and
what a node holds.

add / revoke edit roster.toml; build writes roster.unsigned; each root key
holder signs it (sign); assemble checks the signatures against trust.toml and
writes roster.bin; publish hands it to a node, which passes it on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import grpc

from federation.cli.network import IN_FILE, OUT_FILE, config_needed, needs, refusing, wrote
from federation.cli.output import print_table, printable
from federation.network import ceremony
from federation.network import describe as d
from federation.network.parties import refuse_existing
from federation.network.request import MembershipRequest
from federation.network.source import RosterSource, new_source
from federation.network.trustfile import TrustFile
from federation.runtime.clock import utc_now


def stdin_is_terminal() -> bool:
    """Whether a person may be asked (a script's standard input is no terminal)."""
    return sys.stdin.isatty()


@click.group()
def roster() -> None:
    """Make, sign, check and publish the network's roster."""


@roster.command("add")
@click.argument("roster_toml", type=OUT_FILE)
@click.argument("request_toml", type=IN_FILE)
@click.option(
    "--fallback",
    default=None,
    help="Only when ROSTER_TOML is new: the member responsible for uncovered countries"
    " (default: the member added, if it is the secretariat).",
)
@refusing
def roster_add(roster_toml: Path, request_toml: Path, fallback: str | None) -> None:
    """Add the member of REQUEST_TOML (or its new key) to the roster source ROSTER_TOML.

    ROSTER_TOML is created (version 1) when it does not exist yet.
    """
    request = MembershipRequest.load(request_toml)
    source = (
        RosterSource.load(roster_toml) if roster_toml.exists() else new_source(request, fallback)
    )
    done = source.add(request)
    source.to_roster(utc_now())  # the edited source must still make a valid roster
    source.save(roster_toml)
    click.echo(f"{done}; wrote {roster_toml} (raise `version` before the next `hfed roster build`)")


@roster.command("revoke")
@click.argument("roster_toml", type=IN_FILE)
@click.option("--member", "member_id", required=True, help="The member.")
@click.option(
    "--key",
    "key_id",
    default=None,
    help="The key id (or its first characters) to revoke; without it the member is removed.",
)
@refusing
def roster_revoke(roster_toml: Path, member_id: str, key_id: str | None) -> None:
    """Mark a member's key revoked, or remove the member, in ROSTER_TOML."""
    source = RosterSource.load(roster_toml)
    done = source.revoke(member_id, key_id)
    source.save(roster_toml)
    click.echo(f"{done}; wrote {roster_toml} (raise `version`, build, sign and publish)")


@roster.command("build")
@click.argument("roster_toml", type=IN_FILE)
@needs("--out", None, OUT_FILE, "Where to write the unsigned roster.")
@click.option(
    "--previous",
    type=IN_FILE,
    default=None,
    help="The roster now in force (roster.bin): the version must exceed it.",
)
@refusing
def roster_build(roster_toml: Path, out: Path, previous: Path | None) -> None:
    """Turn ROSTER_TOML into the unsigned roster the root key holders sign."""
    old = ceremony.read_any(previous.read_bytes()) if previous else None
    built = ceremony.build(RosterSource.load(roster_toml), utc_now(), old)
    out.write_bytes(built.unsigned)
    click.echo(d.headline(built.roster, utc_now()))
    for line in d.diff(old, built.roster) if old else []:
        click.echo(f"  {printable(line)}")
    for warning in built.warnings:
        click.echo(f"WARNING: {printable(warning)}", err=True)
    wrote([out])


@roster.command("sign")
@click.argument("unsigned", type=IN_FILE)
@needs("--root-key", None, IN_FILE, "Your root key (PKCS#8 PEM).")
@needs("--out", None, OUT_FILE, "Where to write your signature (FILE.sig).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@refusing
def roster_sign(unsigned: Path, root_key: Path, out: Path, yes: bool) -> None:
    """Sign UNSIGNED (roster.unsigned) with one root key, after showing what it says.

    Asks for confirmation only when standard input is a terminal.
    """
    from crypto.errors import KeyFormatError
    from crypto.keys import SigningKey

    data = unsigned.read_bytes()
    _show(ceremony.read_unsigned(data))
    try:
        key = SigningKey.load(root_key)
    except KeyFormatError as exc:
        raise click.ClickException(f"{root_key}: {exc}") from exc
    if stdin_is_terminal() and not yes:
        click.confirm("Sign this roster?", abort=True)
    refuse_existing(out)
    out.write_bytes(ceremony.sign(data, key))
    wrote([out])
    click.echo(f"signed by root key {key.key_id[:16]}; send {out.name} to the secretariat")


@roster.command("assemble")
@click.argument("unsigned", type=IN_FILE)
@click.argument("signatures", nargs=-1, required=True, type=IN_FILE)
@needs("--trust", "trust_toml", IN_FILE, "The network's trust.toml.")
@needs("--out", None, OUT_FILE, "Where to write the signed roster (roster.bin).")
@refusing
def roster_assemble(
    unsigned: Path, signatures: tuple[Path, ...], trust_toml: Path, out: Path
) -> None:
    """Put UNSIGNED and the root SIGNATURES together into a signed roster.

    Refuses unless at least K distinct root keys of trust.toml signed these bytes.
    """
    anchor = TrustFile.load(trust_toml).anchor
    named = [(s.name, ceremony.read_signature(s.read_bytes(), s.name)) for s in signatures]
    out.write_bytes(ceremony.assemble(unsigned.read_bytes(), named, anchor))
    click.echo(f"{len(named)} root signatures, threshold {anchor.threshold}: verified")
    wrote([out])


@roster.command("show")
@click.argument("file", type=IN_FILE)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@refusing
def roster_show(file: Path, fmt: str) -> None:
    """Members, roles, jurisdictions, keys and expiry of FILE (roster.bin or roster.unsigned)."""
    parsed = ceremony.read_any(file.read_bytes())
    if fmt == "json":
        click.echo(json.dumps(d.as_json(parsed, utc_now()), indent=2, default=str))
    else:
        _show(parsed)


def _show(parsed: object) -> None:
    from federation.core.roster import Roster

    assert isinstance(parsed, Roster)
    now = utc_now()
    click.echo(d.headline(parsed, now))
    rows = d.member_rows(parsed, now)
    headers = ["member", "role", "jurisdictions", "endpoint", "keys"]
    print_table([h.upper() for h in headers], [[r[h] for h in headers] for r in rows])


@roster.command("diff")
@click.argument("old", type=IN_FILE)
@click.argument("new", type=IN_FILE)
@refusing
def roster_diff(old: Path, new: Path) -> None:
    """What changed from OLD to NEW: members, keys, endpoints, jurisdictions."""
    lines = d.diff(ceremony.read_any(old.read_bytes()), ceremony.read_any(new.read_bytes()))
    for line in lines or ["no changes"]:
        click.echo(printable(line))


@roster.command("publish")
@click.argument("roster_bin", type=IN_FILE)
@config_needed("The node's node.toml; its TLS identity is used")
@click.option(
    "--to", "to", default=None, help="HOST:PORT of a peer to publish to instead of this node."
)
@refusing
def roster_publish(roster_bin: Path, config_path: Path, to: str | None) -> None:
    """Offer ROSTER_BIN to this node (or a peer): it installs it and passes it on."""
    from federation.cli.connect import DEADLINE, channel, resolve, rpc_failure
    from hfp.v1 import federation_service_pb2 as pb
    from hfp.v1 import federation_service_pb2_grpc as pb_grpc
    from hfp.v1 import roster_pb2

    target = resolve(config_path, None, None)
    if to is not None:
        target = type(target)(to, target.identity, target.member_id)
    data = roster_bin.read_bytes()
    ceremony.read_signed(data)  # refuse a file that is no signed roster before calling
    signed = roster_pb2.SignedRoster.FromString(data)
    with channel(target) as ch:
        try:
            answer = pb_grpc.FederationServiceStub(ch).PublishRoster(
                pb.PublishRosterRequest(roster=signed), timeout=DEADLINE, metadata=target.metadata
            )
        except grpc.RpcError as exc:
            raise rpc_failure(exc, target) from exc
    click.echo(f"{target.endpoint} now holds roster version {answer.version}")


@roster.command("status")
@config_needed()
@refusing
def roster_status(config_path: Path) -> None:
    """The node's roster (version, expiry), its certificate's expiry, and its peers' versions."""
    from federation.cli.roster_status import show_status

    show_status(config_path)
