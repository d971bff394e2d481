#!/opt/hfed/bin/python
"""Container health check: is this container's node SERVING?

Calls the node's gRPC health service on the address its configuration
(HFED_CONFIG, or the first argument) listens on, over mutual TLS with the
node's own certificate: the check goes through the same TLS stack as a peer's
call. Exit status 0 when SERVING, 1 otherwise, with one line saying why.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from federation.node.config import ConfigError, NodeConfig, load_config
from peers.channel import ClientIdentity, insecure_channel, secure_channel

DEADLINE_SECONDS = 3.0


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:  # a host name
        return False


def _channel(config: NodeConfig) -> grpc.Channel:
    host, _, port = config.listen.rpartition(":")
    # A node bound to every address is reached on loopback.
    endpoint = f"127.0.0.1:{port}" if _unspecified(host) else config.listen
    if config.tls is None:
        return insecure_channel(endpoint)
    tls = config.tls
    return secure_channel(endpoint, ClientIdentity.from_files(tls.ca_cert, tls.cert, tls.key))


def check(config_path: Path) -> str | None:
    """None when the node answers SERVING, else what is wrong."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return str(exc)
    with _channel(config) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=DEADLINE_SECONDS
            )
        except grpc.RpcError as exc:
            return f"{config.listen}: {exc.code().name}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{config.listen}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def main() -> int:
    """Print the node's state; 0 when it serves."""
    path = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ["HFED_CONFIG"])
    problem = check(path)
    print(problem or "SERVING")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
