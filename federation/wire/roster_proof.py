"""Checking signed rosters against the pinned root keys, and signed items
against a roster: pure verification, no storage, usable by any client.

Rosters are accepted only when threshold-signed by the pinned root keys
(never keys taken from a roster).
"""

from __future__ import annotations

from dataclasses import dataclass

from crypto.dsse import Envelope, verify_envelope_signature
from crypto.errors import ThresholdError
from crypto.threshold import TrustAnchor, require_threshold
from federation.core.envelope_checks import find_signing_key
from federation.core.errors import INVALID_ROSTER, ROSTER_NOT_TRUSTED
from federation.core.reasons import Rejection
from federation.core.roster import Roster, RosterError
from federation.wire.convert import decode_roster, decode_signed_roster
from federation.wire.errors import MalformedMessageError

#: Signatures a SignedRoster may carry (more when the anchor pins more root
#: keys). A genuine roster has one per root key; every extra signature under a
#: pinned key id costs a verification over the whole roster (up to the 8 MiB
#: call limit), so an unbounded list would let one PublishRoster call, or one
#: peer's GetRoster answer, burn minutes of CPU.
MAX_ROOT_SIGNATURES = 16


class RosterRejectedError(RosterError):
    """A roster was refused; the message says why and is safe to show."""

    def __init__(self, message: str, reason: str, *, stale: bool = False) -> None:
        super().__init__(message, reason)
        #: True when the roster is valid but not newer than the installed one.
        self.stale = stale


@dataclass(frozen=True, slots=True)
class InstalledRoster:
    """A verified roster with the exact signed bytes it came in."""

    roster: Roster
    roster_bytes: bytes
    signed_roster: bytes


def verify_signed_roster(signed_roster: bytes, anchor: TrustAnchor) -> InstalledRoster:
    """Threshold-check, then parse and validate a serialized SignedRoster."""
    try:
        roster_bytes, signatures = decode_signed_roster(signed_roster)
        limit = max(MAX_ROOT_SIGNATURES, len(anchor.root_keys))
        if len(signatures) > limit:
            raise RosterRejectedError(
                f"roster carries more than {limit} signatures", ROSTER_NOT_TRUSTED
            )
        require_threshold(roster_bytes, signatures, anchor)
        return InstalledRoster(decode_roster(roster_bytes), roster_bytes, signed_roster)
    except ThresholdError as exc:
        raise RosterRejectedError(str(exc), ROSTER_NOT_TRUSTED) from exc
    except MalformedMessageError as exc:
        raise RosterRejectedError(str(exc), INVALID_ROSTER) from exc


def signed_by_member(envelope: Envelope, roster: Roster) -> bool:
    """True when a live key of the roster member named as signer signed ``envelope``."""
    key = find_signing_key(envelope, roster)
    return not isinstance(key, Rejection) and verify_envelope_signature(envelope, key.public_key)
