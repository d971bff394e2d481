"""The roster calls to a peer (GetRoster, PublishRoster) that roster sync makes.

When to call and what to install is ``federation.trust.sync``'s policy; this
module only turns its requests into gRPC calls and their failures into
:class:`federation.trust.RosterCallError`.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from federation.trust import RosterCallError
from hfp.v1 import federation_service_pb2 as pb
from hfp.v1 import federation_service_pb2_grpc as pb_grpc
from hfp.v1 import roster_pb2

RPC_DEADLINE = 10.0

ChannelFactory = Callable[[str], grpc.Channel]


class RosterClient:
    """Makes one roster call at a time on a fresh channel (see trust.RosterPeers)."""

    def __init__(
        self,
        channel_for: ChannelFactory,
        *,
        metadata: tuple[tuple[str, str], ...] = (),
        deadline: float = RPC_DEADLINE,
    ) -> None:
        self._channel_for = channel_for
        self._metadata = metadata
        self.deadline = deadline

    def publish(self, endpoint: str, signed_roster: bytes) -> None:
        """PublishRoster our signed roster to ``endpoint``."""
        request = pb.PublishRosterRequest(roster=roster_pb2.SignedRoster.FromString(signed_roster))
        try:
            with self._channel_for(endpoint) as channel:
                pb_grpc.FederationServiceStub(channel).PublishRoster(
                    request, timeout=self.deadline, metadata=self._metadata
                )
        except grpc.RpcError as exc:
            raise RosterCallError(exc.code().name) from exc

    def newer(self, endpoint: str, known_version: int) -> bytes | None:
        """GetRoster from ``endpoint``: its signed roster if newer than ``known_version``."""
        try:
            with self._channel_for(endpoint) as channel:
                reply = pb_grpc.FederationServiceStub(channel).GetRoster(
                    pb.GetRosterRequest(known_version=known_version),
                    timeout=self.deadline,
                    metadata=self._metadata,
                )
        except grpc.RpcError as exc:
            raise RosterCallError(exc.code().name) from exc
        return reply.roster.SerializeToString() if reply.HasField("roster") else None
