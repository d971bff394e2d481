"""gRPC channels to peers, with explicit message caps and mutual TLS."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

#: Receipts for a full batch are far below this; the cap is explicit on purpose.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """The PEM material a client presents and trusts."""

    ca_cert: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_files(cls, ca_cert: Path, cert: Path, key: Path) -> ClientIdentity:
        """Load the three PEM files."""
        return cls(ca_cert.read_bytes(), cert.read_bytes(), key.read_bytes())


def _options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]


def secure_channel(endpoint: str, identity: ClientIdentity) -> grpc.Channel:
    """A mutual-TLS channel to ``endpoint`` (host:port), verifying the server."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=identity.ca_cert,
        private_key=identity.key,
        certificate_chain=identity.cert,
    )
    return grpc.secure_channel(endpoint, credentials, options=_options())


def insecure_channel(endpoint: str) -> grpc.Channel:
    """A plaintext channel, for nodes running in insecure development mode only."""
    return grpc.insecure_channel(endpoint, options=_options())


class ChannelPool:
    """One long-lived channel per peer endpoint, shared by every thread.

    A channel per call paid a TCP connection and a mutual-TLS handshake on
    both nodes for every batch: at a trickle of single reports that was most
    of the CPU the sender and the receiver spent per item, and a few
    milliseconds of latency per hop. gRPC channels are thread-safe and
    multiplex calls, so one per endpoint serves every lane.

    After a failed call the caller discards the channel: the next call opens a
    new one and connects at once, so recovery follows the outbox's own
    backoff rather than gRPC's reconnect backoff (which grows to minutes).
    """

    def __init__(self, factory: Callable[[str], grpc.Channel]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}

    def get(self, endpoint: str) -> grpc.Channel:
        """The channel to ``endpoint``, opened on first use."""
        with self._lock:
            channel = self._channels.get(endpoint)
            if channel is None:
                channel = self._channels[endpoint] = self._factory(endpoint)
            return channel

    def discard(self, endpoint: str, channel: grpc.Channel) -> None:
        """Close ``channel`` and forget it, unless another thread already replaced it."""
        with self._lock:
            if self._channels.get(endpoint) is channel:
                del self._channels[endpoint]
        channel.close()

    def close(self) -> None:
        """Close every channel (at shutdown)."""
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()
