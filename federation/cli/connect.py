"""How CLI commands reach a node: its own config file, or a test-network member."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from federation.core.ids import MemberId

if TYPE_CHECKING:  # imported when a command runs: gRPC and pydantic are slow to load
    import grpc

    from federation.node.config import NodeConfig
    from peers.channel import ClientIdentity

F = TypeVar("F", bound=Callable[..., Any])
DEADLINE = 30.0


@dataclass(frozen=True)
class Target:
    """A node to call and the client identity to call it with."""

    endpoint: str
    identity: ClientIdentity | None  # None: the node runs in insecure dev mode
    member_id: MemberId

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: the caller's name only in insecure dev mode, and the
        trace context of the TRACEPARENT environment variable when it holds one
        (the node's spans then join the calling script's trace)."""
        from federation.runtime.tracing import trace_metadata
        from federation.wire.metadata import dev_metadata

        caller = dev_metadata(self.member_id) if self.identity is None else ()
        return caller + trace_metadata(os.environ)


#: The test network, and the member of it, that commands use when not told
#: (the CLI's own variables: federation.node.config keeps them out of a node's settings).
DEVNET_ENV = "HFED_DEVNET"
MEMBER_ENV = "HFED_MEMBER"

devnet_option = click.option(
    "--devnet",
    "devnet_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar=DEVNET_ENV,
    help=f"A test network directory (or set {DEVNET_ENV}).",
)
member_option = click.option(
    "--member",
    default=None,
    envvar=MEMBER_ENV,
    help=f"With --devnet: the member whose node to use (or set {MEMBER_ENV}).",
)


def node_options(command: F) -> F:
    """Add --config / --devnet / --member to a command."""
    command = member_option(command)
    command = devnet_option(command)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="HFED_CONFIG",
        help="The node's configuration file (or set HFED_CONFIG).",
    )(command)


def config_for(config_path: Path | None, devnet_dir: Path | None, member: str | None) -> NodeConfig:
    """The node configuration named by the command's options."""
    from federation.node.config import ConfigError, load_config

    try:
        return load_config(config_file(config_path, devnet_dir, member))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def config_file(config_path: Path | None, devnet_dir: Path | None, member: str | None) -> Path:
    """The node configuration file named by the command's options."""
    from federation.devnet.manifest import Manifest, ManifestError

    if config_path is None and devnet_dir is not None:
        try:
            manifest = Manifest.load(devnet_dir)
        except ManifestError as exc:
            raise click.ClickException(str(exc)) from exc
        nodes = manifest.nodes()
        if member is None or member not in nodes:
            raise click.UsageError(f"--member must be one of: {', '.join(sorted(nodes))}")
        config_path = devnet_dir / nodes[member].config
    if config_path is None:
        raise click.UsageError("say which node: --config FILE, or --devnet DIR --member ID")
    return config_path


def resolve(config_path: Path | None, devnet_dir: Path | None, member: str | None) -> Target:
    """Work out which node to call from the command's options."""
    return target_of(config_for(config_path, devnet_dir, member))


def target_of(config: NodeConfig) -> Target:
    """The node of ``config``, called with its own client identity."""
    from peers.channel import ClientIdentity

    endpoint = config.listen
    if config.tls is None or config.insecure_plaintext:
        return Target(endpoint, None, config.member_id)
    identity = ClientIdentity.from_files(config.tls.ca_cert, config.tls.cert, config.tls.key)
    return Target(endpoint, identity, config.member_id)


@contextmanager
def channel(target: Target) -> Iterator[grpc.Channel]:
    """An open channel to the target node."""
    from peers.channel import client_options, insecure_channel, secure_channel

    opened = (
        insecure_channel(target.endpoint, client_options())
        if target.identity is None
        else secure_channel(target.endpoint, target.identity, client_options())
    )
    with opened:
        yield opened


def rpc_failure(exc: grpc.RpcError, target: Target) -> click.ClickException:
    """Explain a failed call in words an analyst can act on."""
    import grpc

    code = exc.code()
    if code is grpc.StatusCode.UNAVAILABLE:
        return click.ClickException(
            f"node at {target.endpoint} is not reachable (is it running? `hfed devnet status`)"
        )
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return click.ClickException(f"node at {target.endpoint} did not answer in time")
    return click.ClickException(f"{code.name}: {exc.details()}")
