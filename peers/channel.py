"""gRPC channels to peers, with explicit message caps and mutual TLS."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from federation.runtime.tracing import Tracing
from hfp.v1 import federation_service_pb2, hotline_service_pb2, liaison_service_pb2

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


ChannelOptions = Sequence[tuple[str, int | str]]

#: Calls a client may simply send again: they only read. A call that changes
#: something (SubmitReport fills in a new report id, RecordStatus, holds and
#: acknowledgements) is never retried by the channel: the caller decides.
IDEMPOTENT_CALLS = {
    hotline_service_pb2.DESCRIPTOR.services_by_name["HotlineService"]: (
        "GetCase",
        "ListCaseReports",
        "ListCaseHistory",
        "ListCases",
        "GetStats",
        "ListAuthoredReports",
    ),
    liaison_service_pb2.DESCRIPTOR.services_by_name["LiaisonService"]: (
        "ListReferrals",
        "ListCaseReports",
        "ListCaseHistory",
    ),
    federation_service_pb2.DESCRIPTOR.services_by_name["FederationService"]: ("GetRoster",),
}
#: gRPC's own retries of those calls when the node is briefly unreachable
#: (restarting, a connection reset): a few attempts within about two seconds.
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
#: Client keepalive, so that a long stream (WatchReferrals) notices a dead
#: connection and is not dropped as idle by NAT or firewalls on the way. Pings
#: go only while a call is open, no more often than the node permits
#: (federation.node.server: a client may ping every 20 s).
KEEPALIVE_MS = 30_000
KEEPALIVE_TIMEOUT_MS = 10_000


def _options() -> list[tuple[str, int | str]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]


def retry_service_config() -> str:
    """The channel's service config (JSON): retry the idempotent calls on UNAVAILABLE."""
    names = [
        {"service": service.full_name, "method": method}
        for service, methods in IDEMPOTENT_CALLS.items()
        for method in methods
    ]
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": RETRY_POLICY}]})


def client_options() -> list[tuple[str, int | str]]:
    """Options of the channels of people's clients (CLI, liaison client): retries
    of idempotent calls and keepalive (node-to-node channels use neither: the
    outbox has its own durable retries)."""
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", retry_service_config()),
        ("grpc.keepalive_time_ms", KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        # Keep pinging a stream on which nothing arrives for a long time
        # (gRPC's default stops after two pings without data).
        ("grpc.http2.max_pings_without_data", 0),
    ]


def secure_channel(
    endpoint: str, identity: ClientIdentity, options: ChannelOptions = ()
) -> grpc.Channel:
    """A mutual-TLS channel to ``endpoint`` (host:port), verifying the server;
    ``options`` are added to the message caps (e.g. ``client_options()``)."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=identity.ca_cert,
        private_key=identity.key,
        certificate_chain=identity.cert,
    )
    return grpc.secure_channel(endpoint, credentials, options=[*_options(), *options])


def insecure_channel(endpoint: str, options: ChannelOptions = ()) -> grpc.Channel:
    """A plaintext channel, for nodes running in insecure development mode only."""
    return grpc.insecure_channel(endpoint, options=[*_options(), *options])


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
    A refusal for load is the exception (the peer is up: see
    outbox.KEEP_CHANNEL).
    """

    def __init__(self, factory: Callable[[str], grpc.Channel], grace: float = 60.0) -> None:
        self._factory = factory
        #: Seconds a renewed-away channel stays open for the calls it carries.
        self._grace = grace
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

    def renew(self) -> None:
        """Open new channels from now on; close the old ones after the grace.

        Called when the node's own TLS material was reloaded: a channel
        presents the client certificate it was opened with for as long as it
        lives, so without this a renewed certificate would reach a peer only
        after a failed call. Closing at once would cancel calls in flight, so
        the old channels stay open for longer than any call may last.
        """
        with self._lock:
            old, self._channels = list(self._channels.values()), {}
        if old:
            timer = threading.Timer(self._grace, _close_all, args=(old,))
            timer.daemon = True
            timer.start()

    def close(self) -> None:
        """Close every channel (at shutdown)."""
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()


def _close_all(channels: list[grpc.Channel]) -> None:
    for channel in channels:
        channel.close()


def traced_channels(
    factory: Callable[[str], grpc.Channel], tracing: Tracing
) -> Callable[[str], grpc.Channel]:
    """``factory``'s channels with OpenTelemetry's gRPC client interceptor when
    tracing is on: each call a client span, whose context goes out as W3C
    ``traceparent`` metadata (read by federation/api/tracing.py at the peer)."""
    if not tracing.enabled:
        return factory
    # Imported only with tracing on: the instrumentation's import pulls in wrapt.
    from opentelemetry.instrumentation.grpc import client_interceptor  # noqa: PLC0415
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel  # noqa: PLC0415

    interceptor = client_interceptor(tracer_provider=tracing.provider)  # type: ignore[no-untyped-call]
    return lambda endpoint: intercept_channel(factory(endpoint), interceptor)  # type: ignore[no-untyped-call]


class _AddMetadata(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds fixed metadata to every call. grpc ships no such interceptor, and
    passing ``metadata=`` at every call site is easy to forget at the next."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata: tuple[tuple[str, str | bytes], ...] = tuple(metadata)

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        """The call with the metadata added."""
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        """The streaming call with the metadata added."""
        return continuation(self._details(details), request)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: tuple[tuple[str, str | bytes], ...] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


def with_metadata(channel: grpc.Channel, metadata: Sequence[tuple[str, str]]) -> grpc.Channel:
    """``channel`` sending ``metadata`` with every call (itself when there is none)."""
    if not metadata:
        return channel
    return grpc.intercept_channel(channel, _AddMetadata(metadata))
