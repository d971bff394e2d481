"""Roster propagation between nodes: push on install, pull on a timer.

A node that installs a newer roster pushes it to every peer once; peers that
were down miss the push, so every node also asks its peers for anything
newer at a fixed interval. Together these converge without a retry queue:
the pull is the retry.

The calls themselves are made by a :class:`RosterPeers` client (gRPC, in
``peers``); this module decides when to make them and what to install.
"""

from __future__ import annotations

import threading
from typing import Protocol

import structlog

from federation.core.errors import PeerError
from federation.core.ids import MemberId
from federation.trust.holder import RosterHolder, RosterRejectedError

log = structlog.get_logger(__name__)


class RosterCallError(PeerError):
    """A roster call to a peer failed; ``code`` names how (a gRPC status name)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class RosterPeers(Protocol):
    """The roster calls this node makes to one peer at a time."""

    #: The longest one call may take (seconds).
    deadline: float

    def publish(self, endpoint: str, signed_roster: bytes) -> None:
        """Offer our signed roster to the peer at ``endpoint``; RosterCallError if refused."""
        ...

    def newer(self, endpoint: str, known_version: int) -> bytes | None:
        """The peer's signed roster if newer than ``known_version``, else None;
        RosterCallError if the call fails."""
        ...


class RosterSync:
    """Background thread that keeps this node's roster in step with its peers."""

    def __init__(
        self,
        member_id: MemberId,
        rosters: RosterHolder,
        peers: RosterPeers,
        *,
        pull_interval: float = 60.0,
    ) -> None:
        self._member_id = member_id
        self._rosters = rosters
        self._peers = peers
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
        self._thread.join(timeout=self._peers.deadline + 5)

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
        signed = self._rosters.installed.signed_roster
        for member_id, endpoint in self._endpoints():
            try:
                self._peers.publish(endpoint, signed)
            except RosterCallError as exc:
                # FAILED_PRECONDITION: the peer already has this or a newer one.
                log.info("roster push not taken", peer=member_id, code=exc.code)

    def _pull(self) -> bool:
        """Ask each peer for a newer roster; True when one was installed."""
        installed_any = False
        for member_id, endpoint in self._endpoints():
            try:
                signed = self._peers.newer(endpoint, self._rosters.roster.version)
            except RosterCallError as exc:
                log.debug("roster pull failed", peer=member_id, code=exc.code)
                continue
            if signed is not None:
                installed_any |= self._offer(member_id, signed)
        return installed_any

    def _offer(self, member_id: MemberId, signed: bytes) -> bool:
        try:
            self._rosters.offer(signed)
        except RosterRejectedError as exc:
            log.warning("peer offered a roster we refuse", peer=member_id, reason=str(exc))
            return False
        return True
