"""Checking a case's signed history the way a peer would, before showing it.

The node hands the console each history entry twice: as a value and as the
envelope its author signed. The console trusts neither on the node's word:
it fetches the node's roster, checks that roster against the network's root
keys (pinned in the node's configuration, never taken from the roster), and
then checks each envelope's signature against the roster key of the member
it names, that this member is the entry's author, and that the signed
payload is exactly the entry shown. The verification code is the node's own
(federation.wire.roster_proof), so there is one way to check a signature.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from crypto.threshold import TrustAnchor
from federation.core.roster import Roster
from federation.wire.convert import envelope_from_proto
from federation.wire.roster_proof import RosterRejectedError, signed_by_member, verify_signed_roster
from hfp.v1 import envelope_pb2, status_pb2

#: How long a verified roster is reused before it is fetched again.
ROSTER_TTL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the case page says about one entry's signature."""

    verified: bool
    text: str


class HistoryChecker:
    """Verifies history entries against the node's roster, itself verified
    against the pinned root keys; the roster is cached for a minute."""

    def __init__(self, anchor: TrustAnchor, fetch: Callable[[], bytes]) -> None:
        self._anchor = anchor
        self._fetch = fetch
        self._lock = threading.Lock()
        self._roster: Roster | None = None
        self._fetched = 0.0

    def roster(self) -> Roster:
        """The node's roster, verified (RosterRejectedError if it does not verify)."""
        with self._lock:
            if self._roster is None or time.monotonic() - self._fetched > ROSTER_TTL_SECONDS:
                self._roster = verify_signed_roster(self._fetch(), self._anchor).roster
                self._fetched = time.monotonic()
            return self._roster

    def check(
        self, updates: list[status_pb2.StatusUpdate], envelopes: list[envelope_pb2.SignedEnvelope]
    ) -> list[Verdict]:
        """One verdict per update, in order (entries without an envelope are not verified)."""
        try:
            roster = self.roster()
        except RosterRejectedError as exc:
            return [
                Verdict(False, f"not verified: the node's roster does not verify ({exc})")
            ] * len(updates)
        verdicts = []
        for i, update in enumerate(updates):
            envelope = envelopes[i] if i < len(envelopes) else None
            verdicts.append(_verdict(update, envelope, roster))
        return verdicts


def _verdict(
    update: status_pb2.StatusUpdate, envelope: envelope_pb2.SignedEnvelope | None, roster: Roster
) -> Verdict:
    if envelope is None:
        return Verdict(False, "not verified: the node sent no signed form")
    if envelope.signer_member_id != update.member_id:
        return Verdict(False, f"NOT VALID: signed by {envelope.signer_member_id}, not its author")
    try:
        signed = status_pb2.StatusUpdate.FromString(envelope.payload)
    except DecodeError:
        return Verdict(False, "NOT VALID: the signed payload is not a status update")
    if signed != update:
        return Verdict(False, "NOT VALID: the signed payload differs from the entry shown")
    if not signed_by_member(envelope_from_proto(envelope), roster):
        return Verdict(False, "NOT VALID: the signature does not verify with a key of its author")
    return Verdict(True, f"verified: {envelope.signer_member_id}, key {envelope.key_id[:12]}")
