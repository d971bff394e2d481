"""How CLI commands reach a node: its own config file, or a test-network member."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc

from federation.core.ids import MemberId
from federation.devnet.manifest import Manifest, ManifestError
from federation.node.config import ConfigError, NodeConfig, load_config
from federation.wire.metadata import dev_metadata
from peers.channel import ClientIdentity, client_options, insecure_channel, secure_channel

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
        """Call metadata (names the caller only in insecure dev mode)."""
        return dev_metadata(self.member_id) if self.identity is None else ()


def node_options(command: F) -> F:
    """Add --config / --devnet / --member to a command."""
    command = click.option(
        "--member", default=None, help="With --devnet: the member whose node to use."
    )(command)
    command = click.option(
        "--devnet",
        "devnet_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar="HFED_DEVNET",
        help="A test network directory (or set HFED_DEVNET).",
    )(command)
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
    try:
        return load_config(config_file(config_path, devnet_dir, member))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def config_file(config_path: Path | None, devnet_dir: Path | None, member: str | None) -> Path:
    """The node configuration file named by the command's options."""
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
    endpoint = config.listen
    if config.tls is None or config.insecure_plaintext:
        return Target(endpoint, None, config.member_id)
    identity = ClientIdentity.from_files(config.tls.ca_cert, config.tls.cert, config.tls.key)
    return Target(endpoint, identity, config.member_id)


@contextmanager
def channel(target: Target) -> Iterator[grpc.Channel]:
    """An open channel to the target node."""
    opened = (
        insecure_channel(target.endpoint, client_options())
        if target.identity is None
        else secure_channel(target.endpoint, target.identity, client_options())
    )
    with opened:
        yield opened


def rpc_failure(exc: grpc.RpcError, target: Target) -> click.ClickException:
    """Explain a failed call in words an analyst can act on."""
    code = exc.code()
    if code is grpc.StatusCode.UNAVAILABLE:
        return click.ClickException(
            f"node at {target.endpoint} is not reachable (is it running? `hfed devnet status`)"
        )
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return click.ClickException(f"node at {target.endpoint} did not answer in time")
    return click.ClickException(f"{code.name}: {exc.details()}")
