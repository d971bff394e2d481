"""Roster propagation between nodes: push on install, pull on a timer.

A node that installs a newer roster pushes it to every peer once; peers that
were down miss the push, so every node also asks its peers for anything
newer at a fixed interval. Together these converge without a retry queue:
the pull is the retry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import grpc
import structlog

from federation.core.ids import MemberId
from federation.trust.holder import RosterHolder, RosterRejectedError
from hfp.v1 import federation_service_pb2 as pb
from hfp.v1 import federation_service_pb2_grpc as pb_grpc
from hfp.v1 import roster_pb2

log = structlog.get_logger(__name__)

RPC_DEADLINE = 10.0

ChannelFactory = Callable[[str], grpc.Channel]


class RosterSync:
    """Background thread that keeps this node's roster in step with its peers."""

    def __init__(
        self,
        member_id: MemberId,
        rosters: RosterHolder,
        channel_for: ChannelFactory,
        *,
        metadata: tuple[tuple[str, str], ...] = (),
        pull_interval: float = 60.0,
    ) -> None:
        self._member_id = member_id
        self._rosters = rosters
        self._channel_for = channel_for
        self._metadata = metadata
        self._pull_interval = pull_interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="roster-sync", daemon=True)

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (waits for an in-progress round)."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=RPC_DEADLINE + 5)

    def installed(self) -> None:
        """Tell the thread a newer roster was installed: push it now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            pushed = self._wake.wait(self._pull_interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            if pushed or self._pull():
                self._push()

    def _endpoints(self) -> list[tuple[MemberId, str]]:
        return [(m.member_id, m.endpoint) for m in self._rosters.roster.peers_of(self._member_id)]

    def _push(self) -> None:
        signed = roster_pb2.SignedRoster.FromString(self._rosters.installed.signed_roster)
        for member_id, endpoint in self._endpoints():
            try:
                with self._channel_for(endpoint) as channel:
                    pb_grpc.FederationServiceStub(channel).PublishRoster(
                        pb.PublishRosterRequest(roster=signed),
                        timeout=RPC_DEADLINE,
                        metadata=self._metadata,
                    )
            except grpc.RpcError as exc:
                # FAILED_PRECONDITION: the peer already has this or a newer one.
                log.info("roster push not taken", peer=member_id, code=exc.code().name)

    def _pull(self) -> bool:
        """Ask each peer for a newer roster; True when one was installed."""
        installed_any = False
        for member_id, endpoint in self._endpoints():
            known = self._rosters.roster.version
            try:
                with self._channel_for(endpoint) as channel:
                    reply = pb_grpc.FederationServiceStub(channel).GetRoster(
                        pb.GetRosterRequest(known_version=known),
                        timeout=RPC_DEADLINE,
                        metadata=self._metadata,
                    )
            except grpc.RpcError as exc:
                log.debug("roster pull failed", peer=member_id, code=exc.code().name)
                continue
            if reply.HasField("roster"):
                installed_any |= self._offer(member_id, reply.roster.SerializeToString())
        return installed_any

    def _offer(self, member_id: MemberId, signed: bytes) -> bool:
        try:
            self._rosters.offer(signed)
        except RosterRejectedError as exc:
            log.warning("peer offered a roster we refuse", peer=member_id, reason=str(exc))
            return False
        return True
