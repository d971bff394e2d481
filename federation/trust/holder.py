"""The node's current roster: verification, installation and persistence.

Rosters are accepted only when threshold-signed by the pinned root keys
(never keys taken from a roster) and newer than the one held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import structlog

from crypto.threshold import RootSignature, TrustAnchor
from federation.core.errors import INVALID_ROSTER
from federation.core.ids import KeyId, MemberId
from federation.core.roster import Roster, RosterError, RosterUpdate, decide_roster_update
from federation.runtime.clock import Clock, utc_now
from federation.store import rosters as roster_store
from federation.store.database import Database
from federation.wire.convert import decode_roster, decode_signed_roster, signed_roster_to_proto
from federation.wire.errors import MalformedMessageError

# Verification needs no storage, so it lives at the edge where bytes become
# values (the console verifies histories with it too); re-exported here.
from federation.wire.roster_proof import (
    MAX_ROOT_SIGNATURES,
    InstalledRoster,
    RosterRejectedError,
    signed_by_member,
    verify_signed_roster,
)

__all__ = [
    "MAX_ROOT_SIGNATURES",
    "InstalledRoster",
    "RosterHolder",
    "RosterRejectedError",
    "serialize_signed_roster",
    "signed_by_member",
    "verify_signed_roster",
]

log = structlog.get_logger(__name__)


def serialize_signed_roster(roster_bytes: bytes, signatures: tuple[RootSignature, ...]) -> bytes:
    """The SignedRoster bytes for roster bytes and their root signatures."""
    return signed_roster_to_proto(roster_bytes, signatures).SerializeToString()


class RosterHolder:
    """Holds the installed roster; thread-safe, persisted in the database."""

    def __init__(
        self,
        anchor: TrustAnchor,
        db: Database,
        clock: Clock = utc_now,
        *,
        allow_stale: bool = False,
    ) -> None:
        self._anchor = anchor
        self._db = db
        self._clock = clock
        self._lock = threading.Lock()
        self._installed: InstalledRoster | None = None
        #: (member id, key id) -> public key over every installed roster,
        #: loaded on first use (see former_key).
        self._former: dict[tuple[MemberId, KeyId], bytes] | None = None
        #: True only under the test fault "accept-stale-roster".
        self._allow_stale = allow_stale
        #: Called with each roster installed after start-up (outside the lock).
        self.on_install: list[Callable[[Roster], None]] = []

    def load(self, bootstrap: bytes | None) -> None:
        """Install the newest stored roster, or the bootstrap one if newer/none."""
        with self._db.read() as session:
            stored = roster_store.latest_roster(session)
        if stored is not None:
            self._installed = verify_signed_roster(stored, self._anchor)
        if bootstrap is not None:
            try:
                self.offer(bootstrap)
            except RosterRejectedError as exc:
                if self._installed is None:
                    raise
                log.info("bootstrap roster not installed", reason=str(exc))
        if self._installed is None:
            raise RosterRejectedError("no roster: give one in the configuration", INVALID_ROSTER)

    @property
    def installed(self) -> InstalledRoster:
        """The current roster (raises if none was loaded)."""
        if self._installed is None:
            raise RuntimeError("roster not loaded")
        return self._installed

    @property
    def roster(self) -> Roster:
        """Shortcut for the current domain roster."""
        return self.installed.roster

    def expired(self, now: datetime) -> bool:
        """Whether the current roster has expired at ``now``."""
        return self.installed.roster.is_expired(now)

    def offer(self, signed_roster: bytes) -> tuple[RosterUpdate, int]:
        """Verify and install a roster if it is newer; returns what happened."""
        decision, version = self._offer(signed_roster)
        if decision is RosterUpdate.INSTALL:
            for listener in self.on_install:
                listener(self.roster)
        return decision, version

    def _offer(self, signed_roster: bytes) -> tuple[RosterUpdate, int]:
        candidate = verify_signed_roster(signed_roster, self._anchor)
        with self._lock:
            current = self._installed
            try:
                decision = decide_roster_update(
                    current.roster if current else None,
                    current.roster_bytes if current else None,
                    candidate.roster,
                    candidate.roster_bytes,
                    self._clock(),
                    allow_stale=self._allow_stale,
                )
            except RosterError as exc:
                stale = current is not None and candidate.roster.version <= current.roster.version
                raise RosterRejectedError(exc.public_message, exc.reason, stale=stale) from exc
            if decision is RosterUpdate.INSTALL:
                with self._db.write() as session:
                    roster_store.save_roster(
                        session, candidate.roster.version, signed_roster, self._clock()
                    )
                self._installed = candidate
                if self._former is not None:
                    self._former.update(_keys_of(candidate.roster))
                log.info("roster installed", version=candidate.roster.version)
            return decision, self.installed.roster.version

    def former_key(self, member_id: MemberId, key_id: KeyId) -> bytes | None:
        """The public key ``key_id`` of ``member_id`` had in any installed
        roster, the current one included (revoked keys too); None if it never
        was one of its keys.

        Only for recognising a retry of an item accepted before the roster
        changed (see DeliveryService): such a key verifies nothing new.
        """
        installed = self.installed.roster.member(member_id)
        key = installed.keys.get(key_id) if installed is not None else None
        if key is not None:
            return key.public_key
        with self._lock:
            if self._former is None:
                self._former = self._load_former()
            return self._former.get((member_id, key_id))

    def _load_former(self) -> dict[tuple[MemberId, KeyId], bytes]:
        # Stored rosters were threshold-verified before they were saved, and
        # the roots may have rotated since: parsed here, not verified again.
        with self._db.read() as session:
            stored = roster_store.all_rosters(session)
        keys: dict[tuple[MemberId, KeyId], bytes] = {}
        for signed in stored:
            try:
                keys.update(_keys_of(decode_roster(decode_signed_roster(signed)[0])))
            except MalformedMessageError:
                log.warning("a stored roster no longer parses; its keys are not consulted")
        return keys


def _keys_of(roster: Roster) -> dict[tuple[MemberId, KeyId], bytes]:
    """Every (member id, key id) of a roster with its public key."""
    return {
        (member.member_id, key.key_id): key.public_key
        for member in roster.members.values()
        for key in member.keys.values()
    }
