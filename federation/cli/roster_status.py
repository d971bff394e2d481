"""``hfed roster status``: the roster a node holds, and the versions its peers hold."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
import grpc

from crypto.x509ca import cert_not_after
from federation.cli.connect import DEADLINE, Target, channel, resolve, rpc_failure
from federation.cli.output import print_table
from federation.cli.times import iso
from federation.core.roster import Roster
from federation.network import ceremony
from federation.runtime.clock import utc_now
from hfp.v1 import federation_service_pb2 as pb
from hfp.v1 import federation_service_pb2_grpc as pb_grpc

#: A peer that does not answer within this is shown as unreachable.
PEER_DEADLINE = 5.0


def fetch(target: Target, timeout: float) -> Roster:
    """The roster ``target`` holds (GetRoster from version 0)."""
    with channel(target) as ch:
        answer = pb_grpc.FederationServiceStub(ch).GetRoster(
            pb.GetRosterRequest(known_version=0), timeout=timeout, metadata=target.metadata
        )
    return ceremony.read_signed(answer.roster.SerializeToString())[0]


def _days(until: datetime, now: datetime) -> str:
    days = (until - now).total_seconds() / 86400
    return f"{iso(until)} (in {days:.1f} days)" if days > 0 else f"{iso(until)} (EXPIRED)"


def show_status(config_path: Path) -> None:
    """Print the node's roster and certificate lifetime, then one line per peer."""
    from federation.cli.connect import config_for

    config = config_for(config_path, None, None)
    target = resolve(config_path, None, None)
    try:
        held = fetch(target, DEADLINE)
    except grpc.RpcError as exc:
        raise rpc_failure(exc, target) from exc
    now = utc_now()
    click.echo(f"{config.member_id} at {target.endpoint}: roster version {held.version}")
    click.echo(f"roster expires      {_days(held.expires_at, now)}")
    if config.tls is not None:
        click.echo(
            f"certificate expires {_days(cert_not_after(config.tls.cert.read_bytes()), now)}"
        )
    rows = [
        [peer.member_id, peer.endpoint, _peer_version(target, peer.endpoint)]
        for peer in held.peers_of(config.member_id)
    ]
    print_table(["PEER", "ENDPOINT", "ROSTER VERSION"], rows)


def _peer_version(own: Target, endpoint: str) -> str:
    try:
        return str(fetch(Target(endpoint, own.identity, own.member_id), PEER_DEADLINE).version)
    except grpc.RpcError as exc:
        return f"unreachable ({exc.code().name})"
